# Copyright (c) 2025, coderops maintainers
# GNU General Public License v3.0+ (see LICENSE or https://www.gnu.org/licenses/gpl-3.0.txt)
# SPDX-License-Identifier: GPL-3.0-or-later
"""The facts backend with a fake connection (the real server is the integration tests' job)."""

from __future__ import annotations

from unittest import mock

import pytest
from ansible_collections.coderops.deploy.plugins.module_utils import _pg_facts as facts_mod
from ansible_collections.coderops.deploy.plugins.module_utils._coder_schema import read_state
from ansible_collections.coderops.deploy.plugins.module_utils._pg_connection import (
    ConnectionFailure,
)


class FakeCursor:
    def __init__(self, rows, log):
        self.rows = rows
        self.log = log
        self.last = None

    def __enter__(self):
        return self

    def __exit__(self, *exc):
        return False

    def execute(self, sql, args=None):
        self.log.append(sql)
        for marker, row in self.rows.items():
            if marker in sql:
                self.last = row
                return
        raise AssertionError(f"unexpected SQL {sql}")

    def fetchone(self):
        return self.last


def fake_conn(*args, **kwargs):
    return fake_conn_and_log(*args, **kwargs)[0]


def fake_conn_and_log(version_num=150014, reserved=None, in_recovery=False, ssl=True, total=12, mine=2):
    log = []
    rows = {
        "set_config": ("10000",),
        "server_version_num": ("15.14", version_num, "coder", "coder", in_recovery, 5432, 100, 3,
                               reserved),
        "pg_stat_activity": (total, mine),
        "pg_stat_ssl": (ssl, "TLSv1.3" if ssl else None, "TLS_AES_256_GCM_SHA384" if ssl else None,
                        256 if ssl else None, False),
        "current_schema()": ("public", False, False),
        "SELECT 1": (1,),
    }
    conn = mock.Mock()
    conn.cursor.side_effect = lambda: FakeCursor(rows, log)
    return conn, log


def params(**update):
    p = {"login_host": "db", "login_port": 5432, "login_user": "coder", "login_db": "coder",
         "login_password": "pw", "ssl_mode": "require", "connect_timeout": 10,
         "connector": "postgres", "latency_samples": 5, "require_primary": True, "replicas": 1,
         "max_db_connections": 30, "surge_percent": 25, "reserve_connections": 0}
    p.update(update)
    return p


def run(conn, **update):
    with mock.patch.object(facts_mod, "open_connection", return_value=conn) as opener:
        result = facts_mod.gather(params(**update))
    return result, opener


def test_facts_are_read_and_connection_closed():
    conn, log = fake_conn_and_log()
    (facts, failure), opener = run(conn)
    assert failure is None
    assert opener.call_count == 1
    assert facts["server_version"] == "15.14" and facts["port"] == 5432
    assert facts["connections_in_use"] == {"total": 12, "coder_user": 2, "others": 10}
    assert facts["reserved_connections"] == 0
    assert facts["latency_ms"]["samples"] == 5
    assert facts["ssl"]["in_use"] is True and facts["ssl"]["protocol"] == "TLSv1.3"
    # The budget subtracts the 10 connections other users hold: 100 - 3 - 10 = 87.
    assert facts["budget"]["available"] == 87
    conn.rollback.assert_called_once()
    conn.close.assert_called_once()
    assert sum(s.endswith("SELECT 1") for s in log) == 5  # the latency samples
    assert all(s.startswith("/* coderops.deploy.coder_pg_facts */") for s in log)


def test_pg16_reserved_connections():
    conn = fake_conn(version_num=160004, reserved=4)
    facts = run(conn)[0][0]
    assert facts["reserved_connections"] == 4
    assert facts["budget"]["available"] == 100 - 3 - 4 - 10


def test_standby_fails_with_facts_unless_allowed():
    conn = fake_conn(in_recovery=True)
    (facts, failure), _opener = run(conn)
    assert failure.reason == "standby" and facts["in_recovery"] is True
    conn = fake_conn(in_recovery=True)
    (facts, failure), _opener = run(conn, require_primary=False)
    assert failure is None and facts["in_recovery"] is True


def test_query_error_is_mapped_and_connection_closed():
    conn = mock.Mock()
    cursor = mock.MagicMock()
    cursor.__enter__.return_value = cursor
    cursor.execute.side_effect = facts_mod.psycopg2.OperationalError("server closed the connection unexpectedly")
    conn.cursor.return_value = cursor
    (facts, failure), _opener = run(conn)
    assert facts is None and failure.reason == "other"
    conn.close.assert_called_once()


@pytest.mark.parametrize("update,fragment", [
    ({"latency_samples": 0}, "latency_samples must be between 1 and 100"),
    ({"latency_samples": 101}, "latency_samples must be between 1 and 100"),
    ({"replicas": 0}, "replicas must be between 1"),
    ({"surge_percent": 200}, "surge_percent must be between 0 and 100"),
])
def test_bad_options_fail_before_connecting(update, fragment):
    with mock.patch.object(facts_mod, "open_connection") as opener:
        facts, failure = facts_mod.gather(params(**update))
    opener.assert_not_called()
    assert facts is None and failure.reason == "invalid_options" and fragment in failure.message


def test_connection_failure_passes_through():
    failure = ConnectionFailure("refused", "nothing there")
    with mock.patch.object(facts_mod, "open_connection", side_effect=failure):
        facts, got = facts_mod.gather(params())
    assert facts is None and got is failure


def test_rds_token_is_registered_as_secret():
    conn = fake_conn()
    seen = []
    with mock.patch.object(facts_mod, "rds_auth_token", return_value="TOKEN"), \
            mock.patch.object(facts_mod, "open_connection", return_value=conn) as opener:
        facts, failure = facts_mod.gather(params(connector="awsiamrds", login_password=None),
                                          register_secret=seen.append)
    assert failure is None and seen == ["TOKEN"]
    assert opener.call_args.args[1] == "TOKEN"


@pytest.mark.parametrize("samples,expected", [
    ([5.0], {"samples": 1, "min": 5.0, "median": 5.0, "p95": 5.0}),
    ([1.0, 2.0, 3.0, 4.0], {"samples": 4, "min": 1.0, "median": 2.5, "p95": 4.0}),
    ([float(i) for i in range(1, 21)], {"samples": 20, "min": 1.0, "median": 10.5, "p95": 19.0}),
    ([3.0, 1.0, 2.0], {"samples": 3, "min": 1.0, "median": 2.0, "p95": 3.0}),
])
def test_latency_summary(samples, expected):
    assert facts_mod.latency_summary(samples) == expected


def test_budget_counts_extra_connections_per_replica():
    """The v2 overhead: 1 replica + 1 surge pod, each 10 + 5, on 87 available."""
    conn, _log = fake_conn_and_log()
    (facts, failure), _opener = run(conn, max_db_connections=10, extra_connections_per_replica=5)
    assert failure is None
    assert facts["budget"]["needed_peak"] == 30
    assert facts["budget"]["inputs"]["extra_connections_per_replica"] == 5


@pytest.mark.parametrize("tables,rows,want", [
    ((False, False), {}, {"generation": "none", "version": None, "dirty": False, "v1_cursor": None}),
    ((True, False), {"FROM schema_migrations": (342, True)},
     {"generation": "v2", "version": 342, "dirty": True, "v1_cursor": None}),
    ((False, True), {"FROM migration_cursor": ('[{"id": 1, "version": 3}]',)},
     {"generation": "v1", "version": None, "dirty": False, "v1_cursor": '[{"id": 1, "version": 3}]'}),
    ((True, True), {"FROM schema_migrations": (5, False), "FROM migration_cursor": ("[]",)},
     {"generation": "both", "version": 5, "dirty": False, "v1_cursor": "[]"}),
])
def test_coder_schema_state(tables, rows, want):
    log = []
    cur = FakeCursor({"set_config": ("coder_v2",), "current_schema()": ("coder_v2", *tables), **rows}, log)
    state = read_state(cur, "coder_v2, public")
    assert state == {"schema": "coder_v2", **want}
    assert "set_config('search_path'" in log[0]
    assert len(log) == 2 + len(rows)
