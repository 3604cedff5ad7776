# Copyright (c) 2025, coderops maintainers
# GNU General Public License v3.0+ (see LICENSE or https://www.gnu.org/licenses/gpl-3.0.txt)
# SPDX-License-Identifier: GPL-3.0-or-later

# Note that this module util is **PRIVATE** to the collection. It can have breaking changes at any time.
# Do not use this from other collections or standalone plugins/modules!

"""Connection options and the one PostgreSQL connection of coder_pg_facts.

Why not community.postgresql's connect_to_db(): it calls fail_json() itself with libpq's raw
text (no stable failure reason), sets no connect_timeout by default (libpq then waits
forever on an address that never answers), has no read-only transaction, and knows no RDS
IAM token. Here the connection is opened once, with keyword arguments only (never a DSN
string, which libpq would echo in part when it is malformed), inside a read-only
transaction, and every failure becomes a ConnectionFailure with a stable reason.
"""

from __future__ import annotations

import copy

from ansible.module_utils.basic import env_fallback
from ansible_collections.coderops.deploy.plugins.module_utils._inputs import (
    CONNECTORS,
    SSL_MODES,
)
from ansible_collections.coderops.deploy.plugins.module_utils._pg_errors import (
    classify,
    explain,
    scrub,
)

try:
    import psycopg2
except ImportError:
    psycopg2 = None
    HAS_PSYCOPG2 = False
else:
    HAS_PSYCOPG2 = True

DEFAULT_CONNECT_TIMEOUT = 10
MAX_CONNECT_TIMEOUT = 600
APPLICATION_NAME = "coderops.deploy.coder_pg_facts"

# Environment variables an AWX credential type injects; one per connection option.
ENV_VARS = {
    "login_host": "CODER_PG_HOST",
    "login_port": "CODER_PG_PORT",
    "login_user": "CODER_PG_USER",
    "login_password": "CODER_PG_PASSWORD",
    "login_db": "CODER_PG_DATABASE",
    "ssl_mode": "CODER_PG_SSLMODE",
    "ca_cert": "CODER_PG_SSLROOTCERT",
    "ssl_cert": "CODER_PG_SSLCERT",
    "ssl_key": "CODER_PG_SSLKEY",
}

_PG_CONNECTION_SPEC = {
    "login_host": {"type": "str", "fallback": (env_fallback, [ENV_VARS["login_host"]])},
    "login_port": {"type": "int", "fallback": (env_fallback, [ENV_VARS["login_port"]])},
    "login_user": {"type": "str", "fallback": (env_fallback, [ENV_VARS["login_user"]])},
    "login_password": {"type": "str", "no_log": True,
                       "fallback": (env_fallback, [ENV_VARS["login_password"]])},
    "login_db": {"type": "str", "fallback": (env_fallback, [ENV_VARS["login_db"]])},
    "ssl_mode": {"type": "str", "default": "require", "choices": list(SSL_MODES),
                 "fallback": (env_fallback, [ENV_VARS["ssl_mode"]])},
    "ca_cert": {"type": "path", "fallback": (env_fallback, [ENV_VARS["ca_cert"]])},
    "ssl_cert": {"type": "path", "fallback": (env_fallback, [ENV_VARS["ssl_cert"]])},
    # A path to the key file, not the key itself.
    "ssl_key": {"type": "path", "no_log": False,
                "fallback": (env_fallback, [ENV_VARS["ssl_key"]])},
    "connect_timeout": {"type": "int", "default": DEFAULT_CONNECT_TIMEOUT},
    "connector": {"type": "str", "default": "postgres", "choices": list(CONNECTORS)},
    "aws_region": {"type": "str", "fallback": (env_fallback, ["AWS_REGION", "AWS_DEFAULT_REGION"])},
}


def pg_connection_argument_spec():
    """A fresh copy of the connection options (paired with doc fragment coderops.deploy._pg_connection)."""
    return copy.deepcopy(_PG_CONNECTION_SPEC)


class ConnectionFailure(Exception):
    """A failed connection: a stable `reason` and an operator-facing message (already scrubbed)."""

    def __init__(self, reason, message, detail=None):
        super().__init__(message)
        self.reason = reason
        self.message = message
        self.detail = detail


def _context(params):
    return {
        "host": params.get("login_host"),
        "port": params.get("login_port"),
        "user": params.get("login_user"),
        "database": params.get("login_db"),
        "ssl_mode": params.get("ssl_mode"),
        "timeout": params.get("connect_timeout"),
    }


def check_connection_params(params):
    """Input checks that need no server; raise ConnectionFailure('invalid_options', ...)."""
    timeout = params.get("connect_timeout")
    if timeout is None or not 1 <= timeout <= MAX_CONNECT_TIMEOUT:
        raise ConnectionFailure("invalid_options", f"connect_timeout must be between 1 and"
                                f" {MAX_CONNECT_TIMEOUT} seconds (libpq waits forever with 0);"
                                f" got {timeout}")
    if params.get("login_port") is not None and not 1 <= params["login_port"] <= 65535:
        raise ConnectionFailure("invalid_options", f"login_port {params['login_port']} is out of"
                                f" range; use a port between 1 and 65535")
    for field in ("login_host", "login_user", "login_db"):
        value = params.get(field)
        if value is not None and not value.strip():
            raise ConnectionFailure("invalid_options", f"{field} is empty; set it, or leave it out"
                                    f" to use {ENV_VARS[field]} or libpq's default")
    if bool(params.get("ssl_cert")) != bool(params.get("ssl_key")):
        given, missing = ("ssl_cert", "ssl_key") if params.get("ssl_cert") else ("ssl_key", "ssl_cert")
        raise ConnectionFailure("invalid_options", f"{given} is set but {missing} is not; a client"
                                f" certificate needs its private key and the reverse")
    if params.get("connector") == "awsiamrds":
        if params.get("login_password"):
            raise ConnectionFailure("invalid_options", "login_password is set, but connector"
                                    " awsiamrds logs in with an RDS IAM token instead; remove"
                                    " login_password (and CODER_PG_PASSWORD)")
        for field in ("login_host", "login_user"):
            if not params.get(field):
                raise ConnectionFailure("invalid_options", f"connector awsiamrds needs {field}"
                                        f" (or {ENV_VARS[field]}) to sign the IAM token")
        if params.get("ssl_mode") in ("disable", "allow"):
            raise ConnectionFailure("invalid_options", f"connector awsiamrds needs TLS (RDS"
                                    f" refuses IAM logins without it); set ssl_mode to require,"
                                    f" verify-ca or verify-full, not {params['ssl_mode']}")


def _load_boto3():
    """boto3 and botocore.exceptions, imported on first use rather than with this module: only
    connector awsiamrds needs them, and importing them cost 0.12 to 0.18 s of every
    coder_pg_facts run (docs/performance.md, B3)."""
    try:
        import boto3
        import botocore.exceptions
    except ImportError:
        raise ConnectionFailure("invalid_options", "connector awsiamrds needs the Python library"
                                " boto3 on the host that runs the module; install it (pip install"
                                " boto3)") from None
    return boto3, botocore.exceptions


def rds_auth_token(params):
    """Generate an RDS IAM auth token with boto3 from aws_region and the ambient credentials."""
    boto3, botocore_exceptions = _load_boto3()
    port = params.get("login_port") or 5432
    region = params.get("aws_region")
    try:
        client = boto3.client("rds", region_name=region)
        return client.generate_db_auth_token(DBHostname=params["login_host"], Port=port,
                                             DBUsername=params["login_user"], Region=region)
    except botocore_exceptions.NoRegionError:
        raise ConnectionFailure("invalid_options", "connector awsiamrds needs an AWS region: set"
                                " aws_region (or AWS_REGION)") from None
    except botocore_exceptions.NoCredentialsError:
        raise ConnectionFailure("auth_failed", "PostgreSQL connection failed (auth_failed): connector"
                                " awsiamrds found no AWS credentials to sign the RDS IAM token."
                                " Give the host an instance profile or IRSA role, or set"
                                " AWS_PROFILE / AWS_ACCESS_KEY_ID") from None
    except botocore_exceptions.BotoCoreError as exc:
        raise ConnectionFailure("auth_failed", f"PostgreSQL connection failed (auth_failed): could not"
                                f" generate the RDS IAM token: {exc}") from None


def connect_kwargs(params, password=None):
    """psycopg2.connect() keyword arguments; options left out fall back to libpq's defaults."""
    kwargs = {
        "connect_timeout": params["connect_timeout"],
        "sslmode": params["ssl_mode"],
        "application_name": APPLICATION_NAME,
        # Bounds reads after the connection is up, too: unacknowledged data for longer than this
        # drops the connection (Linux), so a server that stops answering cannot hang the module.
        "tcp_user_timeout": params["connect_timeout"] * 1000,
    }
    for option, keyword in (("login_host", "host"), ("login_port", "port"), ("login_user", "user"),
                            ("login_db", "dbname"), ("ca_cert", "sslrootcert"),
                            ("ssl_cert", "sslcert"), ("ssl_key", "sslkey")):
        if params.get(option) not in (None, ""):
            kwargs[keyword] = params[option]
    if password:
        kwargs["password"] = password
    return kwargs


def secrets_of(params, token=None):
    return [s for s in (params.get("login_password"), token) if s]


def open_connection(params, token=None):
    """Open the one connection, read-only; raise ConnectionFailure on any failure."""
    if not HAS_PSYCOPG2:
        raise ConnectionFailure("invalid_options", "this module needs the Python library psycopg2"
                                " on the host that runs it; install psycopg2-binary")
    password = token if params.get("connector") == "awsiamrds" else params.get("login_password")
    try:
        conn = psycopg2.connect(**connect_kwargs(params, password))
    except psycopg2.Error as exc:
        raise failure_from_exception(exc, params, token) from None
    try:
        conn.set_session(readonly=True, autocommit=False)
    except psycopg2.Error as exc:
        conn.close()
        raise failure_from_exception(exc, params, token) from None
    return conn


def failure_from_exception(exc, params, token=None):
    """A ConnectionFailure for a psycopg2 error, with the reason, the fix and the server's text."""
    raw = str(getattr(exc, "pgerror", None) or exc or "").strip()
    detail = scrub(raw, secrets_of(params, token))
    reason = classify(raw, getattr(exc, "pgcode", None))
    return build_failure(reason, params, detail)


def build_failure(reason, params, detail=None):
    what = "PostgreSQL server refused" if reason == "standby" else "PostgreSQL connection failed"
    message = f"{what} ({reason}): {explain(reason, **_context(params))}."
    if detail:
        message += " The server or libpq said: " + " ".join(detail.split())
    return ConnectionFailure(reason, message, detail)
