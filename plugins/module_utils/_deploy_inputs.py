# Copyright (c) 2026, coderops maintainers
# GNU General Public License v3.0+ (see LICENSE or https://www.gnu.org/licenses/gpl-3.0.txt)
# SPDX-License-Identifier: GPL-3.0-or-later

# Note that this module util is **PRIVATE** to the collection. It can have breaking changes at any time.
# Do not use this from other collections or standalone plugins/modules!

"""The roles' input rules that need neither helm, the cluster nor the database, checked once,
in Python, before anything runs (the preflight role; the helm_release role alone checks its own).

The input is a dict keyed by playbook variable, so every message names the variable the operator
sets. Only the keys given are checked. The password never comes in: the roles pass two booleans
about it (``password_given``, ``password_padded``), computed in a task of their own with no_log.
"""

from __future__ import annotations

import json
import re

from ansible_collections.coderops.deploy.plugins.module_utils._release_params import RANGES

_RELEASE_NAME = re.compile(r"^[a-z0-9]([-a-z0-9]*[a-z0-9])?$")
_PORT = re.compile(r"^[0-9]+$")
# Which release option each playbook variable sets (their bounds are the module's).
_RANGE_VARS = {
    "coder_helm_timeout": "timeout",
    "helm_release_rollback_timeout": "rollback_timeout",
    "helm_release_progress_interval": "progress_interval",
    "helm_release_fail_fast_grace": "fail_fast_grace",
    "helm_release_lock_ttl": "lock_ttl",
}


def _text(value):
    return "" if value is None else str(value)


def _int(value):
    try:
        return int(str(value).strip())
    except (TypeError, ValueError):
        return None


def _password_rules(v):
    connector = v.get("coder_db_connector", "postgres")
    if v.get("password_padded"):
        yield ("coder_db_password has leading or trailing white space (a space, a tab or a newline, often"
               " from a file or a prompt): Coder would send it as it is and fail to log in. Remove it.")
    if connector == "awsiamrds" and v.get("password_given"):
        yield ("coder_db_connector is awsiamrds, which logs in with an AWS IAM token and takes no password"
               " Secret: remove coder_db_password (or set coder_db_connector to postgres).")
    if connector == "postgres" and "password_given" in v and not v["password_given"] \
            and not _text(v.get("coder_db_ssl_cert_file")):
        yield ("coder_db_password is not set (nor CODER_PG_PASSWORD, which AWX's Coder PostgreSQL credential"
               " injects), and no client certificate (coder_db_ssl_cert_file and coder_db_ssl_key_file) logs in"
               " either. Give the password from Ansible Vault, an environment variable (lookup('env', ...)), a"
               " prompt (vars_prompt) or the credential.")


def _connection_rules(v):
    if "coder_db_host" in v and not _text(v["coder_db_host"]).strip():
        yield ("coder_db_host is empty (and CODER_PG_HOST, which AWX's Coder PostgreSQL credential injects,"
               " is not set); set it to the DNS name or IP address the Coder pods use to reach PostgreSQL.")
    if "coder_db_port" in v:
        port = _text(v["coder_db_port"])
        if not _PORT.match(port) or not 1 <= int(port) <= 65535:
            yield ("coder_db_port must be a number between 1 and 65535 (PostgreSQL listens on 5432 by"
                   f" default); got {_json(v['coder_db_port'])}.")
    cert, key = _text(v.get("coder_db_ssl_cert_file")), _text(v.get("coder_db_ssl_key_file"))
    if bool(cert) != bool(key):
        which = ("coder_db_ssl_cert_file is set but coder_db_ssl_key_file is not" if cert
                 else "coder_db_ssl_key_file is set but coder_db_ssl_cert_file is not")
        yield f"{which}: a client certificate needs its private key and the reverse; set both or neither."
    mode = v.get("coder_db_ssl_mode")
    if mode in ("verify-ca", "verify-full") and not _text(v.get("coder_db_ssl_ca_file")):
        yield (f"coder_db_ssl_mode {mode} verifies the server's certificate, which needs coder_db_ssl_ca_file"
               " (the CA bundle that signed it); set it, or use coder_db_ssl_mode require.")


def _release_rules(v):
    if "coder_release_name" in v:
        name = _text(v["coder_release_name"])
        if len(name) > 53 or not _RELEASE_NAME.match(name):
            yield (f"coder_release_name {_json(name)} is not a valid Helm release name (lower-case letters,"
                   " digits and '-', at most 53 characters).")
    for var, option in _RANGE_VARS.items():
        # None: not set where the check runs (the preflight role alone does not know helm_release's).
        if v.get(var) is not None:
            low, high = RANGES[option]
            value = _int(v[var])
            if value is None or not low <= value <= high:
                yield f"{var} must be between {low} and {high}; got {v[var]}."


def _json(value):
    return json.dumps(value, default=str)


def problems(values):
    """Every bad input among `values` (keyed by playbook variable), in the order an operator
    would fix them; each message names the variable and the fix."""
    return [*_password_rules(values), *_connection_rules(values), *_release_rules(values)]
