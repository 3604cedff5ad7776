# Copyright (c) 2025, coderops maintainers
# GNU General Public License v3.0+ (see LICENSE or https://www.gnu.org/licenses/gpl-3.0.txt)
# SPDX-License-Identifier: GPL-3.0-or-later
"""Budget math: surge rounding, PostgreSQL 16 reserved_connections, suggestions, bad input."""

from __future__ import annotations

import pytest
from ansible_collections.coderops.deploy.plugins.module_utils._budget import (
    BudgetError,
    budget_argument_spec,
    budget_inputs_from_facts,
    connection_budget,
    surge_pods,
)


@pytest.mark.parametrize("replicas,percent,expected", [
    (1, 25, 1),   # 0.25 rounds up to a whole pod
    (2, 25, 1),   # 0.5
    (3, 25, 1),   # 0.75
    (4, 25, 1),   # exactly 1
    (5, 25, 2),   # 1.25 -> 2
    (8, 25, 2),
    (9, 25, 3),
    (10, 0, 0),
    (10, 100, 10),
    (3, 34, 2),   # 1.02 -> 2
    (1, 1, 1),
])
def test_surge_pods_round_up(replicas, percent, expected):
    assert surge_pods(replicas, percent) == expected


def test_guide_example_fits():
    # max_connections 100, 3 reserved for superusers: 97 available; 2 replicas + 1 surge = 90.
    b = connection_budget(100, 3, replicas=2, max_db_connections=30)
    assert (b["available"], b["needed_steady"], b["needed_peak"], b["headroom"], b["ok"]) == (
        97, 60, 90, 7, True)
    assert b["suggested_max_db_connections"] == 32  # 97 // 3
    assert b["surge_pods"] == 1 and b["pods_at_peak"] == 3
    assert b["message"].startswith("fits:")


def test_exact_fit_is_ok():
    # 63 - 3 = 60 available; (1 + 1) x 30 = 60.
    b = connection_budget(63, 3, replicas=1, max_db_connections=30)
    assert b["headroom"] == 0 and b["ok"] is True


def test_one_short_does_not_fit():
    b = connection_budget(62, 3, replicas=1, max_db_connections=30)
    assert b["headroom"] == -1 and b["ok"] is False
    assert b["suggested_max_db_connections"] == 29
    assert b["max_connections_needed"] == 63
    assert "set max_db_connections to 29 or less" in b["message"]
    assert "raise max_connections on the server to at least 63" in b["message"]


def test_small_server_of_the_test_bed():
    # `small`: max_connections 20, superuser_reserved 3.
    b = connection_budget(20, 3, replicas=1, max_db_connections=30)
    assert b["available"] == 17 and b["needed_peak"] == 60 and not b["ok"]
    assert b["suggested_max_db_connections"] == 8


def test_postgres16_reserved_connections_are_subtracted():
    pg15 = connection_budget(100, 3, reserved_connections=0, replicas=3, max_db_connections=20)
    pg16 = connection_budget(100, 3, reserved_connections=5, replicas=3, max_db_connections=20)
    assert pg15["available"] - pg16["available"] == 5
    # (3 + 1) x 20 = 80: 97 fits, 92 fits, but 10 reserved more would not.
    assert pg16["available"] == 92 and pg16["ok"]
    assert not connection_budget(100, 3, reserved_connections=18, replicas=3,
                                 max_db_connections=20)["ok"]


def test_others_and_reserve_are_subtracted():
    b = connection_budget(100, 3, held_by_others=10, reserve_connections=7, replicas=1,
                          max_db_connections=30)
    assert b["available"] == 80


def test_surge_percent_zero_means_no_surge():
    b = connection_budget(100, 3, replicas=3, max_db_connections=30, surge_percent=0)
    assert b["needed_peak"] == b["needed_steady"] == 90 and b["ok"]


def test_nothing_fits_suggests_zero_and_other_fixes():
    b = connection_budget(10, 3, held_by_others=7, replicas=2, max_db_connections=5)
    assert b["available"] == 0
    assert b["suggested_max_db_connections"] == 0
    assert "not even a pool of 1 fits" in b["message"]


def test_negative_available_never_suggests_negative():
    b = connection_budget(10, 3, held_by_others=20)
    assert b["available"] < 0 and b["suggested_max_db_connections"] == 0


@pytest.mark.parametrize("kwargs,field", [
    ({"replicas": 0}, "replicas"),
    ({"replicas": True}, "replicas"),
    ({"max_db_connections": 0}, "max_db_connections"),
    ({"max_db_connections": "x"}, "max_db_connections"),
    ({"surge_percent": -1}, "surge_percent"),
    ({"surge_percent": 101}, "surge_percent"),
    ({"reserve_connections": -1}, "reserve_connections"),
])
def test_bad_plan_names_the_field(kwargs, field):
    with pytest.raises(BudgetError) as err:
        connection_budget(100, 3, **kwargs)
    assert err.value.field == field
    assert field in str(err.value)


def test_numbers_given_as_strings_are_accepted():
    b = connection_budget("100", "3", replicas="2", max_db_connections="30")
    assert b["available"] == 97


def test_inputs_from_facts_uses_others():
    facts = {"max_connections": 100, "superuser_reserved_connections": 3,
             "reserved_connections": 2, "connections_in_use": {"total": 9, "coder_user": 2,
                                                               "others": 7}}
    assert budget_inputs_from_facts(facts) == {
        "max_connections": 100, "superuser_reserved_connections": 3, "reserved_connections": 2,
        "held_by_others": 7}


def test_inputs_from_facts_derives_others():
    facts = {"max_connections": 100, "superuser_reserved_connections": 3,
             "connections_in_use": {"total": 9, "coder_user": 2}}
    assert budget_inputs_from_facts(facts)["held_by_others"] == 7


@pytest.mark.parametrize("facts,fragment", [
    ("text", "must be a dictionary"),
    ({"failed": True, "reason": "refused"}, "failed coder_pg_facts run (reason: refused)"),
    ({"max_connections": 1}, "lacks superuser_reserved_connections"),
    ({"max_connections": 1, "superuser_reserved_connections": 0, "connections_in_use": [1]},
     "connections_in_use must be a dictionary"),
])
def test_inputs_from_facts_refuses(facts, fragment):
    with pytest.raises(BudgetError) as err:
        budget_inputs_from_facts(facts, "pg_facts")
    assert fragment in str(err.value)


def test_argument_spec_is_a_fresh_copy():
    a = budget_argument_spec()
    a["replicas"]["default"] = 99
    assert budget_argument_spec()["replicas"]["default"] == 1


def test_extra_connections_per_replica():
    # (2 replicas + 1 surge pod) x (10 + 5) = 45 of 97.
    b = connection_budget(100, 3, replicas=2, max_db_connections=10, extra_connections_per_replica=5)
    assert (b["needed_steady"], b["needed_peak"], b["headroom"]) == (30, 45, 52)
    # 97 // 3 pods = 32 per pod, less the 5 overhead: a pool of 27.
    assert b["suggested_max_db_connections"] == 27
    assert "(max_db_connections 10 + extra_connections_per_replica 5)" in b["message"]
    assert b["inputs"]["extra_connections_per_replica"] == 5


def test_extra_connections_zero_is_the_v1_result():
    assert (connection_budget(100, 3, replicas=2, extra_connections_per_replica=0)
            == connection_budget(100, 3, replicas=2))


def test_extra_connections_larger_than_the_share_suggests_nothing():
    b = connection_budget(20, 3, replicas=1, max_db_connections=5, extra_connections_per_replica=20)
    assert not b["ok"] and b["suggested_max_db_connections"] == 0
    assert "not even a pool of 1 fits" in b["message"]


@pytest.mark.parametrize("value", [-1, 1001, True, "x"])
def test_extra_connections_refused(value):
    with pytest.raises(BudgetError) as err:
        connection_budget(100, 3, extra_connections_per_replica=value)
    assert err.value.field == "extra_connections_per_replica"
