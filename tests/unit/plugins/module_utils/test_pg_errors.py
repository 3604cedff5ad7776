# Copyright (c) 2025, coderops maintainers
# GNU General Public License v3.0+ (see LICENSE or https://www.gnu.org/licenses/gpl-3.0.txt)
# SPDX-License-Identifier: GPL-3.0-or-later
"""Error mapping: SQLSTATEs and libpq / server messages to stable reasons.

The messages are the texts psycopg2 2.9 (libpq 17) and PostgreSQL 15 produced for the faults
of the integration tests, plus the variants of other libpq and server versions.
"""

from __future__ import annotations

import pytest
from ansible_collections.coderops.deploy.plugins.module_utils._pg_errors import (
    EXTRA_REASONS,
    REASONS,
    classify,
    explain,
    scrub,
)

AT = 'connection to server at "127.0.0.1", port 55432 failed: '

MESSAGES = [
    ("dns", 'could not translate host name "nope.invalid" to address: Name or service not known\n'),
    ("dns", 'could not translate host name "db" to address: Temporary failure in name resolution'),
    ("dns", 'could not translate host name "db" to address: nodename nor servname provided, or not known'),
    ("refused", AT + "Connection refused\n\tIs the server running on that host and accepting TCP/IP connections?\n"),
    ("refused", 'could not connect to server: Connection refused\n\tIs the server running on host "db" '
                '(10.0.0.1) and accepting\n\tTCP/IP connections on port 5432?'),
    ("timeout", AT + "timeout expired\n"),
    ("timeout", 'connection to server at "169.254.7.2", port 5432 failed: timeout expired'),
    ("timeout", AT + "Connection timed out"),
    ("timeout", AT + "No route to host"),
    ("timeout", AT + "Network is unreachable"),
    ("auth_failed", AT + 'FATAL:  password authentication failed for user "coder"\n'),
    ("auth_failed", AT + "fe_sendauth: no password supplied\n"),
    ("auth_failed", AT + 'FATAL:  role "nobody" does not exist'),
    ("auth_failed", AT + 'FATAL:  PAM authentication failed for user "coder"'),
    ("auth_failed", 'connection to server at "localhost" (::1), port 55432 failed: Connection refused\n'
                    '\tIs the server running on that host and accepting TCP/IP connections?\n'
                    'connection to server at "localhost" (127.0.0.1), port 55432 failed: FATAL:  '
                    'password authentication failed for user "coder"\n'),
    ("hba_rejected", AT + ('FATAL:  pg_hba.conf rejects connection for host "127.0.0.1", user "coder_mtls",'
                           ' database "coder", no encryption\n')),
    ("hba_rejected", AT + ('FATAL:  no pg_hba.conf entry for host "127.0.0.1", user "nobody", database'
                           ' "coder", no encryption')),
    ("hba_rejected", AT + 'FATAL:  no pg_hba.conf entry for host "10.0.0.9", user "coder", database "coder", SSL off'),
    ("database_missing", AT + 'FATAL:  database "nope" does not exist\n'),
    ("too_many_clients", AT + "FATAL:  sorry, too many clients already\n"),
    ("too_many_clients", AT + ("FATAL:  remaining connection slots are reserved for non-replication superuser"
                               " connections\n")),
    ("too_many_clients", AT + "FATAL:  remaining connection slots are reserved for roles with the SUPERUSER attribute"),
    ("too_many_clients", AT + ('FATAL:  remaining connection slots are reserved for roles with privileges of'
                               ' the "pg_use_reserved_connections" role')),
    ("too_many_clients", AT + 'FATAL:  too many connections for role "coder"'),
    ("ssl_unsupported", AT + "server does not support SSL, but SSL was required\n"),
    ("ssl_verify_failed", AT + "SSL error: certificate verify failed\n"),
    ("ssl_verify_failed", AT + 'server certificate for "wrong-host.invalid" does not match host name "127.0.0.1"\n'),
    ("ssl_verify_failed", AT + 'server certificate for "a" (and 1 other name) does not match host name "b"'),
    ("ssl_verify_failed", AT + ('root certificate file "/nonexistent/ca.crt" does not exist\nEither provide the'
                                ' file, use the system\'s trusted roots with sslrootcert=system, or change'
                                ' sslmode to disable server certificate verification.\n')),
    ("ssl_verify_failed", AT + ('root certificate file "/root/.postgresql/root.crt" does not exist\nEither'
                                ' provide the file or change sslmode to disable server certificate verification.')),
    ("ssl_verify_failed", AT + "SSL error: self-signed certificate in certificate chain"),
    ("client_cert_required", AT + "FATAL:  connection requires a valid client certificate\n"),
    ("client_cert_required", AT + "SSL error: tlsv1 alert unknown ca\n"),
    ("client_cert_required", AT + "SSL error: tlsv13 alert certificate required"),
    ("client_cert_required", AT + "SSL error: sslv3 alert bad certificate"),
    ("client_cert_required", AT + 'certificate present, but not private key file "/nonexistent.key"\n'),
    ("client_cert_required", AT + 'FATAL:  certificate authentication failed for user "coder_mtls"'),
    ("client_cert_required", AT + 'could not open certificate file "/x.crt": No such file or directory'),
    ("starting_up", AT + "FATAL:  the database system is starting up\n"),
    ("starting_up", AT + "FATAL:  the database system is shutting down"),
    ("starting_up", AT + ("FATAL:  the database system is not accepting connections\nDETAIL:  Hot standby"
                          " mode is disabled.\n")),
    ("starting_up", AT + ("FATAL:  the database system is not yet accepting connections\nDETAIL: "
                          " Consistent recovery state has not been yet reached.")),
    ("starting_up", AT + "FATAL:  the database system is in recovery mode"),
    ("other", AT + "server closed the connection unexpectedly"),
    ("other", ""),
]


@pytest.mark.parametrize("reason,message", MESSAGES, ids=[f"{m[0]}-{i}" for i, m in enumerate(MESSAGES)])
def test_messages(reason, message):
    assert classify(message) == reason


@pytest.mark.parametrize("sqlstate,message,reason", [
    ("28P01", "", "auth_failed"),
    ("3D000", "", "database_missing"),
    ("53300", "", "too_many_clients"),
    ("57P03", "", "starting_up"),
    ("28000", 'no pg_hba.conf entry for host "x"', "hba_rejected"),
    ("28000", "connection requires a valid client certificate", "client_cert_required"),
    ("28000", 'role "x" does not exist', "auth_failed"),
    ("08006", "Connection refused", "refused"),
    (None, "timeout expired", "timeout"),
])
def test_sqlstates(sqlstate, message, reason):
    assert classify(message, sqlstate) == reason


def test_every_reason_has_a_fix():
    for reason in REASONS + EXTRA_REASONS:
        if reason == "invalid_options":
            continue
        text = explain(reason, host="db", port=5432, user="coder", database="coder",
                       ssl_mode="verify-full", timeout=10)
        assert text and "{" not in text


def test_explain_fills_defaults():
    assert "(default)" in explain("refused", host=None, port=None)


def test_every_reason_is_produced_by_some_message():
    produced = {classify(m[1]) for m in MESSAGES}
    # standby comes from pg_is_in_recovery(), not from an error message.
    assert set(REASONS) - {"standby"} <= produced


@pytest.mark.parametrize("secret", ["hunter2", "p w'\"=@%\\:é€", "a+b/c"])
def test_scrub_removes_secret_in_every_form(secret):
    import base64
    import json
    from urllib.parse import quote, quote_plus

    # json.dumps(..., ensure_ascii=False) is Go's %q: quotes escaped, printable Unicode kept.
    forms = [secret, quote(secret, safe=""), quote_plus(secret), json.dumps(secret)[1:-1],
             json.dumps(secret, ensure_ascii=False)[1:-1], base64.b64encode(secret.encode()).decode()]
    text = "x " + " | ".join(forms) + " y"
    out = scrub(text, [secret])
    for form in forms:
        assert form not in out
    assert out.startswith("x ") and out.endswith(" y")


def test_scrub_without_secrets():
    assert scrub("text", []) == "text"
    assert scrub("", ["x"]) == ""
