# Copyright (c) 2026, coderops maintainers
# GNU General Public License v3.0+ (see LICENSE or https://www.gnu.org/licenses/gpl-3.0.txt)
# SPDX-License-Identifier: GPL-3.0-or-later
"""_db_backup: names, retention, the client version rule, the libpq environment and the password
file line. The real pg_dump, pg_restore and psql against the real server are the deploy suite's
(tests/deploy/test_safe_upgrade.py)."""

from __future__ import annotations

import datetime

import pytest
from ansible_collections.coderops.deploy.plugins.module_utils import _db_backup as bk
from ansible_collections.coderops.deploy.plugins.module_utils._inputs import InputError

T = datetime.datetime(2026, 12, 1, 10, 15, 0, tzinfo=datetime.UTC)


def test_file_names_sort_by_time_and_retention_keeps_the_newest(tmp_path):
    names = [bk.file_name("coder", rev, T + datetime.timedelta(hours=h)) for rev, h in ((9, 0), (3, 1), (12, 2))]
    assert names[0] == "coder-r9-20261201T101500Z.dump"
    for name in names + ["coder-staging-r1-20261201T101500Z.dump", "coder-r1-notes.txt"]:
        (tmp_path / name).write_text("x")
    assert [p.rsplit("/", 1)[1] for p in bk.backups(str(tmp_path), "coder")] == names
    assert [p.rsplit("/", 1)[1] for p in bk.to_remove(str(tmp_path), "coder", 2)] == names[:1]
    assert bk.to_remove(str(tmp_path), "coder", 0) == []
    assert bk.backups(str(tmp_path / "missing"), "coder") == []
    with pytest.raises(InputError) as err:
        bk.file_name("../x", 1)
    assert err.value.field == "name"


def test_backups_of_one_revision_and_their_metadata(tmp_path):
    names = [bk.file_name("coder", rev, T + datetime.timedelta(hours=h)) for rev, h in ((1, 0), (2, 1), (1, 2))]
    for name in names:
        (tmp_path / name).write_text("x")
    (tmp_path / (names[0] + ".json")).write_text('{"schema": {"version": 4}}')
    assert [p.rsplit("/", 1)[1] for p in bk.backups(str(tmp_path), "coder", 1)] == [names[0], names[2]]
    assert [p.rsplit("/", 1)[1] for p in bk.backups(str(tmp_path), "coder", 0)] == names
    assert bk.read_metadata(str(tmp_path / names[0])) == {"schema": {"version": 4}}
    assert bk.read_metadata(str(tmp_path / names[1])) is None
    # Retention takes a backup's metadata with it.
    assert [p.rsplit("/", 1)[1] for p in bk.to_remove(str(tmp_path), "coder", 2)] == [names[0], names[0] + ".json"]


def test_pg_dump_older_than_the_server_is_refused():
    assert bk.check_client("pg_dump", "pg_dump (PostgreSQL) 16.4 (Debian 16.4-1)", 150018) == 16
    assert bk.check_client("pg_dump", "pg_dump (PostgreSQL) 15.18", 150018) == 15
    with pytest.raises(InputError) as err:
        bk.check_client("pg_dump", "pg_dump (PostgreSQL) 15.18", 170002)
    assert err.value.field == "pg_dump_path" and "older than the server's 17" in err.value.message
    with pytest.raises(InputError):
        bk.check_client("pg_restore", "command not found", 150018)


def test_the_password_goes_only_in_the_password_file():
    env = bk.libpq_env({"login_host": "db", "login_port": 5432, "login_user": "coder", "login_db": "coder",
                        "login_password": "s3cret", "ssl_mode": "verify-full", "ca_cert": "/ca.crt",
                        "ssl_cert": None, "connect_timeout": 10}, "/proc/self/fd/7")
    assert env == {"PGHOST": "db", "PGPORT": "5432", "PGUSER": "coder", "PGDATABASE": "coder",
                   "PGSSLMODE": "verify-full", "PGSSLROOTCERT": "/ca.crt", "PGCONNECT_TIMEOUT": "10",
                   "PGPASSFILE": "/proc/self/fd/7", "PGAPPNAME": "coderops.deploy"}
    assert "s3cret" not in repr(env)
    assert bk.passfile_line("a:b\\c") == "*:*:*:*:a\\:b\\\\c\n"
    with pytest.raises(InputError):
        bk.passfile_line("two\nlines")


def test_the_restore_ends_the_login_users_other_sessions_first_and_says_from_where():
    preamble = bk.RESTORE_PREAMBLE
    # Ended before anything is dropped, only the login user's, and never its own session.
    assert preamble.index("pg_terminate_backend") < preamble.index("DROP OWNED BY CURRENT_USER")
    assert "usename = current_user" in preamble and "pid <> pg_backend_pid()" in preamble
    # Inside CASE: another user's session must not even be tried (that is an error).
    assert "CASE WHEN datname = current_database()" in preamble
    out = "\n SET\n\n coderops-ended-sessions:10.213.43.38,10.213.43.38,local \n\n"
    assert bk.ended_sessions(out) == ["10.213.43.38", "10.213.43.38", "local"]
    assert bk.ended_sessions(" coderops-ended-sessions:\n") == []
    assert bk.ended_sessions("") == []
