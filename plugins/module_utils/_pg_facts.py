# Copyright (c) 2025, coderops maintainers
# GNU General Public License v3.0+ (see LICENSE or https://www.gnu.org/licenses/gpl-3.0.txt)
# SPDX-License-Identifier: GPL-3.0-or-later

# Note that this module util is **PRIVATE** to the collection. It can have breaking changes at any time.
# Do not use this from other collections or standalone plugins/modules!

"""Backend of coder_pg_facts: one connection, one read-only transaction, then closed.

Why not community.postgresql.postgresql_info: it runs many queries the deployment does not
need (some need superuser), has no stable failure reasons, no latency sampling and no
connection budget. Everything returned here is read from the server, never echoed from input.
"""

from __future__ import annotations

import math
import time

from ansible_collections.coderops.deploy.plugins.module_utils._budget import (
    BudgetError,
    check_plan,
    connection_budget,
)
from ansible_collections.coderops.deploy.plugins.module_utils._coder_schema import read_state
from ansible_collections.coderops.deploy.plugins.module_utils._pg_connection import (
    ConnectionFailure,
    build_failure,
    check_connection_params,
    failure_from_exception,
    open_connection,
    rds_auth_token,
)

try:
    import psycopg2
except ImportError:
    psycopg2 = None

# A marker in every statement, so the server's log and pg_stat_activity show whose SQL it is.
_MARK = "/* coderops.deploy.coder_pg_facts */ "

_SETTINGS_SQL = _MARK + """
SELECT current_setting('server_version'),
       current_setting('server_version_num')::int,
       current_user,
       current_database(),
       pg_is_in_recovery(),
       (SELECT setting::int FROM pg_settings WHERE name = 'port'),
       (SELECT setting::int FROM pg_settings WHERE name = 'max_connections'),
       (SELECT setting::int FROM pg_settings WHERE name = 'superuser_reserved_connections'),
       (SELECT setting::int FROM pg_settings WHERE name = 'reserved_connections')
"""

# Only client backends take a max_connections slot; walsenders, autovacuum and background
# workers have their own limits.
_ACTIVITY_SQL = _MARK + """
SELECT count(*) FILTER (WHERE backend_type = 'client backend'),
       count(*) FILTER (WHERE backend_type = 'client backend' AND usename = current_user)
FROM pg_stat_activity
"""

_SSL_SQL = _MARK + """
SELECT ssl, version, cipher, bits, client_dn IS NOT NULL
FROM pg_stat_ssl WHERE pid = pg_backend_pid()
"""

_PING_SQL = _MARK + "SELECT 1"

MIN_SAMPLES = 1
MAX_SAMPLES = 100


def percentile(samples, pct):
    """Nearest-rank percentile of a non-empty list."""
    ordered = sorted(samples)
    rank = max(1, math.ceil(pct / 100.0 * len(ordered)))
    return ordered[rank - 1]


def median(samples):
    ordered = sorted(samples)
    mid = len(ordered) // 2
    if len(ordered) % 2:
        return ordered[mid]
    return (ordered[mid - 1] + ordered[mid]) / 2.0


def latency_summary(samples_ms):
    return {
        "samples": len(samples_ms),
        "min": round(min(samples_ms), 3),
        "median": round(median(samples_ms), 3),
        "p95": round(percentile(samples_ms, 95), 3),
    }


def _read_facts(conn, latency_samples, timeout_ms, search_path=None):
    with conn.cursor() as cur:
        # Bound every statement, server side, inside our read-only transaction.
        cur.execute(_MARK + "SELECT set_config('statement_timeout', %s, true)", (str(timeout_ms),))
        cur.execute(_SETTINGS_SQL)
        (version, version_num, user, database, in_recovery, port, max_conn, su_reserved,
         reserved) = cur.fetchone()
        cur.execute(_ACTIVITY_SQL)
        total, by_user = cur.fetchone()
        cur.execute(_SSL_SQL)
        row = cur.fetchone()
        ssl_in_use, protocol, cipher, bits, client_cert = row if row else (False, None, None, None, False)
        samples = []
        for _sample in range(latency_samples):
            start = time.perf_counter()
            cur.execute(_PING_SQL)
            cur.fetchone()
            samples.append((time.perf_counter() - start) * 1000.0)
        schema = read_state(cur, search_path)
    return {
        "coder_schema": schema,
        "server_version": version,
        "server_version_num": version_num,
        "port": port,
        "user": user,
        "database": database,
        "max_connections": max_conn,
        "superuser_reserved_connections": su_reserved,
        # reserved_connections exists from PostgreSQL 16 on.
        "reserved_connections": reserved if (reserved is not None and version_num >= 160000) else 0,
        "connections_in_use": {
            "total": total,
            "coder_user": by_user,
            "others": total - by_user,
        },
        "in_recovery": bool(in_recovery),
        "ssl": {
            "in_use": bool(ssl_in_use),
            "protocol": protocol,
            "cipher": cipher,
            "bits": bits,
            "client_certificate": bool(client_cert),
        },
        "latency_ms": latency_summary(samples),
    }


def gather(params, register_secret=None):
    """Connect, read, close. Returns (facts, failure): failure is a ConnectionFailure or None.

    `register_secret` is called with every secret made here (the RDS IAM token), so that the
    caller can mask it (AnsibleModule.no_log_values).

    On a standby with require_primary the facts are returned along with the failure, so the
    operator still sees what was read.
    """
    samples = params.get("latency_samples", 5)
    if not MIN_SAMPLES <= samples <= MAX_SAMPLES:
        return None, ConnectionFailure("invalid_options", f"latency_samples must be between"
                                       f" {MIN_SAMPLES} and {MAX_SAMPLES}; got {samples}")
    try:
        check_plan(params)
    except BudgetError as exc:
        return None, ConnectionFailure("invalid_options", str(exc))
    token = None
    try:
        check_connection_params(params)
        if params.get("connector") == "awsiamrds":
            token = rds_auth_token(params)
            if register_secret:
                register_secret(token)
        conn = open_connection(params, token)
    except ConnectionFailure as failure:
        return None, failure
    try:
        facts = _read_facts(conn, samples, params["connect_timeout"] * 1000, params.get("search_path"))
    except psycopg2.Error as exc:
        return None, failure_from_exception(exc, params, token)
    finally:
        try:
            conn.rollback()
        except psycopg2.Error:
            pass
        conn.close()
    facts["budget"] = connection_budget(
        max_connections=facts["max_connections"],
        superuser_reserved_connections=facts["superuser_reserved_connections"],
        reserved_connections=facts["reserved_connections"],
        held_by_others=facts["connections_in_use"]["others"],
        replicas=params["replicas"],
        max_db_connections=params["max_db_connections"],
        surge_percent=params["surge_percent"],
        reserve_connections=params["reserve_connections"],
        extra_connections_per_replica=params.get("extra_connections_per_replica") or 0,
    )
    if facts["in_recovery"] and params.get("require_primary", True):
        return facts, build_failure("standby", params)
    return facts, None
