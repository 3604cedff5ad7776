#!/usr/bin/python
# Copyright (c) 2026, coderops maintainers
# GNU General Public License v3.0+ (see LICENSE or https://www.gnu.org/licenses/gpl-3.0.txt)
# SPDX-License-Identifier: GPL-3.0-or-later

from __future__ import annotations

DOCUMENTATION = r"""
module: coder_db_backup
short_description: Back up Coder's database before an upgrade, and restore it
version_added: 0.2.0
description:
  - O(state=backup) dumps the database with C(pg_dump -Fc) from the controller into O(dest), as
    C(<name>-r<revision>-<UTC time>.dump) (directory 0700, file 0600), and keeps the newest
    O(keep) of that release. Or it runs O(command) instead (an RDS snapshot, say); its exit status counts.
  - O(state=restore) puts a backup back in one transaction. It first drops every object the
    login user owns (C(DROP OWNED BY CURRENT_USER)), because C(pg_restore --clean) drops only what
    the archive holds and would leave the tables a newer Coder's migrations added. So the login
    user must be the one Coder runs as and owns its tables with.
  - Before dropping anything, that transaction ends the other sessions the login user still holds on
    the database (C(pg_terminate_backend)) and returns where they came from as RV(ended_sessions). Stop
    Coder first (the roles scale it to zero and wait for its pods to go); a session left after that is
    one a gone pod left behind, which the server would otherwise keep until TCP keepalive gives up.
  - The password reaches C(pg_dump), C(pg_restore)'s SQL and C(psql) in a password file that is
    an anonymous in-memory file (memfd) of mode 0600, passed by file descriptor, never on a command
    line, in the environment or on disk.
  - Run on the controller (the C(local) connection, as the roles run it), it says where the backup
    goes before C(pg_dump) starts, and every 5 seconds how far the file has grown (its action
    plugin watches the file's size while the module runs).
  - Why not M(community.postgresql.postgresql_db) with C(state=dump)/C(restore) - it passes the
    password in the environment (C(PGPASSWORD)), does not check C(pg_dump)'s version against the
    server, and restores without dropping what the archive does not hold.
author:
  - coderops maintainers (@coderops)
extends_documentation_fragment:
  - coderops.deploy._pg_connection
  - coderops.deploy._attributes
options:
  state:
    description: V(backup) or V(restore).
    type: str
    choices: [backup, restore]
    default: backup
  dest:
    description:
      - The backup directory on the controller. Made with mode 0700 when missing; an existing one
        that group or others can read is refused.
    type: path
    required: true
  name:
    description: The release's name; it starts every backup's file name.
    type: str
    required: true
  revision:
    description:
      - The release revision the backup belongs to (the one running before the upgrade).
      - With O(state=restore) and no O(file), the newest backup of this revision is restored; V(0) takes
        the newest of any revision.
    type: int
    default: 0
  metadata:
    description:
      - With O(state=backup), what to record beside the backup as C(<file>.json) (mode 0600), such as
        Coder's schema state and version then; O(state=restore) returns it as RV(metadata). No secrets.
    type: dict
    version_added: 0.2.0
  keep:
    description: How many backups of this release to keep, newest first; V(0) keeps all.
    type: int
    default: 5
  server_version_num:
    description:
      - The server's C(server_version_num) (M(coderops.deploy.coder_pg_facts) reads it).
        C(pg_dump) and C(pg_restore) older than its major version are refused.
      - Required unless O(command) is given.
    type: int
  command:
    description:
      - A command (argument list) that backs the database up instead of C(pg_dump), such as an RDS
        snapshot. It gets the C(PG*) variables and C(PGPASSFILE); its exit status counts.
        No file is written, and O(state=restore) cannot use it.
    type: list
    elements: str
  file:
    description:
      - With O(state=restore), the backup to restore; default the newest of O(name) (and O(revision))
        in O(dest).
      - In check mode nothing is restored, and RV(file) and RV(metadata) say which backup would be.
    type: path
  pg_dump_path:
    description: The C(pg_dump) to run.
    type: str
    default: pg_dump
  pg_restore_path:
    description: The C(pg_restore) to run.
    type: str
    default: pg_restore
  psql_path:
    description: The C(psql) that replays the backup in one transaction.
    type: str
    default: psql
attributes:
  check_mode:
    support: full
    details: Says what it would do; runs nothing.
  diff_mode:
    support: none
    details: A database dump has no diff to show.
  idempotent:
    support: none
    details:
      - Each O(state=backup) writes a new file (that is its point, before each upgrade), and each
        O(state=restore) replays the backup. The roles run it only before an upgrade that changes
        Coder's version, and after such an upgrade failed.
notes:
  - Restoring holds the archive's SQL in memory once (C(pg_restore -f -) into C(psql)'s input).
seealso:
  - module: coderops.deploy.coder_pg_facts
"""

EXAMPLES = r"""
- name: Back up before upgrading Coder
  coderops.deploy.coder_db_backup:
    dest: /var/backups/coder
    name: coder
    revision: 7
    server_version_num: "{{ pg.server_version_num }}"
    login_host: db.example.internal
    login_user: coder
    login_db: coder
    login_password: "{{ coder_db_password }}"
    ssl_mode: verify-full
    ca_cert: /etc/ssl/certs/db-ca.crt
  register: backup

- name: Restore it
  coderops.deploy.coder_db_backup:
    state: restore
    dest: /var/backups/coder
    name: coder
    file: "{{ backup.file }}"
    server_version_num: "{{ pg.server_version_num }}"
    login_host: db.example.internal
    login_user: coder
    login_db: coder
    login_password: "{{ coder_db_password }}"
"""

RETURN = r"""
file:
  description: The backup written or restored; V(null) with O(command).
  returned: success
  type: str
  sample: /var/backups/coder/coder-r7-20261201T101500Z.dump
size_bytes:
  description: The backup's size.
  returned: state=backup, without O(command)
  type: int
duration_s:
  description: Seconds the backup or restore took.
  returned: success
  type: float
removed:
  description: Older backups removed to keep O(keep).
  returned: state=backup
  type: list
  elements: str
metadata:
  description:
    - What was recorded with the backup (O(metadata)); V(null) when nothing was.
  returned: state=restore
  type: dict
  sample: {coder_version: 2.30.0, revision: 1, schema: {generation: v2, version: 4, dirty: false}}
ended_sessions:
  description:
    - The client addresses of the sessions the login user still held on the database, ended
      (C(pg_terminate_backend)) in the restore's transaction before anything was dropped; V(local)
      for a Unix socket. Empty when there were none.
  returned: state=restore, not in check mode
  type: list
  elements: str
  sample: [10.213.43.38, 10.213.43.38, 10.213.43.38]
client_version:
  description: The major version of C(pg_dump) or C(pg_restore).
  returned: without O(command)
  type: int
"""

import json
import os
import time

from ansible.module_utils.basic import AnsibleModule
from ansible_collections.coderops.deploy.plugins.module_utils import _db_backup as bk
from ansible_collections.coderops.deploy.plugins.module_utils._inputs import InputError
from ansible_collections.coderops.deploy.plugins.module_utils._pg_connection import (
    ConnectionFailure,
    check_connection_params,
    pg_connection_argument_spec,
)


def _passfile(password):
    """An anonymous 0600 in-memory file holding the password line; (fd, path for the child)."""
    fd = os.memfd_create("coderops-pgpass", 0)
    os.write(fd, bk.passfile_line(password or "").encode())
    os.fchmod(fd, 0o600)  # libpq ignores a password file that others could read
    return fd, f"/proc/self/fd/{fd}"


def _run(module, argv, env, fds=(), data=None, what=None):
    rc, out, err = module.run_command(argv, environ_update=env, pass_fds=list(fds), data=data,
                                      binary_data=data is not None)
    if rc != 0:
        module.fail_json(msg=f"{what or argv[0]} failed (exit {rc}): {err.strip()[-1500:]}", rc=rc)
    return out


def _client(module, tool):
    path = module.params[f"{tool}_path"]
    out = _run(module, [path, "--version"], {}, what=f"{path} --version")
    if module.params["server_version_num"] is None:
        raise InputError("server_version_num", "server_version_num is required to check the"
                                               f" {tool} version against the server's")
    return bk.check_client(tool, out, module.params["server_version_num"])


def _directory(module):
    dest = module.params["dest"]
    if os.path.isdir(dest):
        if os.stat(dest).st_mode & 0o077:
            raise InputError("dest", f"the backup directory {dest} can be read by group or others"
                                     f" (mode {oct(os.stat(dest).st_mode & 0o777)}); make it 0700")
    elif not module.check_mode:
        os.makedirs(dest, mode=0o700)
        os.chmod(dest, 0o700)
    return dest


def backup(module, result):
    p = module.params
    dest = _directory(module)
    start = time.monotonic()
    if p["command"]:
        if module.check_mode:
            result.update(changed=True, msg=f"would run {p['command'][0]} to back up")
            return
        fd, path = _passfile(p["login_password"])
        try:
            _run(module, p["command"], bk.libpq_env(p, path), fds=[fd], what="the backup command")
        finally:
            os.close(fd)
        result.update(changed=True, file=None, duration_s=round(time.monotonic() - start, 1), removed=[],
                      msg=f"backed up with {p['command'][0]} in {round(time.monotonic() - start, 1)} s")
        return
    result["client_version"] = _client(module, "pg_dump")
    target = os.path.join(dest, bk.file_name(p["name"], p["revision"]))
    if module.check_mode:
        result.update(changed=True, file=target, msg=f"would back up {p['login_db']} to {target}")
        return
    fd, path = _passfile(p["login_password"])
    out_fd = os.open(target, os.O_WRONLY | os.O_CREAT | os.O_EXCL, 0o600)
    os.close(out_fd)
    try:
        _run(module, [p["pg_dump_path"], "--format=custom", "--no-password", "--file", target],
             bk.libpq_env(p, path), fds=[fd], what="pg_dump")
    except BaseException:
        if os.path.exists(target):
            os.unlink(target)
        raise
    finally:
        os.close(fd)
    if p["metadata"] is not None:
        meta_fd = os.open(bk.metadata_path(target), os.O_WRONLY | os.O_CREAT | os.O_TRUNC, 0o600)
        with os.fdopen(meta_fd, "w", encoding="utf-8") as fh:
            json.dump(p["metadata"], fh, indent=2, sort_keys=True)
    removed = bk.to_remove(dest, p["name"], p["keep"])
    for old in removed:
        os.unlink(old)
    size = os.path.getsize(target)
    duration = round(time.monotonic() - start, 1)
    result.update(changed=True, file=target, size_bytes=size, duration_s=duration, removed=removed,
                  msg=f"backed up {p['login_db']} to {target} ({size} bytes) in {duration} s")


def restore(module, result):
    p = module.params
    if p["command"]:
        raise InputError("command", "command only backs up; restore its backup the way it was made")
    files = bk.backups(p["dest"], p["name"], p["revision"])
    source = p["file"] or (files[-1] if files else None)
    if not source or not os.path.isfile(source):
        pattern = f"{p['name']}-r{p['revision'] or '*'}-*.dump"
        raise InputError("file", f"no backup to restore: {source or 'no ' + pattern + ' in ' + p['dest']}")
    result["metadata"] = bk.read_metadata(source)
    result["client_version"] = _client(module, "pg_restore")
    if module.check_mode:
        result.update(changed=True, file=source, msg=f"would restore {source} into {p['login_db']}")
        return
    start = time.monotonic()
    sql = _run(module, [p["pg_restore_path"], "--clean", "--if-exists", "--no-owner", "--file", "-", source],
               {}, what="pg_restore")
    fd, path = _passfile(p["login_password"])
    try:
        out = _run(module, [p["psql_path"], "--no-psqlrc", "--quiet", "--tuples-only", "--single-transaction",
                            "--no-password", "--set", "ON_ERROR_STOP=1", "--file", "-"],
                   bk.libpq_env(p, path), fds=[fd], data=(bk.RESTORE_PREAMBLE + sql).encode(),
                   what="psql (the restore)")
    finally:
        os.close(fd)
    duration = round(time.monotonic() - start, 1)
    ended = bk.ended_sessions(out)
    msg = f"restored {source} into {p['login_db']} in {duration} s"
    if ended:
        msg += (f"; first ended {len(ended)} session(s) that {p['login_user'] or 'the login user'} still held"
                f" there, from {', '.join(sorted(set(ended)))}")
    result.update(changed=True, file=source, duration_s=duration, ended_sessions=ended, msg=msg)


def main():
    argument_spec = pg_connection_argument_spec()
    argument_spec.update(
        state={"type": "str", "choices": ["backup", "restore"], "default": "backup"},
        dest={"type": "path", "required": True},
        name={"type": "str", "required": True},
        revision={"type": "int", "default": 0},
        metadata={"type": "dict"},
        keep={"type": "int", "default": 5},
        server_version_num={"type": "int"},
        command={"type": "list", "elements": "str"},
        file={"type": "path"},
        pg_dump_path={"type": "str", "default": "pg_dump"},
        pg_restore_path={"type": "str", "default": "pg_restore"},
        psql_path={"type": "str", "default": "psql"},
    )
    module = AnsibleModule(argument_spec=argument_spec, supports_check_mode=True)
    result = {"changed": False}
    try:
        check_connection_params(module.params)
        if module.params["keep"] < 0:
            raise InputError("keep", f"keep must be 0 (all) or more; got {module.params['keep']}")
        if module.params["state"] == "backup":
            backup(module, result)
        else:
            restore(module, result)
    except ConnectionFailure as exc:
        module.fail_json(msg=exc.message, reason=exc.reason)
    except InputError as exc:
        module.fail_json(msg=exc.message, field=exc.field, reason="invalid_options")
    module.exit_json(**result)


if __name__ == "__main__":
    main()
