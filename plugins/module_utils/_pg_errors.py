# Copyright (c) 2025, coderops maintainers
# GNU General Public License v3.0+ (see LICENSE or https://www.gnu.org/licenses/gpl-3.0.txt)
# SPDX-License-Identifier: GPL-3.0-or-later

# Note that this module util is **PRIVATE** to the collection. It can have breaking changes at any time.
# Do not use this from other collections or standalone plugins/modules!

"""Map a failed PostgreSQL connection to a stable reason and a message that says what to fix.

psycopg2 raises OperationalError without a SQLSTATE when the connection itself fails: all it
has is libpq's message (client-side text, plus the server's FATAL message when the server
answered). So the mapping looks at the SQLSTATE when there is one, and otherwise at libpq's
and the server's message texts. These texts are English as long as the server's lc_messages
is C or English (the default of initdb with the C locale and of the managed services).

libpq may try several addresses for one host name (localhost: ::1, then 127.0.0.1) and
reports each attempt; the most specific failure wins, by the order of _PATTERNS.
"""

from __future__ import annotations

REASONS = (
    "dns",
    "refused",
    "timeout",
    "auth_failed",
    "hba_rejected",
    "database_missing",
    "too_many_clients",
    "ssl_unsupported",
    "ssl_verify_failed",
    "client_cert_required",
    "starting_up",
    "standby",
)
# Reasons outside the connection failure modes: bad module input found before connecting,
# and a failure no pattern knows (its message still carries the server's or libpq's text).
EXTRA_REASONS = ("invalid_options", "other")

_SQLSTATE = {
    "28P01": "auth_failed",  # invalid_password
    "3D000": "database_missing",  # invalid_catalog_name
    "53300": "too_many_clients",  # too_many_connections
    "57P03": "starting_up",  # cannot_connect_now
}

# (reason, lower-case fragments); the first reason with a matching fragment wins, so server-side
# answers come before TLS trouble, and TLS trouble before network-level failures. A tuple
# matches when all its parts occur.
_PATTERNS = (
    ("client_cert_required", (
        "connection requires a valid client certificate",
        "certificate authentication failed for user",
        "alert unknown ca",
        "alert bad certificate",
        "alert certificate required",
        "alert certificate unknown",
        "alert certificate expired",
        "alert certificate revoked",
        "certificate present, but not private key file",
        "could not open certificate file",
        "could not read certificate file",
        "could not load private key file",
        "could not load ssl certificate",
        "private key file",
    )),
    ("hba_rejected", (
        "pg_hba.conf rejects connection",
        "no pg_hba.conf entry",
    )),
    ("database_missing", (
        ('database "', '" does not exist'),
    )),
    ("too_many_clients", (
        "too many clients already",
        "remaining connection slots are reserved",
        "too many connections for role",
        "too many connections for database",
    )),
    ("starting_up", (
        "the database system is starting up",
        "the database system is shutting down",
        "the database system is not yet accepting connections",
        "the database system is not accepting connections",
        "the database system is in recovery mode",
        "consistent recovery state has not been yet reached",
    )),
    ("auth_failed", (
        "password authentication failed",
        "authentication failed for user",
        "no password supplied",
        "fe_sendauth",
        "password is too long",
        ('role "', '" does not exist'),
        "server requested a password but",
        "pam authentication failed",
    )),
    ("ssl_unsupported", (
        "server does not support ssl",
        "ssl was required",
        "ssl not supported",
    )),
    ("ssl_verify_failed", (
        "certificate verify failed",
        "does not match host name",
        "root certificate file",
        "could not read root certificate",
        "could not get server's host name from server certificate",
        "could not get server host name from server certificate",
        "self-signed certificate",
        "self signed certificate",
        "unable to get local issuer certificate",
        "certificate has expired",
        "server certificate for",
    )),
    ("timeout", (
        "timeout expired",
        "connection timed out",
        "operation timed out",
        "no route to host",
        "network is unreachable",
        "host is unreachable",
        "host is down",
    )),
    ("refused", (
        "connection refused",
    )),
    ("dns", (
        "could not translate host name",
        "name or service not known",
        "nodename nor servname provided",
        "temporary failure in name resolution",
        "no address associated with hostname",
        "could not parse network address",
    )),
)


def _matches(fragment, text):
    if isinstance(fragment, tuple):
        return all(part in text for part in fragment)
    return fragment in text


def classify(message, sqlstate=None):
    """Return the reason for a connection failure, from its SQLSTATE or its message text."""
    text = (message or "").lower()
    if sqlstate in _SQLSTATE:
        return _SQLSTATE[sqlstate]
    if sqlstate == "28000":  # invalid_authorization_specification: hba, certificate or role
        if "pg_hba.conf" in text:
            return "hba_rejected"
        if "certificate" in text:
            return "client_cert_required"
        return "auth_failed"
    for reason, fragments in _PATTERNS:
        if any(_matches(f, text) for f in fragments):
            return reason
    return "other"


_FIX = {
    "dns": "the host name {host} does not resolve. Check login_host (or CODER_PG_HOST) for a"
           " typo, and the DNS the Ansible host uses",
    "refused": "nothing accepts connections on {host} port {port}. Check login_port (or"
               " CODER_PG_PORT), that PostgreSQL runs there, and listen_addresses on the server",
    "timeout": "{host} port {port} did not answer within connect_timeout ({timeout} s) or cannot be"
               " reached. Check the address, firewalls and security groups between this host and"
               " the server; raise connect_timeout only for a slow but working network",
    "auth_failed": "the server refused the login of user {user}. Check login_user and"
                   " login_password (or CODER_PG_USER and CODER_PG_PASSWORD); for awsiamrds,"
                   " the AWS credentials and the rds_iam grant of the user",
    "hba_rejected": "the server's pg_hba.conf has no line that lets user {user} reach database"
                    " {database} from this address with this encryption. Add a matching line"
                    " (hostssl for TLS) on the server, or connect the way an existing line allows",
    "database_missing": "the database {database} does not exist on the server. Create it, owned"
                        " by the Coder user, or fix login_db (or CODER_PG_DATABASE)",
    "too_many_clients": "the server has no free connection slot. Close idle connections, or"
                        " raise max_connections on the server; then check the connection budget",
    "ssl_unsupported": "the server does not offer TLS, but ssl_mode {ssl_mode} requires it."
                       " Turn ssl on in the server's postgresql.conf; use ssl_mode prefer or"
                       " disable only on a network you trust",
    "ssl_verify_failed": "the server's certificate could not be verified with ssl_mode"
                         " {ssl_mode}. Set ca_cert (or CODER_PG_SSLROOTCERT) to the CA bundle"
                         " that signed the server's certificate; with verify-full, login_host"
                         " must also be a name in that certificate",
    "client_cert_required": "the server wants a valid client certificate for user {user} (or"
                            " refused the one given). Set ssl_cert and ssl_key (or CODER_PG_SSLCERT"
                            " and CODER_PG_SSLKEY) to a certificate for that user signed by a CA"
                            " the server trusts, and its key",
    "starting_up": "the server is starting up, shutting down, or in recovery without hot"
                   " standby, and takes no connections now. Wait for it and retry",
    "standby": "the server is a standby (pg_is_in_recovery() is true), but Coder needs the"
               " primary. Point login_host at the primary (the writer endpoint), or set"
               " require_primary to false to only read facts",
    "other": "the connection failed for a reason this module does not know. Read the server's"
             " message below",
}


def explain(reason, **context):
    """The operator-facing sentence for a reason; `context` fills host, port, user, ..."""
    template = _FIX.get(reason, _FIX["other"])
    safe = {k: ("(default)" if v in (None, "") else v) for k, v in context.items()}
    for key in ("host", "port", "user", "database", "ssl_mode", "timeout"):
        safe.setdefault(key, "(default)")
    return template.format(**safe)


def scrub(text, secrets):
    """Remove every secret (and its common encodings) from a text."""
    if not text:
        return text
    import base64
    import json
    from urllib.parse import quote, quote_plus

    out = text
    for secret in secrets:
        if not secret:
            continue
        variants = {secret, quote(secret, safe=""), quote_plus(secret),
                    json.dumps(secret)[1:-1], json.dumps(secret, ensure_ascii=False)[1:-1],
                    secret.replace("'", "''"),
                    secret.replace("\\", "\\\\").replace("'", "\\'")}
        try:
            variants.add(base64.b64encode(secret.encode("utf-8")).decode("ascii"))
        except (UnicodeError, ValueError):
            pass
        for variant in sorted(variants, key=len, reverse=True):
            if variant:
                out = out.replace(variant, "********")
    return out
