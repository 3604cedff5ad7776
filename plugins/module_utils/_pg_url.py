# Copyright (c) 2025, coderops maintainers
# GNU General Public License v3.0+ (see LICENSE or https://www.gnu.org/licenses/gpl-3.0.txt)
# SPDX-License-Identifier: GPL-3.0-or-later

# Note that this module util is **PRIVATE** to the collection. It can have breaking changes at any time.
# Do not use this from other collections or standalone plugins/modules!

"""A PostgreSQL connection URL for the Coder v2 chart's Secret (CODER_PG_CONNECTION_URL).

postgres://USER:PASSWORD@HOST:PORT/DATABASE?sslmode=MODE[&search_path=SCHEMA][&...]

User, password, database and query values are percent-encoded (RFC 3986, nothing left
unescaped but unreserved characters), an IPv6 host goes in brackets. The password never
appears in an error message: every check below names the field, never its value.
"""

from __future__ import annotations

from urllib.parse import quote

from ansible_collections.coderops.deploy.plugins.module_utils._inputs import (
    SSL_MODES,
    InputError,
    check_choice,
    check_host,
    check_port,
    require_text,
    type_name,
)


def _enc(value):
    return quote(value, safe="")


def _check_password(password):
    if not isinstance(password, str):
        raise InputError("password", f"password must be a string; got {type_name(password)}")
    if password == "":
        raise InputError("password", "password is empty; leave it out (None) for a passwordless"
                                     " or awsiamrds login, or give the real password")
    if password != password.strip():
        raise InputError("password", "password has leading or trailing white space (a newline"
                                     " from a file, say); strip it, the server would refuse it")
    if any(ord(c) < 32 or ord(c) == 127 for c in password):
        raise InputError("password", "password contains a control character (a line break,"
                                     " say); remove it")


def pg_url(host, port, user, database, password=None, ssl_mode="require", search_path=None,
           params=None):
    """Build the URL; raises InputError naming the field (never echoing the password)."""
    host = check_host("host", host)
    port = check_port("port", port)
    user = require_text("user", user, "the PostgreSQL role Coder logs in as")
    database = require_text("database", database, "the name of Coder's database")
    check_choice("ssl_mode", ssl_mode, SSL_MODES)
    if password is not None:
        _check_password(password)
    query = [("sslmode", ssl_mode)]
    if search_path is not None:
        query.append(("search_path", require_text("search_path", search_path,
                                                  "a schema name (or leave it out)")))
    if params:
        if not isinstance(params, dict):
            raise InputError("params", f"params must be a dictionary; got {type_name(params)}")
        for key in sorted(params):
            if not isinstance(key, str) or not key:
                raise InputError("params", "params keys must be non-empty strings")
            if key in ("sslmode", "search_path", "password", "user", "host", "port", "dbname"):
                raise InputError(f"params.{key}", f"params.{key} is not allowed there; use the"
                                                  f" matching argument of the filter instead")
            value = params[key]
            if isinstance(value, bool) or not isinstance(value, (str, int)):
                raise InputError(f"params.{key}", f"params.{key} must be a string or a number")
            query.append((key, str(value)))
    netloc_host = f"[{host}]" if ":" in host else _enc(host)
    auth = _enc(user) if password is None else f"{_enc(user)}:{_enc(password)}"
    qs = "&".join(f"{_enc(k)}={_enc(v)}" for k, v in query)
    return f"postgres://{auth}@{netloc_host}:{port}/{_enc(database)}?{qs}"
