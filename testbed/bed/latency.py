"""Toxiproxy in front of the `far` server: the kernel here has no netem, so real added latency
comes from a TCP proxy with latency toxics in both directions."""

from __future__ import annotations

import json
import urllib.request

from . import build
from .config import STATE, TOXIPROXY_API_PORT
from .procs import TestbedError, alive, port_open, spawn, wait_for

ONE_WAY_MS = 15  # each direction, so a round trip gains at least 30 ms
PIDFILE = STATE / "toxiproxy.pid"


def _api(method: str, path: str, body: dict | None = None) -> dict:
    req = urllib.request.Request(f"http://127.0.0.1:{TOXIPROXY_API_PORT}{path}", method=method,
                                 data=json.dumps(body).encode() if body is not None else None,
                                 headers={"Content-Type": "application/json"})
    with urllib.request.urlopen(req, timeout=10) as resp:
        return json.loads(resp.read() or b"{}")


def start(name: str, listen: int, upstream: int) -> None:
    binary = build.ensure("toxiproxy") / "toxiproxy-server"
    pid = spawn([binary, "-host", "127.0.0.1", "-port", str(TOXIPROXY_API_PORT)],
                log=STATE / "logs" / "toxiproxy.log")
    PIDFILE.write_text(f"{pid}\n")
    wait_for(lambda: port_open(TOXIPROXY_API_PORT), "Toxiproxy's API", 20)
    try:
        _api("POST", "/proxies", {"name": name, "listen": f"127.0.0.1:{listen}",
                                  "upstream": f"127.0.0.1:{upstream}", "enabled": True})
        for stream in ("downstream", "upstream"):
            _api("POST", f"/proxies/{name}/toxics",
                 {"name": f"latency_{stream}", "type": "latency", "stream": stream,
                  "attributes": {"latency": ONE_WAY_MS, "jitter": 0}})
    except OSError as exc:
        raise TestbedError(f"could not configure Toxiproxy: {exc}") from exc


def running() -> bool:
    return PIDFILE.exists() and alive(int(PIDFILE.read_text())) and port_open(TOXIPROXY_API_PORT)
