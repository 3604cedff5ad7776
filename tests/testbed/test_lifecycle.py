"""`make testbed` / `make testbed-down` on a second, private test bed (own state directory and
ports), so the shared one keeps running: a busy port is refused before anything starts, a second
`up` notices it is up, and `down` leaves no process behind and the machine as it found it (the real
node's bridge, cgroups, mounts, network namespaces, sysctls, iptables rules and container log
links)."""

from __future__ import annotations

import json
import os
import shutil
import socket
import subprocess
import sys
import tempfile
from pathlib import Path

from conftest import REPO

TESTBED = [sys.executable, str(REPO / "testbed" / "testbed.py")]
PORT_BASE = 16430  # the shared test bed uses 15430 and up


def _bed(state: Path, *args: str, port_base: int = PORT_BASE):
    env = dict(os.environ, CODER_TESTBED_STATE=str(state), CODER_TESTBED_PORT_BASE=str(port_base))
    return subprocess.run([*TESTBED, *args], capture_output=True, text=True, env=env, timeout=600)


def _processes_mentioning(path: Path) -> list[str]:
    found = []
    for entry in Path("/proc").iterdir():
        if entry.name.isdigit():
            try:
                cmd = (entry / "cmdline").read_bytes().replace(b"\0", b" ").decode(errors="replace")
            except OSError:
                continue
            if str(path) in cmd:
                found.append(f"{entry.name}: {cmd}")
    return found


def test_busy_port_is_refused_before_anything_starts(tmp_path):
    state = tmp_path / "bed"
    with socket.socket() as blocker:
        blocker.bind(("127.0.0.1", PORT_BASE + 2))  # where `main` would listen
        blocker.listen()
        proc = _bed(state, "up", "--pg", "main")
    assert proc.returncode != 0
    assert f"{PORT_BASE + 2} (PostgreSQL main)" in proc.stderr
    assert "CODER_TESTBED_PORT_BASE" in proc.stderr
    assert not _processes_mentioning(state)
    assert not (state / "pg").exists()


def test_unknown_server_name_is_refused(tmp_path):
    proc = _bed(tmp_path / "bed", "up", "--pg", "main nosuch")
    assert proc.returncode != 0
    assert "unknown PostgreSQL server(s) nosuch" in proc.stderr


def _machine_state() -> dict:
    """What a test bed's real node may change on this machine, as plain data to compare."""
    def lines(cmd):
        proc = subprocess.run(cmd, capture_output=True, text=True, check=False)
        return sorted(proc.stdout.splitlines()) if proc.returncode == 0 else [f"<{cmd[0]} failed>"]

    cgroups = sorted(str(p) for p in Path("/sys/fs/cgroup").glob("*/coderops-*"))
    netns = Path("/var/run/netns")
    containers = Path("/var/log/containers")
    iptables = [r for r in lines(["iptables-save"]) if not r.startswith("#")] if shutil.which("iptables-save") else []
    return {
        "links": [line.split(":")[1].split("@")[0].strip() for line in lines(["ip", "-o", "link"])],
        "addresses": lines(["ip", "-o", "-4", "addr"]),
        "routes": lines(["ip", "route"]),
        "mounts": sorted(Path("/proc/self/mounts").read_text().splitlines()),
        "cgroups": cgroups,
        "netns": sorted(p.name for p in netns.iterdir()) if netns.is_dir() else None,
        "container_logs": sorted(p.name for p in containers.iterdir()) if containers.is_dir() else None,
        "sysctls": {k: Path("/proc/sys", *k.split(".")).read_text()
                    for k in ("vm.overcommit_memory", "kernel.panic", "kernel.panic_on_oops",
                              "net.ipv4.ip_forward", "net.bridge.bridge-nf-call-iptables")
                    if Path("/proc/sys", *k.split(".")).exists()},
        "iptables": [r.split(" [")[0] if r.startswith(":") else r for r in iptables],
    }


POD = """{"apiVersion": "v1", "kind": "Pod", "metadata": {"name": "sleeper", "namespace": "default"},
 "spec": {"nodeSelector": {"type": "real"},
          "tolerations": [{"key": "coderops.test/node", "operator": "Equal", "value": "real", "effect": "NoSchedule"}],
          "containers": [{"name": "pause", "image": "registry.coderops.test/pause:3.10"}]}}"""


def _run_pod(state: Path) -> None:
    env = dict(os.environ, KUBECONFIG=str(state / "kubeconfig"))
    kubectl = str(state / "bin" / "kubectl")
    subprocess.run([kubectl, "apply", "-f", "-"], input=POD, text=True, env=env, check=True, capture_output=True)
    wait = subprocess.run([kubectl, "wait", "--for=condition=Ready", "pod/sleeper", "--timeout=90s"],
                          text=True, env=env, capture_output=True, check=False)
    assert wait.returncode == 0, wait.stdout + wait.stderr


def test_up_twice_then_down_leaves_nothing():
    # Not under pytest's tmp_path: that is private to root, and PostgreSQL runs as another user.
    base = Path(tempfile.mkdtemp(prefix="coderops-bed-"))
    base.chmod(0o755)
    state = base / "bed"
    before = _machine_state()
    try:
        first = _bed(state, "up", "--pg", "main")
        assert first.returncode == 0, first.stdout + first.stderr
        assert _processes_mentioning(state), "nothing runs after up"
        second = _bed(state, "up", "--pg", "main")
        assert second.returncode == 0, second.stderr
        assert "already up" in second.stdout
        status = _bed(state, "status")
        assert f"127.0.0.1:{PORT_BASE + 2}" in status.stdout
        assert f"https://127.0.0.1:{PORT_BASE + 13}" in status.stdout
        if os.environ.get("CODER_TESTBED_NODE", "real") == "real":
            assert f"real node   running  real-node-{PORT_BASE}" in status.stdout, status.stdout
            # A pod on the real node, so that down has a sandbox, its netns and its cgroups to undo.
            _run_pod(state)
            during = _machine_state()
            assert len(during["netns"] or []) > len(before["netns"] or []), "the pod has no network namespace"
            assert f"crb{PORT_BASE}" in during["links"], "the real node's bridge is missing while up"
            assert during["cgroups"] != before["cgroups"], "the real node made no cgroup root"
    finally:
        down = _bed(state, "down")
    assert down.returncode == 0, down.stderr
    assert not _processes_mentioning(state)
    assert not state.exists()
    base.rmdir()
    after = _machine_state()
    changed = {k: {"before": before[k], "after": after[k]} for k in before if before[k] != after[k]}
    assert not changed, "make testbed-down left the machine changed:\n" + json.dumps(changed, indent=1)
