"""Running commands, with progress for long ones, and finding what still runs."""

from __future__ import annotations

import os
import socket
import subprocess
import sys
import threading
import time
from pathlib import Path


def clean_env(env: dict | None = None) -> dict:
    """The environment for the test bed's own commands: without the libpq variables (PGHOST,
    PGSSLMODE, ...) that a caller who sourced env.sh carries, which would redirect them."""
    return {k: v for k, v in (env or os.environ).items() if not k.startswith("PG")}


class TestbedError(Exception):
    """A failure with a message that says what broke and how to fix it."""


def say(msg: str) -> None:
    print(f"testbed: {msg}", flush=True)


def run(cmd, *, what: str | None = None, input: str | None = None, env=None, cwd=None,
        user: str | None = None, check: bool = True, capture: bool = True,
        log: Path | None = None) -> subprocess.CompletedProcess:
    """Run a command. With `what`, print progress every 30 s while it runs."""
    cmd = [str(c) for c in cmd]
    if user:
        cmd = ["runuser", "-u", user, "--", *cmd]
    stop = threading.Event()
    if what:
        start = time.monotonic()

        def beat():
            while not stop.wait(30):
                say(f"still {what} ({int(time.monotonic() - start)} s)")

        threading.Thread(target=beat, daemon=True).start()
    try:
        if log:
            with open(log, "ab") as fh:
                proc = subprocess.run(cmd, input=input.encode() if input else None, env=clean_env(env),
                                      cwd=cwd, stdout=fh, stderr=subprocess.STDOUT)
        else:
            proc = subprocess.run(cmd, input=input, env=clean_env(env), cwd=cwd, text=True,
                                  capture_output=capture)
    except FileNotFoundError as exc:
        raise TestbedError(f"{cmd[0]} is not installed ({exc}); run `make prereqs` as root") from exc
    finally:
        stop.set()
    if check and proc.returncode != 0:
        detail = ""
        if log:
            detail = "\n" + tail(log)
        elif capture:
            detail = "\n" + ((proc.stderr or "") + (proc.stdout or "")).strip()[-3000:]
        raise TestbedError(f"{what or cmd[0]} failed (exit {proc.returncode}): {' '.join(cmd[:6])}{detail}")
    return proc


def tail(path: Path, lines: int = 30) -> str:
    try:
        return "\n".join(path.read_text(errors="replace").splitlines()[-lines:])
    except OSError:
        return ""


def spawn(cmd, *, log: Path, env=None, user: str | None = None) -> int:
    """Start a daemon in its own session; returns its pid."""
    cmd = [str(c) for c in cmd]
    if user:
        cmd = ["runuser", "-u", user, "--", *cmd]
    with open(log, "ab") as fh:
        proc = subprocess.Popen(cmd, stdout=fh, stderr=subprocess.STDOUT, stdin=subprocess.DEVNULL,
                                env=clean_env(env), start_new_session=True)
    return proc.pid


def alive(pid: int) -> bool:
    try:
        os.kill(pid, 0)
    except ProcessLookupError:
        return False
    except PermissionError:
        return True
    # A zombie is not alive.
    try:
        return Path(f"/proc/{pid}/stat").read_text().split()[2] != "Z"
    except OSError:
        return False


def port_open(port: int, host: str = "127.0.0.1", timeout: float = 0.5) -> bool:
    try:
        with socket.create_connection((host, port), timeout=timeout):
            return True
    except OSError:
        return False


def port_free(port: int) -> bool:
    with socket.socket(socket.AF_INET, socket.SOCK_STREAM) as s:
        s.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
        try:
            s.bind(("127.0.0.1", port))
        except OSError:
            return False
    return True


def wait_for(check, what: str, timeout: float, interval: float = 0.5) -> None:
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        if check():
            return
        time.sleep(interval)
    raise TestbedError(f"timed out after {timeout:.0f} s waiting for {what}")


def processes_under(path: Path) -> list[tuple[int, str]]:
    """Processes whose command line or working directory mentions `path` (the test bed's own)."""
    needle = str(path)
    found = []
    for entry in Path("/proc").iterdir():
        if not entry.name.isdigit() or int(entry.name) == os.getpid():
            continue
        try:
            cmdline = (entry / "cmdline").read_bytes().replace(b"\0", b" ").decode(errors="replace")
            cwd = os.readlink(entry / "cwd") if os.access(entry / "cwd", os.R_OK) else ""
        except OSError:
            continue
        if needle in cmdline or cwd.startswith(needle):
            found.append((int(entry.name), cmdline.strip()))
    return found


def fail(msg: str) -> None:
    print(f"testbed: ERROR: {msg}", file=sys.stderr, flush=True)
