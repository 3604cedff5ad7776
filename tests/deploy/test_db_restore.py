# Copyright (c) 2026, coderops maintainers
# GNU General Public License v3.0+ (see LICENSE or https://www.gnu.org/licenses/gpl-3.0.txt)
# SPDX-License-Identifier: GPL-3.0-or-later
"""coder_db_backup's restore against the main PostgreSQL server, with sessions still open on the
database: the login user's own (a gone pod's pool that the server still holds) are ended in the
restore's transaction and reported; another user's session is left alone. Check mode ends none.

Real PostgreSQL and real pg_dump/pg_restore/psql; no cluster needed. The database and its owner
(a login role with a canary password) are this test's own.
"""

from __future__ import annotations

import json
import uuid

import psycopg2
import pytest
from helpers import ENV, REPO, VENV_BIN, pg_superuser, run
from leak_scan import make_canary

MAIN = {k: ENV[f"CODER_TEST_PG_MAIN_{k}"] for k in ("HOST", "PORT", "SSLROOTCERT")}

PLAYBOOK = """
- name: One coder_db_backup call
  hosts: localhost
  connection: local
  gather_facts: false
  tasks:
    - name: Back up or restore
      coderops.deploy.coder_db_backup:
        state: "{{ state }}"
        dest: "{{ dest }}"
        name: coder
        revision: 1
        server_version_num: "{{ server_version_num }}"
        login_host: "{{ pg_host }}"
        login_port: "{{ pg_port }}"
        login_user: "{{ pg_user }}"
        login_password: "{{ pg_password }}"
        login_db: "{{ pg_db }}"
        ssl_mode: verify-full
        ca_cert: "{{ pg_ca }}"
      register: result

    - name: Keep the result
      ansible.builtin.copy:
        content: "{{ result | to_json }}"
        dest: "{{ out }}"
        mode: "0600"
      check_mode: false
"""


@pytest.fixture
def owned_database():
    """A database owned by a login role of its own; (role, password, database, server_version_num)."""
    role, database, password = f"coderops_restore_{uuid.uuid4().hex[:8]}", f"coderops_restore_{uuid.uuid4().hex[:8]}", \
        make_canary()
    conn = pg_superuser()
    with conn.cursor() as cur:
        cur.execute(f'CREATE ROLE "{role}" LOGIN PASSWORD %s', (password,))
        cur.execute(f'CREATE DATABASE "{database}" OWNER "{role}"')
        cur.execute("SHOW server_version_num")
        version = int(cur.fetchone()[0])
    conn.close()
    yield role, password, database, version
    conn = pg_superuser()
    with conn.cursor() as cur:
        cur.execute(f'DROP DATABASE IF EXISTS "{database}" WITH (FORCE)')
        cur.execute(f'DROP ROLE IF EXISTS "{role}"')
    conn.close()


def _session(role, password, database):
    """An idle session of `role` over TCP, as a Coder pod's pool holds one."""
    conn = psycopg2.connect(host=MAIN["HOST"], port=MAIN["PORT"], user=role, password=password, dbname=database,
                            sslmode="verify-full", sslrootcert=MAIN["SSLROOTCERT"], application_name="coder-pool")
    conn.autocommit = True
    with conn.cursor() as cur:
        cur.execute("SELECT 1")
    return conn


def _alive(conn):
    try:
        with conn.cursor() as cur:
            cur.execute("SELECT 1")
        return True
    except psycopg2.OperationalError:
        return False


def _call(tmp_path, state, owned, check=False):
    role, password, database, version = owned
    book, out = tmp_path / "book.yml", tmp_path / f"{state}-{check}.json"
    book.write_text(PLAYBOOK)
    extra = {"state": state, "dest": str(tmp_path / "backups"), "server_version_num": version, "out": str(out),
             "pg_host": MAIN["HOST"], "pg_port": MAIN["PORT"], "pg_user": role, "pg_password": password,
             "pg_db": database, "pg_ca": MAIN["SSLROOTCERT"],
             "ansible_python_interpreter": "{{ ansible_playbook_python }}"}
    # The password in a file of extra vars (0600), not on the command line.
    vars_file = tmp_path / "vars.json"
    vars_file.write_text(json.dumps(extra))
    vars_file.chmod(0o600)
    res = run(VENV_BIN / "ansible-playbook", "-i", "localhost,", book, "-e", f"@{vars_file}",
              *(["--check"] if check else []), check=False,
              env=dict(ENV, ANSIBLE_COLLECTIONS_PATH=str(REPO / "playbooks" / "collections")))
    assert res.returncode == 0, res.stdout[-4000:] + res.stderr[-2000:]
    assert password not in res.stdout + res.stderr
    return json.loads(out.read_text())


def _tables(role, password, database):
    conn = _session(role, password, database)
    with conn.cursor() as cur:
        cur.execute("SELECT tablename FROM pg_tables WHERE schemaname = 'public' ORDER BY 1")
        names = [r[0] for r in cur.fetchall()]
    conn.close()
    return names


@pytest.mark.reliability(
    section="Faults", case="coder_db_backup restore while the login user still has sessions on the database",
    done="a backup; then a table added and two idle sessions of Coder's user left open (a gone pod's pool), and a"
         " session of another user; restore in check mode, then for real, then again",
    expected="check mode ends nothing; the restore ends the two sessions in its transaction and says from where,"
             " leaves the other user's, and puts the backup back; the next restore ends none")
def test_the_restore_ends_the_login_users_leftover_sessions_and_leaves_others(tmp_path, owned_database):
    role, password, database, dummy = owned_database
    first = _session(role, password, database)
    with first.cursor() as cur:
        cur.execute("CREATE TABLE kept (note text); INSERT INTO kept VALUES ('before the upgrade')")
    first.close()
    backup = _call(tmp_path, "backup", owned_database)
    assert backup["changed"] is True and backup["file"].endswith(".dump")

    # What a newer Coder would have left: a table of its own, and its pool still on the server.
    pool = [_session(role, password, database) for _ in range(2)]
    with pool[0].cursor() as cur:
        cur.execute("CREATE TABLE added_by_the_newer_coder (id int)")
    other = pg_superuser(database)  # another user's session on the same database

    checked = _call(tmp_path, "restore", owned_database, check=True)
    assert checked["changed"] is True and "ended_sessions" not in checked
    assert all(_alive(c) for c in pool), "check mode ended a session"

    restored = _call(tmp_path, "restore", owned_database)
    assert restored["ended_sessions"] == ["127.0.0.1", "127.0.0.1"], restored
    assert "first ended 2 session(s)" in restored["msg"] and "from 127.0.0.1" in restored["msg"], restored["msg"]
    assert not any(_alive(c) for c in pool)
    assert _alive(other), "another user's session was ended"
    other.close()
    assert _tables(role, password, database) == ["kept"]

    # Nothing left over: nothing ended, nothing said.
    again = _call(tmp_path, "restore", owned_database)
    assert again["ended_sessions"] == [] and "ended" not in again["msg"], again
    for conn in pool:
        conn.close()
