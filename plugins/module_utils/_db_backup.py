# Copyright (c) 2026, coderops maintainers
# GNU General Public License v3.0+ (see LICENSE or https://www.gnu.org/licenses/gpl-3.0.txt)
# SPDX-License-Identifier: GPL-3.0-or-later

# Note that this module util is **PRIVATE** to the collection. It can have breaking changes at any time.
# Do not use this from other collections or standalone plugins/modules!

"""Backups of Coder's database for coder_db_backup: names, retention, the pg_dump version rule,
the libpq environment and the restore script. No processes here (the module runs them).

Why the restore drops what the Coder user owns first: `pg_restore --clean --if-exists` drops
only the objects the archive holds, so the tables a newer Coder's migrations added would stay,
and the older Coder would find a schema it does not know. `DROP OWNED BY CURRENT_USER` and the
archive's SQL run in one transaction (psql --single-transaction): all or nothing.
"""

from __future__ import annotations

import datetime
import json
import os
import re

from ansible_collections.coderops.deploy.plugins.module_utils._inputs import InputError

SUFFIX = ".dump"
_NAME = re.compile(r"^[A-Za-z0-9][A-Za-z0-9_.-]*$")
_PG_VERSION = re.compile(r"\(PostgreSQL\)\s+(\d+)(?:\.(\d+))?")
# The sessions the login user still holds on the database are ended first. The caller stopped
# Coder and waited for its pods to go, so nothing should hold one; yet in a CI run on the test
# bed's real node, under load, a deleted pod's idle pool was still on the server after the restore
# (a server that never hears a client go keeps its session until TCP keepalive gives up, hours on).
# CASE, because only it fixes the order of evaluation: pg_terminate_backend() on another user's
# session is an error. psql prints the marker line with the addresses (ended_sessions() reads it).
_ENDED = "coderops-ended-sessions:"
RESTORE_PREAMBLE = (
    "-- coderops.deploy: the login user's other sessions on this database ended first\n"
    f"SELECT '{_ENDED}' || coalesce(string_agg(coalesce(host(client_addr), 'local'), ',' ORDER BY pid), '')"
    " FROM pg_stat_activity WHERE CASE WHEN datname = current_database() AND usename = current_user"
    " AND pid <> pg_backend_pid() THEN pg_terminate_backend(pid) ELSE false END;\n"
    "-- what Coder made, dropped first (pg_restore --clean drops only what the archive holds)\n"
    "DROP OWNED BY CURRENT_USER;\n")
_ENDED_LINE = re.compile(rf"^\s*{re.escape(_ENDED)}(.*?)\s*$", re.MULTILINE)


def ended_sessions(psql_output):
    """The addresses of the sessions RESTORE_PREAMBLE ended ('local' for a Unix socket), from psql's output."""
    match = _ENDED_LINE.search(psql_output or "")
    return [a for a in match.group(1).split(",") if a] if match else []


def file_name(name, revision, now=None):
    """`<release>-r<revision>-<UTC time>.dump`: sorts by time within a release."""
    if not _NAME.match(name or ""):
        raise InputError("name", f"name {name!r} must be letters, digits, '.', '_' or '-' (it names the file)")
    utc = datetime.timezone.utc  # noqa: UP017 (datetime.UTC is Python 3.11+; modules run on older ones)
    stamp = (now or datetime.datetime.now(utc)).strftime("%Y%m%dT%H%M%SZ")
    return f"{name}-r{int(revision)}-{stamp}{SUFFIX}"


def backups(directory, name, revision=None):
    """This release's backups in `directory` (only those of `revision`, when given), oldest first."""
    if not os.path.isdir(directory):
        return []
    rev = str(int(revision)) if revision else r"\d+"
    pattern = re.compile(rf"^{re.escape(name)}-r{rev}-\d{{8}}T\d{{6}}Z{re.escape(SUFFIX)}$")
    found = [f for f in os.listdir(directory) if pattern.match(f)]
    return [os.path.join(directory, f) for f in sorted(found, key=lambda f: f.rsplit("-", 1)[1])]


def metadata_path(backup):
    """Where a backup's metadata goes: beside it, `<file>.json`."""
    return backup + ".json"


def read_metadata(backup):
    """What was recorded with a backup (Coder's schema and versions then), or None."""
    try:
        with open(metadata_path(backup), encoding="utf-8") as fh:
            return json.load(fh)
    except (OSError, ValueError):
        return None


def to_remove(directory, name, keep):
    """The backups beyond the newest `keep` (0 keeps all), with their metadata files."""
    files = backups(directory, name)
    old = files[:-keep] if keep and len(files) > keep else []
    return [path for f in old for path in (f, metadata_path(f)) if os.path.exists(path)]


def client_major(version_text):
    """The major version in `pg_dump --version`'s answer ('pg_dump (PostgreSQL) 15.18 ...')."""
    match = _PG_VERSION.search(version_text or "")
    if not match:
        raise InputError("pg_dump", f"cannot read a PostgreSQL version in {version_text.strip()!r}")
    return int(match.group(1))


def check_client(tool, version_text, server_version_num):
    """pg_dump (or pg_restore) must be at least the server's major version: an older one refuses
    a newer server, or dumps what it does not know."""
    client = client_major(version_text)
    server = int(server_version_num) // 10000
    if client < server:
        raise InputError(f"{tool}_path", f"{tool} is PostgreSQL {client}, older than the server's {server}: it cannot"
                                         f" back up or restore that server faithfully. Install the PostgreSQL"
                                         f" {server} client tools (or newer) on the controller and put them first on"
                                         f" PATH (or point {tool}_path at them)")
    return client


def libpq_env(params, passfile=None):
    """The PG* variables for pg_dump, pg_restore and psql: everything but the password, which goes
    in a password file only this process can read (PGPASSFILE)."""
    env = {"PGHOST": params.get("login_host"), "PGPORT": params.get("login_port"),
           "PGUSER": params.get("login_user"), "PGDATABASE": params.get("login_db"),
           "PGSSLMODE": params.get("ssl_mode"), "PGSSLROOTCERT": params.get("ca_cert"),
           "PGSSLCERT": params.get("ssl_cert"), "PGSSLKEY": params.get("ssl_key"),
           "PGCONNECT_TIMEOUT": params.get("connect_timeout"), "PGPASSFILE": passfile,
           "PGAPPNAME": "coderops.deploy"}
    return {k: str(v) for k, v in env.items() if v not in (None, "")}


def passfile_line(password):
    """A .pgpass line for any host, port, database and user: ':' and '\\' escaped."""
    escaped = password.replace("\\", "\\\\").replace(":", "\\:")
    if "\n" in password or "\r" in password:
        raise InputError("login_password", "login_password holds a line break, which a password file cannot carry")
    return f"*:*:*:*:{escaped}\n"
