#!/usr/bin/env python
# Copyright (c) 2025, coderops maintainers
# GNU General Public License v3.0+ (see LICENSE or https://www.gnu.org/licenses/gpl-3.0.txt)
# SPDX-License-Identifier: GPL-3.0-or-later
"""Start and stop a throwaway PostgreSQL server for one fault (integration tests only).

    throwaway_pg.py start nossl|notready   prints {"dir", "port", "ca_cert"} as JSON
    throwaway_pg.py stop DIR

PostgreSQL refuses to run as root, so the server runs as the test bed's system user, in a
temporary directory on a free loopback port, and `stop` removes everything.

nossl:    ssl = off; pg_hba.conf admits only role coder (so other roles get "no pg_hba.conf entry").
notready: a standby (standby.signal) with no primary and hot_standby = off, so it stays in
          recovery and refuses every login with SQLSTATE 57P03 ("not accepting connections");
          TLS on, with a certificate for wrong-host.invalid from a CA of its own.
"""

from __future__ import annotations

import json
import os
import pwd
import shutil
import signal
import socket
import subprocess
import sys
import tempfile
import time

import psycopg2

PG_BIN = os.environ.get("CODER_TEST_PG_BIN", "/usr/lib/postgresql/15/bin")
OS_USER = "coderops-testbed"
READY = {
    # The state each kind is in once it is up, as a probe login sees it.
    "nossl": ("no pg_hba.conf entry", {"sslmode": "disable", "user": "nobody"}),
    "notready": ("not accepting connections", {"sslmode": "require", "user": "coder"}),
}


def run(cmd, **kwargs):
    subprocess.run(cmd, check=True, stdout=subprocess.PIPE, stderr=subprocess.STDOUT, **kwargs)


def as_pg(cmd):
    run(["runuser", "-u", OS_USER, "--"] + cmd)


def free_port():
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


def make_certs(base):
    """A CA of its own and a server certificate for a name that is not 127.0.0.1."""
    ssl = os.path.join(base, "ssl")
    os.mkdir(ssl)

    def openssl(*args):
        run(["openssl"] + list(args))

    openssl("req", "-x509", "-newkey", "ec", "-pkeyopt", "ec_paramgen_curve:P-256", "-nodes",
            "-keyout", f"{ssl}/ca.key", "-out", f"{ssl}/ca.crt", "-days", "2",
            "-subj", "/CN=coderops throwaway CA")
    openssl("req", "-newkey", "ec", "-pkeyopt", "ec_paramgen_curve:P-256", "-nodes",
            "-keyout", f"{ssl}/server.key", "-out", f"{ssl}/server.csr",
            "-subj", "/CN=wrong-host.invalid")
    ext = f"{ssl}/ext.cnf"
    with open(ext, "w") as fh:
        fh.write("subjectAltName=DNS:wrong-host.invalid\n")
    openssl("x509", "-req", "-in", f"{ssl}/server.csr", "-CA", f"{ssl}/ca.crt", "-CAkey",
            f"{ssl}/ca.key", "-CAcreateserial", "-out", f"{ssl}/server.crt", "-days", "2",
            "-extfile", ext)
    return ssl


def start(kind):
    if kind not in READY:
        sys.exit(f"unknown kind {kind}; use one of {', '.join(READY)}")
    account = pwd.getpwnam(OS_USER)
    base = tempfile.mkdtemp(prefix=f"coderops-pg-{kind}-")
    try:
        os.chmod(base, 0o700)
        data = os.path.join(base, "data")
        os.chown(base, account.pw_uid, account.pw_gid)
        as_pg([f"{PG_BIN}/initdb", "-D", data, "-U", "postgres", "--auth-local=trust",
               "--auth-host=scram-sha-256", "-E", "UTF8", "--locale=C", "--no-instructions"])
        port = free_port()
        conf = ["listen_addresses = '127.0.0.1'", f"port = {port}",
                f"unix_socket_directories = '{base}'", "fsync = off", "shared_buffers = 8MB",
                "max_connections = 10"]
        hba = ["local all all trust"]
        ca_cert = None
        if kind == "nossl":
            conf.append("ssl = off")
            hba.append("host all coder 127.0.0.1/32 scram-sha-256")
        else:
            ssl = make_certs(base)
            for name in ("server.crt", "server.key"):
                shutil.copy(os.path.join(ssl, name), os.path.join(data, name))
                os.chmod(os.path.join(data, name), 0o600)
                os.chown(os.path.join(data, name), account.pw_uid, account.pw_gid)
            ca_cert = os.path.join(ssl, "ca.crt")
            os.chmod(ssl, 0o755)
            conf += ["ssl = on", "hot_standby = off"]
            hba.append("host all all 127.0.0.1/32 scram-sha-256")
            open(os.path.join(data, "standby.signal"), "w").close()
            os.chown(os.path.join(data, "standby.signal"), account.pw_uid, account.pw_gid)
        with open(os.path.join(data, "postgresql.conf"), "a") as fh:
            fh.write("\n".join(conf) + "\n")
        with open(os.path.join(data, "pg_hba.conf"), "w") as fh:
            fh.write("\n".join(hba) + "\n")
        as_pg([f"{PG_BIN}/pg_ctl", "-D", data, "-l", os.path.join(base, "server.log"), "-W", "-s",
               "start"])
        wait_ready(kind, port, base)
    except BaseException:
        stop(base)
        raise
    print(json.dumps({"dir": base, "port": port, "ca_cert": ca_cert}))


def wait_ready(kind, port, base):
    expected, probe = READY[kind]
    last = ""
    deadline = time.monotonic() + 60
    while time.monotonic() < deadline:
        try:
            psycopg2.connect(host="127.0.0.1", port=port, dbname="coder", connect_timeout=2,
                             password="x", **probe).close()
            last = "a login succeeded"
        except psycopg2.Error as exc:
            last = str(exc)
            if expected in last:
                return
        time.sleep(0.3)
    log = open(os.path.join(base, "server.log")).read()[-2000:]
    raise SystemExit(f"throwaway {kind} server did not reach its state; last probe: {last}\n{log}")


def stop(base):
    data = os.path.join(base, "data")
    pidfile = os.path.join(data, "postmaster.pid")
    if os.path.exists(pidfile):
        try:
            as_pg([f"{PG_BIN}/pg_ctl", "-D", data, "-m", "immediate", "-w", "-t", "30", "-s",
                   "stop"])
        except subprocess.CalledProcessError:
            try:
                pid = int(open(pidfile).readline())
                os.kill(pid, signal.SIGKILL)
            except (OSError, ValueError):
                pass
    if os.path.basename(base).startswith("coderops-pg-"):
        shutil.rmtree(base, ignore_errors=True)


def main():
    if len(sys.argv) != 3 or sys.argv[1] not in ("start", "stop"):
        sys.exit(__doc__)
    if sys.argv[1] == "start":
        start(sys.argv[2])
    else:
        stop(sys.argv[2])


if __name__ == "__main__":
    main()
