"""The kwok cluster: kwokctl's binary runtime running etcd, kube-apiserver,
kube-controller-manager, kube-scheduler and the kwok controller built on this machine."""

from __future__ import annotations

import json
import os
import shutil
import subprocess

from . import build
from .config import CLUSTER_NAME, KUBE_APISERVER_PORT, NODE_COUNT, STATE, TESTBED_DIR, VERSIONS
from .procs import TestbedError, run, wait_for

KUBECONFIG = STATE / "kubeconfig"


def _env() -> dict:
    return dict(os.environ, KWOK_WORKDIR=str(STATE / "kwok"), KUBECONFIG=str(KUBECONFIG),
                KWOK_KUBE_VERSION=VERSIONS["K8S_VERSION"],
                KWOK_KUBECTL_BINARY=str(build.binary("helm4", "kubectl")))


def kubectl(*args: str, check: bool = True, input: str | None = None) -> subprocess.CompletedProcess:
    return run([build.binary("helm4", "kubectl"), "--kubeconfig", KUBECONFIG, *args], check=check,
               input=input, what=f"kubectl {' '.join(args[:2])}" if check else None)


def _extra_args() -> list[str]:
    """kwokctl --extra-args for the real node. (kwokctl 0.8 indexes its patches by the position of a
    component's first argument: each component's first argument comes first, in that order.)"""
    pki = _cluster_dir() / "pki"
    args = {
        # kwok paints only its own nodes' pods, never the real node's (kwokctl starts it with
        # --manage-all-nodes=true; the later flag wins). A label key alone: a selector with "="
        # does not pass through --extra-args.
        "kwok-controller": ["manage-all-nodes=false", "manage-nodes-with-label-selector=coderops.test/fake"],
        "kube-apiserver": [
            # The real node's name does not resolve: logs, exec and the proxy go to its address,
            # with the admin client certificate (which the kubelet trusts).
            "kubelet-preferred-address-types=InternalIP,Hostname",
            f"kubelet-client-certificate={pki / 'admin.crt'}", f"kubelet-client-key={pki / 'admin.key'}",
            # A namespace chooses the real node with two annotations (bed/node.py).
            "enable-admission-plugins=PodNodeSelector,PodTolerationRestriction",
        ],
    }
    firsts = [f"{name}={values[0]}" for name, values in args.items()]
    rest = [f"{name}={value}" for name, values in args.items() for value in values[1:]]
    return [item for arg in firsts + rest for item in ("--extra-args", arg)]


def create() -> None:
    k8s = build.ensure("kubernetes")
    etcd = build.ensure("etcd")
    kwok = build.ensure("kwok")
    run([kwok / "kwokctl", "create", "cluster", "--name", CLUSTER_NAME, "--runtime", "binary",
         "--kubeconfig", KUBECONFIG, "--kube-apiserver-port", str(KUBE_APISERVER_PORT),
         "--kube-apiserver-binary", k8s / "kube-apiserver",
         "--kube-controller-manager-binary", k8s / "kube-controller-manager",
         "--kube-scheduler-binary", k8s / "kube-scheduler",
         "--kwok-controller-binary", kwok / "kwok", "--etcd-binary", etcd / "etcd",
         "--enable-crds", "Stage", "--kube-authorization", "--kube-admission",
         *_extra_args(),
         "--wait", "120s"],
        env=_env(), what="starting the kwok cluster", log=STATE / "logs" / "kwokctl.log")
    KUBECONFIG.chmod(0o600)
    wait_for(lambda: kubectl("get", "crd", "stages.kwok.x-k8s.io", check=False).returncode == 0,
             "the kwok Stage CRD", 60)
    kubectl("apply", "-f", str(TESTBED_DIR / "kube" / "stages.yaml"))
    nodes = "".join(_node(i) for i in range(NODE_COUNT))
    kubectl("apply", "-f", "-", input=nodes)
    wait_for(lambda: len(ready_nodes()) >= NODE_COUNT, f"{NODE_COUNT} Ready nodes", 90, interval=1)
    # Pods need the default ServiceAccount, which the controller manager creates shortly after.
    wait_for(lambda: kubectl("get", "serviceaccount", "default", "-n", "default",
                             check=False).returncode == 0, "the default ServiceAccount", 60)


def _node(i: int) -> str:
    name = f"kwok-node-{i}"
    return f"""---
apiVersion: v1
kind: Node
metadata:
  name: {name}
  annotations:
    kwok.x-k8s.io/node: fake
  labels:
    kubernetes.io/hostname: {name}
    kubernetes.io/os: linux
    kubernetes.io/arch: amd64
    kubernetes.io/role: agent
    type: kwok
    coderops.test/fake: "true"
    topology.kubernetes.io/zone: zone-{i}
spec: {{}}
"""


def ready_nodes() -> list[str]:
    proc = kubectl("get", "nodes", "-o", "json", check=False)
    if proc.returncode != 0:
        return []
    ready = []
    for node in json.loads(proc.stdout)["items"]:
        conds = {c["type"]: c["status"] for c in node.get("status", {}).get("conditions", [])}
        if conds.get("Ready") == "True":
            ready.append(node["metadata"]["name"])
    return ready


def running() -> bool:
    return KUBECONFIG.exists() and kubectl("get", "--raw", "/readyz", check=False).returncode == 0


def components() -> list[str]:
    kwokctl = build.binary("kwok", "kwokctl")
    if not kwokctl.exists() or not (STATE / "kwok").exists():
        return []
    proc = run([kwokctl, "get", "components", "--name", CLUSTER_NAME], env=_env(), check=False)
    return proc.stdout.splitlines() if proc.returncode == 0 else []


# The control plane's processes, as kwokctl's binary runtime runs them (a pid file each).
CONTROL_PLANE = ("kube-apiserver", "kube-controller-manager", "kube-scheduler", "kwok-controller")


def _cluster_dir():
    return STATE / "kwok" / "clusters" / CLUSTER_NAME


def _capture(component: str) -> dict:
    """How a control-plane process was started (command line, environment, directory)."""
    pid = int((_cluster_dir() / "pids" / f"{component}.pid").read_text().strip())
    proc_dir = f"/proc/{pid}"
    with open(f"{proc_dir}/cmdline", "rb") as fh:
        cmd = [arg.decode() for arg in fh.read().split(b"\0") if arg]
    with open(f"{proc_dir}/environ", "rb") as fh:
        env = dict(item.decode().split("=", 1) for item in fh.read().split(b"\0") if b"=" in item)
    return {"pid": pid, "cmd": cmd, "env": env, "cwd": os.readlink(f"{proc_dir}/cwd"), "name": component}


def _respawn(spec: dict) -> None:
    cluster = _cluster_dir()
    with open(cluster / "logs" / f"{spec['name']}.log", "ab") as log:
        child = subprocess.Popen(spec["cmd"], cwd=spec["cwd"], env=spec["env"], stdout=log,
                                 stderr=subprocess.STDOUT, stdin=subprocess.DEVNULL, start_new_session=True)
    (cluster / "pids" / f"{spec['name']}.pid").write_text(str(child.pid))


def restart_apiserver(down_seconds: float = 0.0) -> float:
    """Stop kube-apiserver (SIGTERM, as an upgrade of the control plane does), wait
    `down_seconds`, start it again with the same command line, environment and log, and wait
    until it is ready. kwokctl has no per-component restart, and nothing supervises its
    processes: the controller manager and the scheduler exit when they lose their leader lease
    while the API server is away, so they are started again too, as kubelet or systemd would on
    a real control plane. Returns the seconds the API server was away."""
    import signal
    import time

    from .procs import alive

    specs = {name: _capture(name) for name in CONTROL_PLANE}
    api = specs["kube-apiserver"]
    started = time.monotonic()
    os.kill(api["pid"], signal.SIGTERM)
    deadline = time.monotonic() + 30
    while alive(api["pid"]) and time.monotonic() < deadline:
        time.sleep(0.1)
    if alive(api["pid"]):
        os.kill(api["pid"], signal.SIGKILL)
    time.sleep(down_seconds)
    _respawn(api)
    wait_for(lambda: kubectl("get", "--raw", "/readyz", check=False).returncode == 0,
             "kube-apiserver to be ready again", 120)
    away = time.monotonic() - started
    time.sleep(2)
    for name in CONTROL_PLANE[1:]:
        if not alive(specs[name]["pid"]):
            _respawn(specs[name])
    return away


def delete() -> None:
    kwokctl = build.binary("kwok", "kwokctl")
    if (STATE / "kwok").exists() and kwokctl.exists():
        run([kwokctl, "delete", "cluster", "--name", CLUSTER_NAME], env=_env(), check=False)
    shutil.rmtree(STATE / "kwok", ignore_errors=True)


def check_built() -> None:
    for component in ("kubernetes", "etcd", "kwok", "helm3"):
        if not (build.cache_dir(component) / ".complete").exists():
            raise TestbedError(f"{component} is not built yet")
