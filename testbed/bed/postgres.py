"""PostgreSQL 15 servers run from Debian's binaries as an unprivileged user, on loopback only."""

from __future__ import annotations

import os
import pwd
import shutil
from pathlib import Path

from .config import (
    DB_NAME,
    DB_USER,
    MTLS_USER,
    PG_OS_USER,
    PG_SERVERS,
    POD_GATEWAY,
    POD_SUBNET,
    REAL_NODE,
    STATE,
    VERSIONS,
    PgServer,
)
from .procs import TestbedError, port_open, run, wait_for

PG_BIN = Path(f"/usr/lib/postgresql/{VERSIONS['PG_MAJOR']}/bin")
REPLICATION_USER = "replicator"

HBA = f"""# Written by the coderops test bed.
local   all          all                       trust
hostssl all          {MTLS_USER}  127.0.0.1/32  cert
hostssl all          {MTLS_USER}  {POD_SUBNET}  cert
host    all          {MTLS_USER}  all           reject
host    replication  {REPLICATION_USER}  127.0.0.1/32  scram-sha-256
host    all          all          127.0.0.1/32  scram-sha-256
hostssl all          all          {POD_SUBNET}  scram-sha-256
"""


def os_user() -> str | None:
    """The account that runs PostgreSQL: ourselves, or a system account when we are root."""
    if os.geteuid() != 0:
        return None
    try:
        pwd.getpwnam(PG_OS_USER)
    except KeyError:
        run(["useradd", "--system", "--no-create-home", "--shell", "/usr/sbin/nologin", PG_OS_USER])
    return PG_OS_USER


def server_dir(name: str) -> Path:
    return STATE / "pg" / name


def socket_dir(name: str) -> Path:
    return server_dir(name) / "run"


def listen_port(server: PgServer) -> int:
    return server.backend_port or server.port


def _chown(path: Path, user: str | None) -> None:
    if user:
        shutil.chown(path, user, user)


def _conf(server: PgServer) -> str:
    return f"""
# Written by the coderops test bed.
listen_addresses = '{"127.0.0.1," + POD_GATEWAY if REAL_NODE else "127.0.0.1"}'
port = {listen_port(server)}
unix_socket_directories = '{socket_dir(server.name)}'
max_connections = {server.max_connections}
superuser_reserved_connections = 3
# A deleted pod's last packets (the FIN of its sessions) are lost when its network goes first:
# seen on the real node under load, where the kernel had not yet delivered them when the veth was
# deleted. Without keepalives the server keeps such a session for two hours; managed servers set
# them too (RDS: tcp_keepalives_idle 300). Short here, so that a test sees it go within seconds.
tcp_keepalives_idle = 5
tcp_keepalives_interval = 2
tcp_keepalives_count = 3
ssl = on
ssl_cert_file = 'server.crt'
ssl_key_file = 'server.key'
ssl_ca_file = 'ca.crt'
password_encryption = 'scram-sha-256'
shared_buffers = 16MB
fsync = off
synchronous_commit = off
full_page_writes = off
wal_level = replica
max_wal_senders = 4
hot_standby = on
log_min_messages = warning
"""


def _install_certs(data: Path, pki: Path, user: str | None) -> None:
    for src, dst in (("server.crt", "server.crt"), ("server.key", "server.key"), ("ca.crt", "ca.crt")):
        shutil.copyfile(pki / src, data / dst)
        (data / dst).chmod(0o600)
        _chown(data / dst, user)


def _psql(name: str, sql: str, user: str | None, db: str = "postgres") -> str:
    """Run SQL as the superuser over the server's Unix socket; SQL goes in on stdin, so a
    password in it never shows in a process argument list."""
    return run([PG_BIN / "psql", "-X", "-q", "-v", "ON_ERROR_STOP=1", "-At", "-h", socket_dir(name),
                "-p", listen_port(PG_SERVERS[name]), "-U", "postgres", "-d", db, "-f", "-"],
               input=sql, user=user, what=f"configuring PostgreSQL {name}").stdout


def _literal(value: str) -> str:
    return "'" + value.replace("'", "''") + "'"


def start(name: str, user: str | None) -> None:
    server = PG_SERVERS[name]
    data = server_dir(name) / "data"
    log = STATE / "logs" / f"pg-{name}.log"
    log.touch()
    _chown(log, user)
    run([PG_BIN / "pg_ctl", "-D", data, "-l", log, "-w", "-t", "60", "-s", "start"], user=user,
        what=f"starting PostgreSQL {name}", check=False)
    if not port_open(listen_port(server)):
        raise TestbedError(f"PostgreSQL {name} did not start; its log says:\n"
                           + "\n".join(log.read_text(errors="replace").splitlines()[-15:]))


def create_primary(name: str, pki: Path, password: str, user: str | None) -> None:
    server = PG_SERVERS[name]
    base = server_dir(name)
    data = base / "data"
    socket_dir(name).mkdir(parents=True, exist_ok=True)
    for p in (base, socket_dir(name)):
        _chown(p, user)
    run([PG_BIN / "initdb", "-D", data, "-U", "postgres", "--auth-local=trust",
         "--auth-host=scram-sha-256", "-E", "UTF8", "--locale=C", "--no-instructions"],
        user=user, what=f"initialising PostgreSQL {name}")
    with open(data / "postgresql.conf", "a") as fh:
        fh.write(_conf(server))
    (data / "pg_hba.conf").write_text(HBA)
    _install_certs(data, pki, user)
    start(name, user)
    pw = _literal(password)
    _psql(name, f"""
CREATE ROLE {DB_USER} LOGIN PASSWORD {pw};
CREATE DATABASE {DB_NAME} OWNER {DB_USER};
CREATE ROLE {MTLS_USER} LOGIN;
CREATE ROLE {REPLICATION_USER} LOGIN REPLICATION PASSWORD {pw};
""", user)


def create_standby(name: str, primary: str, password: str, user: str | None) -> None:
    """A streaming replica of `primary`, cloned with pg_basebackup."""
    server = PG_SERVERS[name]
    base = server_dir(name)
    socket_dir(name).mkdir(parents=True, exist_ok=True)
    for p in (base, socket_dir(name)):
        _chown(p, user)
    passfile = base / "replication.pgpass"
    primary_port = listen_port(PG_SERVERS[primary])
    passfile.write_text(f"127.0.0.1:{primary_port}:replication:{REPLICATION_USER}:"
                        + password.replace("\\", "\\\\").replace(":", "\\:") + "\n")
    passfile.chmod(0o600)
    _chown(passfile, user)
    data = base / "data"
    run([PG_BIN / "pg_basebackup", "-h", "127.0.0.1", "-p", primary_port, "-U", REPLICATION_USER,
         "-D", data, "-X", "stream", "--checkpoint=fast", "--no-password", "-d", f"passfile={passfile}"],
        user=user, what=f"cloning PostgreSQL {primary} into {name}")
    with open(data / "postgresql.conf", "a") as fh:
        fh.write(_conf(server))
        fh.write(f"primary_conninfo = 'host=127.0.0.1 port={primary_port} user={REPLICATION_USER} "
                 f"passfile={passfile} application_name={name}'\n")
    (data / "standby.signal").touch()
    _chown(data / "standby.signal", user)
    start(name, user)
    wait_for(lambda: _psql(name, "SELECT pg_is_in_recovery();", user).strip() == "t",
             f"PostgreSQL {name} to enter recovery", 30)


def running(name: str) -> bool:
    data = server_dir(name) / "data"
    if not (data / "postmaster.pid").exists():
        return False
    pid = int((data / "postmaster.pid").read_text().split()[0])
    from .procs import alive
    return alive(pid) and port_open(listen_port(PG_SERVERS[name]))


def stop(name: str, user: str | None) -> None:
    data = server_dir(name) / "data"
    if not (data / "postmaster.pid").exists():
        return
    proc = run([PG_BIN / "pg_ctl", "-D", data, "-m", "fast", "-w", "-t", "30", "-s", "stop"],
               user=user, check=False)
    if proc.returncode != 0:
        run([PG_BIN / "pg_ctl", "-D", data, "-m", "immediate", "-s", "stop"], user=user, check=False)


def stop_smart(name: str, user: str | None) -> None:
    """Begin a smart shutdown and return at once: until its open sessions end, the server stays up
    and refuses new ones ("the database system is shutting down"), for the fault tests."""
    data = server_dir(name) / "data"
    run([PG_BIN / "pg_ctl", "-D", data, "-m", "smart", "-W", "-s", "stop"], user=user)
