"""The PostgreSQL servers of the test bed are what docs/testbed.md says they are."""

from __future__ import annotations

import statistics
import time

import psycopg2
import pytest
from conftest import ENV, connect, query, require_server, server_params


def test_main_accepts_password_over_tls_verify_full():
    require_server("main")
    rows = query("main", "SELECT current_user, current_database(), ssl, version "
                         "FROM pg_stat_ssl WHERE pid = pg_backend_pid()")
    assert rows == [("coder", "coder", True, rows[0][3])]
    assert rows[0][3].startswith("TLSv1.")


def test_main_env_points_at_main():
    assert ENV["PGPORT"] == ENV["CODER_TEST_PG_MAIN_PORT"]
    assert "PGPASSWORD" not in ENV
    assert not any(open(ENV["CODER_TEST_PG_PASSWORD_FILE"]).read() in v for k, v in ENV.items()
                   if k != "CODER_TEST_PG_PASSWORD_FILE")


def test_main_rejects_wrong_password():
    with pytest.raises(psycopg2.OperationalError, match="password authentication failed"):
        connect("main", password="not-the-password")


def test_main_certificate_does_not_match_other_names():
    # verify-full checks the host name: the certificate names 127.0.0.1 and localhost only.
    with pytest.raises(psycopg2.OperationalError, match="does not match host name"):
        connect("main", host="wrong-name.invalid", hostaddr="127.0.0.1")


@pytest.mark.parametrize("server", ["main", "small", "standby", "far"])
def test_mtls_role_needs_its_client_certificate(server):
    require_server(server)
    user = ENV["CODER_TEST_PG_MTLS_USER"]
    ok = query(server, "SELECT current_user", user=user, password=None,
               sslcert=ENV["CODER_TEST_PG_CLIENT_CERT"], sslkey=ENV["CODER_TEST_PG_CLIENT_KEY"])
    assert ok == [(user,)]
    with pytest.raises(psycopg2.OperationalError, match="valid client certificate"):
        connect(server, user=user, password=None)
    with pytest.raises(psycopg2.OperationalError, match="unknown ca|certificate"):
        connect(server, user=user, password=None, sslcert=ENV["CODER_TEST_PG_ROGUE_CLIENT_CERT"],
                sslkey=ENV["CODER_TEST_PG_ROGUE_CLIENT_KEY"])


def test_mtls_role_cannot_log_in_without_tls():
    with pytest.raises(psycopg2.OperationalError, match="rejects connection|no pg_hba"):
        connect("main", user=ENV["CODER_TEST_PG_MTLS_USER"], sslmode="disable")


def test_small_has_20_connections():
    require_server("small")
    assert query("small", "SHOW max_connections") == [("20",)]
    assert query("main", "SHOW max_connections") == [("100",)]


def test_standby_is_in_recovery_and_follows_main():
    require_server("standby")
    assert query("standby", "SELECT pg_is_in_recovery()") == [(True,)]
    assert query("main", "SELECT pg_is_in_recovery()") == [(False,)]
    # The standby really streams from main: the roles and database made on main are there.
    assert query("standby", "SELECT current_user, current_database()") == [("coder", "coder")]


def _round_trips_ms(name: str, samples: int = 7) -> list[float]:
    conn = connect(name)
    try:
        with conn.cursor() as cur:
            times = []
            for _ in range(samples):
                start = time.perf_counter()
                cur.execute("SELECT 1")
                cur.fetchall()
                times.append((time.perf_counter() - start) * 1000)
            return times
    finally:
        conn.close()


def test_far_adds_at_least_20ms_round_trip():
    require_server("far")
    far = statistics.median(_round_trips_ms("far"))
    near = statistics.median(_round_trips_ms("main"))
    assert far >= 20, f"far: median round trip {far:.1f} ms"
    assert near < 20, f"main: median round trip {near:.1f} ms (should be local)"


def test_far_backend_is_not_exposed_to_clients_by_default():
    # The proxy is what clients use; the backend port is documented for tests that need it.
    params = server_params("far")
    assert params["port"] != int(ENV["CODER_TEST_PG_FAR_BACKEND_PORT"])


def test_container_server_answers_over_tls():
    require_server("container")
    rows = query("container", "SELECT current_user, ssl FROM pg_stat_ssl WHERE pid = pg_backend_pid()")
    assert rows == [("coder", True)]
    version = query("container", "SHOW server_version")[0][0]
    assert version.startswith("15.")
