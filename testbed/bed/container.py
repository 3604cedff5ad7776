"""PostgreSQL in a Docker container: Debian's docker.io, an image built locally with debootstrap
(no registry can be reached), the port published on 127.0.0.1 only."""

from __future__ import annotations

import hashlib
import os
import shutil
import subprocess
import tempfile
from pathlib import Path

from .config import CACHE, PG_CONTAINER, PG_IMAGE, PG_SERVERS, STATE, TESTBED_DIR, VERSIONS
from .postgres import HBA
from .procs import TestbedError, alive, run, say, spawn, wait_for

ENTRYPOINT = TESTBED_DIR / "container" / "entrypoint.sh"
DOCKERD_PID = STATE / "dockerd.pid"
# Certificates, key and password file mounted read-only into PostgreSQL containers.
SECRETS = STATE / "pg" / "container" / "secrets"
STATE_LABEL = "coderops.testbed.state"


def _docker_ok() -> bool:
    return subprocess.run(["docker", "info"], capture_output=True).returncode == 0


def ensure_dockerd() -> None:
    """Use a running Docker daemon, or start one (and remember to stop it again)."""
    if _docker_ok():
        return
    if not shutil.which("dockerd"):
        raise TestbedError("dockerd is missing: run `make prereqs` as root (installs docker.io)")
    if os.geteuid() != 0:
        raise TestbedError("the Docker daemon is not running and only root can start it; "
                           "start it, or leave `container` out of PG=")
    pid = spawn(["dockerd"], log=STATE / "logs" / "dockerd.log")
    DOCKERD_PID.write_text(f"{pid}\n")
    wait_for(_docker_ok, "the Docker daemon", 60)


def stop_dockerd() -> None:
    if DOCKERD_PID.exists():
        pid = int(DOCKERD_PID.read_text())
        if alive(pid):
            os.kill(pid, 15)
            wait_for(lambda: not alive(pid), "the Docker daemon to stop", 30)
        DOCKERD_PID.unlink()


def image_tag() -> str:
    digest = hashlib.sha256(ENTRYPOINT.read_bytes() + HBA.encode()).hexdigest()[:10]
    return f"{PG_IMAGE}:{VERSIONS['PG_MAJOR']}-{digest}"


def ensure_image() -> str:
    tag = image_tag()
    if subprocess.run(["docker", "image", "inspect", tag], capture_output=True).returncode == 0:
        return tag
    rootfs = CACHE / f"pgimage-{tag.split(':')[1]}" / "rootfs.tar"
    if not rootfs.exists():
        _debootstrap(rootfs)
    run(["docker", "import", "--change", 'CMD ["/usr/local/bin/coderops-pg-entrypoint"]',
         rootfs, tag], what="importing the PostgreSQL image")
    return tag


def _debootstrap(rootfs: Path) -> None:
    if not shutil.which("debootstrap"):
        raise TestbedError("debootstrap is missing: run `make prereqs` as root")
    mirror = "http://deb.debian.org/debian"
    say(f"building the PostgreSQL {VERSIONS['PG_MAJOR']} image with debootstrap (about a minute)")
    rootfs.parent.mkdir(parents=True, exist_ok=True)
    with tempfile.TemporaryDirectory(dir=CACHE) as tmp:
        root = Path(tmp) / "root"
        run(["debootstrap", "--variant=minbase",
             f"--include=postgresql-{VERSIONS['PG_MAJOR']},ca-certificates,openssl",
             "bookworm", root, mirror], what="running debootstrap", capture=False,
            log=STATE / "logs" / "debootstrap.log")
        dest = root / "usr/local/bin/coderops-pg-entrypoint"
        shutil.copyfile(ENTRYPOINT, dest)
        dest.chmod(0o755)
        (root / "etc/coderops-pg_hba.conf").write_text(HBA.replace("127.0.0.1/32", "all"))
        shutil.rmtree(root / "var/cache/apt/archives", ignore_errors=True)
        partial = rootfs.with_suffix(".partial")
        run(["tar", "-C", root, "-cf", partial, "."], what="packing the image")
        partial.rename(rootfs)


def start(pki: Path, password_file: Path) -> None:
    server = PG_SERVERS["container"]
    tag = ensure_image()
    secrets = SECRETS
    secrets.mkdir(parents=True, exist_ok=True)
    secrets.chmod(0o700)
    for name in ("server.crt", "server.key", "ca.crt"):
        shutil.copyfile(pki / name, secrets / name)
    shutil.copyfile(password_file, secrets / "password")
    for f in secrets.iterdir():
        f.chmod(0o600)
    subprocess.run(["docker", "rm", "-f", PG_CONTAINER], capture_output=True)
    run(["docker", "run", "-d", "--name", PG_CONTAINER, "--label", f"{STATE_LABEL}={STATE}",
         "-p", f"127.0.0.1:{server.port}:5432",
         "-v", f"{secrets}:/run/coderops-secrets:ro", tag], what="starting the PostgreSQL container")

    def ready() -> bool:
        isready = f"/usr/lib/postgresql/{VERSIONS['PG_MAJOR']}/bin/pg_isready"
        probe = subprocess.run(["docker", "exec", PG_CONTAINER, isready, "-q", "-h", "127.0.0.1", "-U", "postgres"],
                               capture_output=True)
        return probe.returncode == 0

    try:
        wait_for(ready, "PostgreSQL in its container", 90, interval=1)
    except TestbedError as exc:
        logs = subprocess.run(["docker", "logs", "--tail", "20", PG_CONTAINER],
                              capture_output=True, text=True)
        raise TestbedError(f"{exc}; container log:\n{logs.stdout}{logs.stderr}") from exc


def running() -> bool:
    probe = subprocess.run(["docker", "inspect", "-f", "{{.State.Running}}", PG_CONTAINER],
                           capture_output=True, text=True)
    return probe.stdout.strip() == "true"


def remove() -> None:
    """Remove every container this test bed started (found by label, whatever its ports were)."""
    if shutil.which("docker") and _docker_ok():
        ids = subprocess.run(["docker", "ps", "-aq", "--filter", f"label={STATE_LABEL}={STATE}"],
                             capture_output=True, text=True).stdout.split()
        if ids:
            subprocess.run(["docker", "rm", "-f", "-v", *ids], capture_output=True)
