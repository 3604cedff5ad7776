# Copyright (c) 2025, coderops maintainers
# GNU General Public License v3.0+ (see LICENSE or https://www.gnu.org/licenses/gpl-3.0.txt)
# SPDX-License-Identifier: GPL-3.0-or-later
"""The filters: delegation to module_utils and AnsibleFilterError naming the filter."""

from __future__ import annotations

import pytest
from ansible.errors import AnsibleFilterError
from ansible_collections.coderops.deploy.plugins.filter import (
    coder_connection_budget,
    coder_input_problems,
    coder_option_names,
    coder_pg_url,
    coder_upgrade_refusal,
    coder_values_merge,
)
from ansible_collections.coderops.deploy.plugins.module_utils._budget import connection_budget

CANARY = "p w'\"=@%\\:é€"


def test_filters_are_registered():
    assert "coder_connection_budget" in coder_connection_budget.FilterModule().filters()
    assert "coder_values_merge" in coder_values_merge.FilterModule().filters()
    assert "coder_pg_url" in coder_pg_url.FilterModule().filters()
    assert "coder_option_names" in coder_option_names.FilterModule().filters()
    assert "coder_input_problems" in coder_input_problems.FilterModule().filters()
    assert "coder_upgrade_refusal" in coder_upgrade_refusal.FilterModule().filters()


def test_input_problems_and_upgrade_refusal_through_the_filters():
    assert coder_input_problems.coder_input_problems({"coder_db_port": "x"})[0].startswith("coder_db_port must be")
    with pytest.raises(AnsibleFilterError):
        coder_input_problems.coder_input_problems(["coder_db_port"])
    assert "older than the Coder 2.31.0" in coder_upgrade_refusal.coder_upgrade_refusal("2.31.0", "2.30.0", "v2")
    assert coder_upgrade_refusal.coder_upgrade_refusal(None, "2.30.0", "v2") == ""
    with pytest.raises(AnsibleFilterError, match="coder_extra_stepping_stones"):
        coder_upgrade_refusal.coder_upgrade_refusal("2.30.0", "2.31.0", "v2", [{"from": ">=2.30.0"}])


@pytest.mark.parametrize("message,expected", [
    ("Check login_user and login_password (or CODER_PG_USER and CODER_PG_PASSWORD)",
     "Check coder_db_user and coder_db_password (or CODER_PG_USER and CODER_PG_PASSWORD)"),
    ("login_db is empty; set it", "coder_db_name is empty; set it"),
    # Whole names only: not inside a longer name, not after a prefix.
    ("login_db_extra, coder_login_db, CODER_PG_LOGIN_DB", "login_db_extra, coder_login_db, CODER_PG_LOGIN_DB"),
    # Paths into an option keep their rest.
    ("extra_envs[0].name DB_HOST shadows", "coder_extra_envs[0].name DB_HOST shadows"),
    # Plain words are left alone even when they are options.
    ("the host name does not resolve", "the host name does not resolve"),
    # A longer option that contains a shorter one is renamed whole.
    ("ssl_mode_extra and ssl_mode", "coder_ssl_mode_extra and coder_db_ssl_mode"),
])
def test_option_names(message, expected):
    names = {"login_user": "coder_db_user", "login_password": "coder_db_password", "login_db": "coder_db_name",
             "extra_envs": "coder_extra_envs", "host": "coder_db_host", "ssl_mode": "coder_db_ssl_mode",
             "ssl_mode_extra": "coder_ssl_mode_extra"}
    assert coder_option_names.coder_option_names(message, names) == expected


def test_option_names_error():
    with pytest.raises(AnsibleFilterError) as err:
        coder_option_names.coder_option_names("x", ["login_user"])
    assert str(err.value).startswith("coderops.deploy.coder_option_names: names must be a dictionary")


def test_budget_is_the_shared_function():
    facts = {"max_connections": 20, "superuser_reserved_connections": 3,
             "connections_in_use": {"others": 2}}
    got = coder_connection_budget.coder_connection_budget(facts, replicas=2, max_db_connections=4)
    assert got == connection_budget(20, 3, held_by_others=2, replicas=2, max_db_connections=4)


@pytest.mark.parametrize("facts,kwargs,fragment", [
    ("x", {}, "the input must be a dictionary"),
    ({}, {}, "the input lacks max_connections"),
    ({"max_connections": 20, "superuser_reserved_connections": 3}, {"replicas": 0}, "replicas"),
])
def test_budget_errors(facts, kwargs, fragment):
    with pytest.raises(AnsibleFilterError) as err:
        coder_connection_budget.coder_connection_budget(facts, **kwargs)
    assert str(err.value).startswith("coderops.deploy.coder_connection_budget: ")
    assert fragment in str(err.value)


def test_merge():
    assert coder_values_merge.coder_values_merge({"a": {"b": 1}}, {"a": {"c": 2}}, {"a": {"b": 3}}) == {
        "a": {"b": 3, "c": 2}}


@pytest.mark.parametrize("args,fragment", [
    (({"a": 1},), "give at least one dictionary"),
    (("x", {}), "the input must be a dictionary"),
    (({}, {}, [1]), "argument 2 must be a dictionary"),
])
def test_merge_errors(args, fragment):
    with pytest.raises(AnsibleFilterError) as err:
        coder_values_merge.coder_values_merge(*args)
    assert str(err.value).startswith("coderops.deploy.coder_values_merge: ")
    assert fragment in str(err.value)


def test_url():
    assert coder_pg_url.coder_pg_url({"host": "db", "port": 5432, "user": "u", "database": "d"},
                                     password="a b") == "postgres://u:a%20b@db:5432/d?sslmode=require"


@pytest.mark.parametrize("conn,kwargs,fragment", [
    ("db", {}, "the input must be a dictionary"),
    ({"host": "db"}, {}, "the input lacks port, user, database"),
    ({"host": "db", "port": "x", "user": "u", "database": "d"}, {}, "port must be a number"),
    ({"host": "db", "port": 1, "user": "u", "database": "d"}, {"password": CANARY + "\n"},
     "password has leading or trailing white space"),
])
def test_url_errors_never_hold_the_password(conn, kwargs, fragment):
    kwargs.setdefault("password", CANARY)
    with pytest.raises(AnsibleFilterError) as err:
        coder_pg_url.coder_pg_url(conn, **kwargs)
    text = str(err.value)
    assert text.startswith("coderops.deploy.coder_pg_url: ") and fragment in text
    assert CANARY.strip() not in text and err.value.__cause__ is None


def test_budget_filter_passes_extra_connections_per_replica():
    facts = {"max_connections": 100, "superuser_reserved_connections": 3}
    got = coder_connection_budget.coder_connection_budget(facts, replicas=3, max_db_connections=10,
                                                          extra_connections_per_replica=5)
    assert got["needed_peak"] == 60 and got["needed_steady"] == 45
    assert got == connection_budget(100, 3, replicas=3, max_db_connections=10,
                                    extra_connections_per_replica=5)
    # At its default of 0 the result is exactly the v1 one.
    assert (coder_connection_budget.coder_connection_budget(facts, replicas=3)
            == connection_budget(100, 3, replicas=3))
