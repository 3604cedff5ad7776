"""A throwaway PostgreSQL server for make bench (B3 and B5), on loopback only.

Started from the same Debian PostgreSQL binaries as the test bed's servers, with the test bed's
server certificate (so clients verify it with verify-full exactly as against `main`), the same
role `coder` with the test bed's password (set over the superuser's Unix socket, on stdin), and
every connection and statement logged: that is how B3 counts connections and queries for real.
B5 points its releases at it too, so that nothing else (other test runs against `main`) adds to
the connections it samples. It is removed when the benchmark ends.
"""

from __future__ import annotations

import datetime
import os
import pwd
import re
import shutil
import socket
import subprocess
import tempfile
import time
from pathlib import Path

PG_BIN = Path("/usr/lib/postgresql/15/bin")
OS_USER = "coderops-testbed"  # the test bed's account for its servers (it exists once the bed is up)
PORTS = range(15480, 15500)  # below the ephemeral range, above the test bed's ports

# Log lines: timestamp [pid] user@db app, then the message (log_line_prefix below).
_LINE = re.compile(r"^(?P<ts>\S+ \S+ \S+) \[(?P<pid>\d+)\] (?P<user>[^@ ]*)@(?P<db>[^ ]*) app=(?P<app>.*?) :: "
                   r"(?P<level>[A-Z]+):  (?P<msg>.*)$")


def _ts(text):
    return datetime.datetime.strptime(text.rsplit(" ", 1)[0], "%Y-%m-%d %H:%M:%S.%f")


def _free_port():
    for port in PORTS:
        with socket.socket() as s:
            try:
                s.bind(("127.0.0.1", port))
            except OSError:
                continue
            return port
    raise RuntimeError(f"no free port in {PORTS.start}-{PORTS.stop - 1} for the benchmark's PostgreSQL server")


def _literal(value: str) -> str:
    return "'" + value.replace("'", "''") + "'"


class BenchServer:
    def __init__(self, pki: Path, password_file: Path, max_connections: int = 100):
        self.pki = Path(pki)
        self.password_file = Path(password_file)
        self.max_connections = max_connections
        self.base = None
        self.port = None
        self.log = None
        self.user = OS_USER if os.geteuid() == 0 else None

    @property
    def socket_dir(self):
        return self.base / "run"

    def _run(self, cmd, **kw):
        if self.user:
            cmd = ["runuser", "-u", self.user, "--", *map(str, cmd)]
        return subprocess.run([str(c) for c in cmd], check=True, capture_output=True, text=True, **kw)

    def start(self):
        if self.user:
            pwd.getpwnam(self.user)  # KeyError: the test bed is not up (it creates the account)
        self.base = Path(tempfile.mkdtemp(prefix="coderops-bench-pg-"))
        self.base.chmod(0o755)
        data = self.base / "data"
        self.socket_dir.mkdir()
        self.log = self.base / "server.log"
        self.log.touch()
        for p in (self.base, self.socket_dir, self.log):
            if self.user:
                shutil.chown(p, self.user, self.user)
        self._run([PG_BIN / "initdb", "-D", data, "-U", "postgres", "--auth-local=trust",
                   "--auth-host=scram-sha-256", "-E", "UTF8", "--locale=C", "--no-instructions"])
        self.port = _free_port()
        with open(data / "postgresql.conf", "a") as fh:
            fh.write(f"""
# Written by coderops.deploy make bench (a throwaway server).
listen_addresses = '127.0.0.1'
port = {self.port}
unix_socket_directories = '{self.socket_dir}'
max_connections = {self.max_connections}
superuser_reserved_connections = 3
ssl = on
ssl_cert_file = 'server.crt'
ssl_key_file = 'server.key'
ssl_ca_file = 'ca.crt'
password_encryption = 'scram-sha-256'
shared_buffers = 16MB
fsync = off
synchronous_commit = off
full_page_writes = off
log_connections = on
log_disconnections = on
log_statement = 'all'
log_line_prefix = '%m [%p] %u@%d app=%a :: '
""")
        (data / "pg_hba.conf").write_text("local all all trust\nhostssl all all 127.0.0.1/32 scram-sha-256\n")
        for name in ("server.crt", "server.key", "ca.crt"):
            shutil.copyfile(self.pki / name, data / name)
            (data / name).chmod(0o600)
            if self.user:
                shutil.chown(data / name, self.user, self.user)
        self._run([PG_BIN / "pg_ctl", "-D", data, "-l", self.log, "-w", "-t", "60", "-s", "start"])
        password = self.password_file.read_text()
        # Not logged: log_statement is off for this one session.
        self.psql("SET log_statement = 'none';\n"
                  f"CREATE ROLE coder LOGIN PASSWORD {_literal(password)};\n"
                  "CREATE DATABASE coder OWNER coder;\n")
        return self

    def psql(self, sql, db="postgres"):
        """SQL as the superuser over the Unix socket; the SQL goes in on stdin."""
        return self._run([PG_BIN / "psql", "-X", "-q", "-v", "ON_ERROR_STOP=1", "-At", "-h",
                          self.socket_dir, "-p", self.port, "-U", "postgres", "-d", db, "-f", "-"],
                         input=sql).stdout

    def version(self):
        return self.psql("SHOW server_version;").strip()

    def log_offset(self):
        return self.log.stat().st_size

    def log_lines(self, start, end=None):
        with open(self.log, "rb") as fh:
            fh.seek(start)
            data = fh.read() if end is None else fh.read(end - start)
        return data.decode(errors="replace").splitlines()

    def activity(self, start, end=None, user="coder"):
        """What `user` did in a slice of the log: connections received (TCP) and authorised,
        statements sent, and the peak number of its sessions open at once (from the authorised
        and disconnection lines, exact, unlike a sampled pg_stat_activity)."""
        received = authorised = statements = 0
        edges = []
        for line in self.log_lines(start, end):
            m = _LINE.match(line)
            if not m:
                continue
            msg = m["msg"]
            if msg.startswith("connection received: host=127.0.0.1"):
                received += 1
            elif m["user"] != user:
                continue
            elif msg.startswith("connection authorized:"):
                authorised += 1
                edges.append((_ts(m["ts"]), 1))
            elif msg.startswith("disconnection:"):
                edges.append((_ts(m["ts"]), -1))
            elif msg.startswith("statement:"):
                statements += 1
        peak = level = 0
        for _t, step in sorted(edges, key=lambda e: (e[0], e[1])):
            level += step
            peak = max(peak, level)
        return {"received": received, "authorised": authorised, "statements": statements, "peak": peak}

    def stop(self):
        if not self.base:
            return
        data = self.base / "data"
        if (data / "postmaster.pid").exists():
            try:
                self._run([PG_BIN / "pg_ctl", "-D", data, "-m", "fast", "-w", "-t", "30", "-s", "stop"])
            except subprocess.CalledProcessError:
                self._run([PG_BIN / "pg_ctl", "-D", data, "-m", "immediate", "-s", "stop"])
        for _ in range(20):
            if not (data / "postmaster.pid").exists():
                break
            time.sleep(0.25)
        shutil.rmtree(self.base, ignore_errors=True)
        self.base = None
