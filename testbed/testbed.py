#!/usr/bin/env python3
"""make testbed / testbed-down / testbed-status: bring the local test bed up, down, or report it.

    python3 testbed/testbed.py up [--pg "main small"]
    python3 testbed/testbed.py down
    python3 testbed/testbed.py status
    python3 testbed/testbed.py build          # only build/fetch the cached binaries

Faults, for the disruptive tests (tests/reliability), on a private bed only (CODER_TESTBED_STATE):
    python3 testbed/testbed.py stop-pg main          # stop PostgreSQL server main (pg_ctl -m fast)
    python3 testbed/testbed.py stop-pg main --smart  # begin a smart shutdown and return: the server
                                                     # refuses new sessions until the open ones end
    python3 testbed/testbed.py start-pg main         # start it again
    python3 testbed/testbed.py restart-apiserver [--down 5]   # stop kube-apiserver, start it again
"""

from __future__ import annotations

import argparse
import json
import os
import secrets
import shutil
import signal
import sys
import time
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parent))

from bed import build, container, envfile, kube, latency, node, pki, postgres  # noqa: E402
from bed.config import (  # noqa: E402
    KUBE_APISERVER_PORT,
    PG_CONTAINER,
    PG_SERVERS,
    REAL_NODE,
    STATE,
    TOXIPROXY_API_PORT,
    selected_servers,
)
from bed.procs import TestbedError, alive, fail, port_free, processes_under, say, wait_for  # noqa: E402

SERVERS_FILE = STATE / "servers.json"
COMPONENTS = ("kubernetes", "etcd", "kwok", "toxiproxy", "helm3", "helm4")


def _up_servers() -> list[str]:
    return json.loads(SERVERS_FILE.read_text()) if SERVERS_FILE.exists() else []


def health(servers: list[str]) -> dict[str, bool]:
    state = {"kubernetes": kube.running()}
    if REAL_NODE:
        state["real node"] = node.running()
    for name in servers:
        if name == "container":
            state[name] = container.running()
        else:
            state[name] = postgres.running(name)
        if name == "far":
            state["toxiproxy"] = latency.running()
    return state


def prerequisites(servers: list[str]) -> None:
    missing = [c for c in ("go", "openssl", "runuser") if not shutil.which(c)]
    if not (postgres.PG_BIN / "initdb").exists():
        missing.append(f"PostgreSQL {postgres.PG_BIN.parent.name} server binaries")
    if "container" in servers and not shutil.which("docker"):
        missing.append("docker")
    if missing:
        raise TestbedError(f"missing prerequisites: {', '.join(missing)}; run `make prereqs` as root "
                           "(installs Debian's postgresql-15, docker.io, debootstrap, openssl)")
    ports = {KUBE_APISERVER_PORT: "kube-apiserver"}
    for name in servers:
        server = PG_SERVERS[name]
        ports[server.port] = f"PostgreSQL {name}"
        if server.backend_port:
            ports[server.backend_port] = f"PostgreSQL {name} (behind the proxy)"
            ports[TOXIPROXY_API_PORT] = "Toxiproxy API"
    busy = [f"{port} ({what})" for port, what in ports.items() if not port_free(port)]
    if busy:
        raise TestbedError(f"port(s) already in use: {', '.join(busy)}. Stop what holds them "
                           "(`ss -ltnp` shows it), or move the test bed with CODER_TESTBED_PORT_BASE "
                           "(default 15430)")
    if os.geteuid() == 0:
        # PostgreSQL runs as an unprivileged account, which must reach the state directory.
        for parent in STATE.resolve().parents:
            if parent.exists() and not parent.stat().st_mode & 0o001:
                raise TestbedError(f"{parent} is not searchable by other users, so PostgreSQL "
                                   f"(run as {postgres.PG_OS_USER}) cannot reach {STATE}; "
                                   f"`chmod o+x {parent}` or put the state elsewhere "
                                   "(CODER_TESTBED_STATE)")


def up(servers: list[str]) -> None:
    started = time.monotonic()
    if STATE.exists():
        running = _up_servers()
        if set(servers) <= set(running) and all(health(running).values()):
            envfile.write(running)  # cheap, and keeps env.sh current with this checkout
            say(f"already up ({time.monotonic() - started:.1f} s)")
            status()
            return
        say("found a test bed that is not fully up; taking it down first")
        servers = [n for n in PG_SERVERS if n in set(servers) | set(running)]
        down()
    prerequisites(servers)
    for component in COMPONENTS:
        build.ensure(component)
    try:
        _start(servers)
    except BaseException:
        fail("start-up failed; stopping what had started")
        down()
        raise
    say(f"up in {time.monotonic() - started:.0f} s")
    status()


def _start(servers: list[str]) -> None:
    for sub in ("logs", "secrets", "pg"):
        (STATE / sub).mkdir(parents=True, exist_ok=True)
    STATE.chmod(0o755)
    (STATE / "secrets").chmod(0o700)
    SERVERS_FILE.write_text(json.dumps(servers))
    pki.make(envfile.PKI)
    if not envfile.PASSWORD_FILE.exists():
        envfile.PASSWORD_FILE.write_text(secrets.token_urlsafe(24))
        envfile.PASSWORD_FILE.chmod(0o600)
    password = envfile.PASSWORD_FILE.read_text()
    user = postgres.os_user()
    if user:
        # The unprivileged PostgreSQL account must reach its data directories.
        for p in (STATE, STATE / "pg", STATE / "logs"):
            p.chmod(0o755)
    if REAL_NODE:
        node.network_up()
    for name in servers:
        if name == "standby":
            say("starting PostgreSQL standby (streaming from main)")
            postgres.create_standby(name, "main", password, user)
        elif name == "container":
            say("starting PostgreSQL in a Docker container")
            container.ensure_dockerd()
            container.start(envfile.PKI, envfile.PASSWORD_FILE)
        else:
            say(f"starting PostgreSQL {name}")
            postgres.create_primary(name, envfile.PKI, password, user)
            if PG_SERVERS[name].backend_port:
                latency.start(name, PG_SERVERS[name].port, PG_SERVERS[name].backend_port)
    say("starting the kwok cluster")
    kube.create()
    if REAL_NODE:
        say("starting the real node (containerd, kubelet)")
        node.up(kube.KUBECONFIG)
        wait_for(lambda: node.NODE_NAME in kube.ready_nodes(), "the real node to be Ready", 90, interval=1)
    envfile.write(servers)


def down() -> None:
    if not STATE.exists():
        say("nothing to take down")
        return
    user = postgres.os_user()
    node.down()
    kube.delete()
    for name in reversed(list(PG_SERVERS)):
        if name == "container":
            container.remove()
        elif (postgres.server_dir(name) / "data").exists():
            postgres.stop(name, user)
    if latency.PIDFILE.exists():
        _terminate(int(latency.PIDFILE.read_text()))
    container.stop_dockerd()
    for pid, cmd in processes_under(STATE):
        say(f"stopping leftover process {pid}: {cmd[:100]}")
        _terminate(pid)
    shutil.rmtree(STATE, ignore_errors=True)
    left = processes_under(STATE)
    if left:
        raise TestbedError(f"processes of the test bed are still running: {left}")
    say("down: nothing of the test bed runs any more")


def _terminate(pid: int) -> None:
    try:
        os.kill(pid, signal.SIGTERM)
    except ProcessLookupError:
        return
    deadline = time.monotonic() + 10
    while alive(pid) and time.monotonic() < deadline:
        time.sleep(0.2)
    if alive(pid):
        os.kill(pid, signal.SIGKILL)


def _rss_mib() -> float:
    total = 0
    pids = {pid for pid, _ in processes_under(STATE)}
    if container.running():
        # The container's processes and the daemons that run it count too.
        pids |= _container_pids() | _pids_named("dockerd", "containerd", "containerd-shim",
                                                "docker-proxy")
    for pid in pids:
        try:
            for line in Path(f"/proc/{pid}/status").read_text().splitlines():
                if line.startswith("VmRSS:"):
                    total += int(line.split()[1])
        except OSError:
            pass
    return total / 1024


def _pids_named(*names: str) -> set[int]:
    pids = set()
    for entry in Path("/proc").iterdir():
        try:
            if entry.name.isdigit() and (entry / "comm").read_text().strip() in names:
                pids.add(int(entry.name))
        except OSError:
            pass
    return pids


def _container_pids() -> set[int]:
    import subprocess
    top = subprocess.run(["docker", "top", PG_CONTAINER, "-eo", "pid"], capture_output=True,
                         text=True)
    return {int(x) for x in top.stdout.split()[1:] if x.isdigit()}


def status() -> None:
    if not STATE.exists():
        print("test bed: down")
        return
    servers = _up_servers()
    state = health(servers)
    print(f"test bed: {'up' if all(state.values()) else 'DEGRADED'}   state: {STATE}")
    print(f"  kubernetes  {'running' if state['kubernetes'] else 'DOWN':8} "
          f"https://127.0.0.1:{KUBE_APISERVER_PORT}  nodes Ready: {len(kube.ready_nodes())}  "
          f"kubeconfig: {kube.KUBECONFIG}")
    for line in kube.components():
        print(f"    {line}")
    for name in servers:
        server = PG_SERVERS[name]
        extra = f" -> 127.0.0.1:{server.backend_port}" if server.backend_port else ""
        print(f"  pg {name:9} {'running' if state[name] else 'DOWN':8} 127.0.0.1:{server.port}{extra}"
              f"  ({server.description})")
    if "toxiproxy" in state:
        print(f"  toxiproxy   {'running' if state['toxiproxy'] else 'DOWN':8} "
              f"API http://127.0.0.1:{TOXIPROXY_API_PORT}")
    if REAL_NODE:
        print(f"  real node   {'running' if node.running() else 'DOWN':8} {node.NODE_NAME}, pods on {node.BRIDGE}"
              f" {node.SUBNET}, servers at {node.GATEWAY}")
    print(f"  memory      {_rss_mib():.0f} MiB resident")
    print(f"  use it:     . {STATE / 'env.sh'}")


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawTextHelpFormatter)
    parser.add_argument("command", choices=("up", "down", "status", "build", "stop-pg", "start-pg",
                                            "restart-apiserver"))
    parser.add_argument("server", nargs="?", help="stop-pg / start-pg: the PostgreSQL server (e.g. main)")
    parser.add_argument("--smart", action="store_true",
                        help="stop-pg: a smart shutdown, not waited for (the server stays 'shutting down' "
                             "while sessions are open)")
    parser.add_argument("--down", type=float, default=0.0,
                        help="restart-apiserver: seconds the API server stays stopped")
    parser.add_argument("--pg", default=os.environ.get("PG"),
                        help=f"PostgreSQL servers to start (default: all of {' '.join(PG_SERVERS)})")
    args = parser.parse_args()
    try:
        if args.command == "up":
            up(selected_servers(args.pg))
        elif args.command == "down":
            down()
        elif args.command == "status":
            status()
        elif args.command in ("stop-pg", "start-pg"):
            if args.server not in _up_servers() or args.server == "container":
                raise TestbedError(f"{args.command}: name a native PostgreSQL server of this bed: {_up_servers()}")
            if args.command == "stop-pg" and args.smart:
                postgres.stop_smart(args.server, postgres.os_user())
            elif args.command == "stop-pg":
                postgres.stop(args.server, postgres.os_user())
            else:
                postgres.start(args.server, postgres.os_user())
            say(f"PostgreSQL {args.server}: {'running' if postgres.running(args.server) else 'stopped'}")
        elif args.command == "restart-apiserver":
            say(f"kube-apiserver restarted, away {kube.restart_apiserver(args.down):.1f} s")
        else:
            for component in COMPONENTS:
                build.ensure(component)
    except TestbedError as exc:
        fail(str(exc))
        return 1
    except KeyboardInterrupt:
        fail("interrupted")
        return 130
    return 0


if __name__ == "__main__":
    sys.exit(main())
