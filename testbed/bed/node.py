"""The real node (issue 14; docs/testbed.md, "The real node"): one node with a real kubelet beside
the kwok nodes, where the Coder stand-in's pods run for real.

Parts, all under STATE/node (own socket, root and state; nothing of docker's):
  containerd   Debian's containerd 1.6 and runc, config written here (CRI: cgroupfs, the pause
               image built from Kubernetes' pause.c, restrict_oom_score_adj, the CNI bridge below)
  CNI          Debian's containernetworking-plugins (bridge, host-local, loopback): a bridge of its
               own, no masquerading, no default route out
  kubelet      built from k8s.io/kubernetes (same wrapper module as the control plane), cgroupfs,
               failCgroupV1: false, its own root dir, cgroup root and ports

Run by hand:  python3 -m bed.node up|down|status   (from testbed/, with the test bed up)
"""

from __future__ import annotations

import hashlib
import io
import json
import os
import shutil
import subprocess
import sys
import tarfile
import time
from pathlib import Path

from . import build
from .config import CACHE, CLUSTER_NAME, KUBELET_PORT, POD_GATEWAY, POD_SUBNET, PORT_BASE, STATE, TESTBED_DIR, VERSIONS
from .procs import TestbedError, alive, run, say, spawn, wait_for

NODE = STATE / "node"
NODE_NAME = f"real-node-{PORT_BASE}"
BRIDGE = f"crb{PORT_BASE}"  # at most 15 characters
SUBNET, GATEWAY = POD_SUBNET, POD_GATEWAY
STANDIN_IMAGE = "registry.coderops.test/coder-standin"
CNI_BIN = Path("/usr/lib/cni")
PAUSE_IMAGE = "registry.coderops.test/pause:3.10"
CGROUP_ROOT = f"/coderops-{PORT_BASE}"
# What the kubelet changes on the machine, restored by down().
SYSCTLS = ("vm.overcommit_memory", "kernel.panic", "kernel.panic_on_oops")
# cgroup v1 hierarchies up() makes the cgroup root in (this machine: cgroup v1, no systemd); the
# kubelet adds it to the hybrid `unified` v2 mount itself.
CGROUP_HIERARCHIES = ("cpu", "cpuacct", "cpuset", "memory", "pids", "blkio", "devices", "freezer", "systemd")


def _cgroup_roots() -> list[Path]:
    """The cgroup root in every hierarchy the kubelet made it in (cgroup v1 here, plus the hybrid
    `unified` v2 mount: whatever is mounted under /sys/fs/cgroup)."""
    return sorted(Path("/sys/fs/cgroup").glob(f"*/{CGROUP_ROOT.lstrip('/')}"))


# -- building ------------------------------------------------------------------------------------

def kubelet_dir() -> Path:
    return CACHE / f"kubelet-{VERSIONS['K8S_VERSION']}-{build.cache_dir('kubernetes').name.rsplit('-', 1)[1]}"


def ensure_kubelet() -> Path:
    target = kubelet_dir()
    if (target / ".complete").exists():
        return target / "kubelet"
    (target).mkdir(parents=True, exist_ok=True)
    env = dict(os.environ, GOFLAGS="-mod=mod -buildvcs=false", GOTOOLCHAIN="local")
    say("building kubelet (a cold build takes about 6 minutes)")
    run(["go", "build", "-trimpath", f"-ldflags={build._ldflags('kubernetes')}", "-o", target / "kubelet",
         "k8s.io/kubernetes/cmd/kubelet"], what="building kubelet", cwd=build.GO_DIR / "kubernetes", env=env)
    (target / ".complete").write_text("ok\n")
    return target / "kubelet"


def _pause_source() -> Path:
    env = dict(os.environ, GOFLAGS="-mod=mod", GOTOOLCHAIN="local")
    out = run(["go", "mod", "download", "-json", f"k8s.io/kubernetes@{VERSIONS['K8S_VERSION']}"],
              what="locating Kubernetes' source", cwd=build.GO_DIR / "kubernetes", env=env)
    return Path(json.loads(out.stdout)["Dir"]) / "build" / "pause" / "linux" / "pause.c"


def image_tar(path: Path, ref, files: dict, entrypoint: list[str], user: str = "", env=()) -> None:
    """A docker-archive image (what `ctr images import` reads) of one layer holding `files`
    ({path in the image: (bytes, mode)})."""
    layer = io.BytesIO()
    with tarfile.open(fileobj=layer, mode="w") as tar:
        for name, (data, mode) in sorted(files.items()):
            info = tarfile.TarInfo(name.lstrip("/"))
            info.size, info.mode, info.mtime = len(data), mode, 0
            tar.addfile(info, io.BytesIO(data))
    layer_bytes = layer.getvalue()
    diff_id = "sha256:" + hashlib.sha256(layer_bytes).hexdigest()
    config = {"architecture": "amd64", "os": "linux",
              "config": {"Entrypoint": entrypoint, "User": user, "Env": ["PATH=/", *env]},
              "rootfs": {"type": "layers", "diff_ids": [diff_id]}, "history": [{"created_by": "coderops testbed"}]}
    config_bytes = json.dumps(config).encode()
    config_name = hashlib.sha256(config_bytes).hexdigest() + ".json"
    manifest = [{"Config": config_name, "RepoTags": [ref] if isinstance(ref, str) else list(ref),
                 "Layers": ["layer.tar"]}]
    with tarfile.open(path, "w") as out:
        for name, data in (("layer.tar", layer_bytes), (config_name, config_bytes),
                           ("manifest.json", json.dumps(manifest).encode())):
            info = tarfile.TarInfo(name)
            info.size, info.mtime = len(data), 0
            out.addfile(info, io.BytesIO(data))


def ensure_pause() -> Path:
    tar = CACHE / f"pause-{VERSIONS['K8S_VERSION']}.tar"
    if tar.exists():
        return tar
    work = CACHE / ".pause-build"
    work.mkdir(parents=True, exist_ok=True)
    run(["gcc", "-Os", "-static", "-o", work / "pause", _pause_source()], what="compiling pause.c")
    run(["strip", work / "pause"], what="stripping pause")
    image_tar(tar, PAUSE_IMAGE, {"/pause": ((work / "pause").read_bytes(), 0o755)}, ["/pause"], user="65535:65535")
    shutil.rmtree(work, ignore_errors=True)
    return tar


# -- configuration ---------------------------------------------------------------------------------

def _containerd_config() -> str:
    return f"""version = 2
root = "{NODE}/containerd/root"
state = "{NODE}/containerd/state"
[grpc]
  address = "{NODE}/containerd.sock"
[plugins."io.containerd.grpc.v1.cri"]
  sandbox_image = "{PAUSE_IMAGE}"
  restrict_oom_score_adj = true
  enable_selinux = false
  [plugins."io.containerd.grpc.v1.cri".containerd]
    snapshotter = "overlayfs"
    default_runtime_name = "runc"
    [plugins."io.containerd.grpc.v1.cri".containerd.runtimes.runc]
      runtime_type = "io.containerd.runc.v2"
      [plugins."io.containerd.grpc.v1.cri".containerd.runtimes.runc.options]
        SystemdCgroup = false
  [plugins."io.containerd.grpc.v1.cri".cni]
    bin_dir = "{CNI_BIN}"
    conf_dir = "{NODE}/cni/net.d"
"""


def _cni_config() -> str:
    return json.dumps({
        "cniVersion": "1.0.0", "name": f"coderops-{PORT_BASE}",
        "plugins": [{"type": "bridge", "bridge": BRIDGE, "isGateway": True, "ipMasq": False,
                     "ipam": {"type": "host-local", "dataDir": str(NODE / "cni" / "ipam"),
                              "ranges": [[{"subnet": SUBNET, "gateway": GATEWAY}]]}},
                    {"type": "loopback"}]}, indent=2)


CLUSTER_CA = STATE / "kwok" / "clusters" / CLUSTER_NAME / "pki" / "ca.crt"


def _kubelet_config() -> str:
    return json.dumps({
        "apiVersion": "kubelet.config.k8s.io/v1beta1", "kind": "KubeletConfiguration",
        "cgroupDriver": "cgroupfs", "failCgroupV1": False, "cgroupRoot": CGROUP_ROOT, "cgroupsPerQOS": True,
        "failSwapOn": False, "port": KUBELET_PORT, "readOnlyPort": 0, "healthzPort": 0,
        # kube-apiserver's client certificate (logs, exec, the service proxy) is signed by the cluster CA.
        "authentication": {"anonymous": {"enabled": False}, "webhook": {"enabled": False},
                           "x509": {"clientCAFile": str(CLUSTER_CA)}},
        "authorization": {"mode": "AlwaysAllow"},
        "containerRuntimeEndpoint": f"unix://{NODE}/containerd.sock",
        "podLogsDir": str(NODE / "pod-logs"), "enforceNodeAllocatable": [],
        "registerNode": True,
        # Only pods of a namespace that chooses the real node go there (namespace_annotations()).
        "registerWithTaints": [{"key": "coderops.test/node", "value": "real", "effect": "NoSchedule"}],
        "evictionHard": {"memory.available": "100Mi", "nodefs.available": "1%", "imagefs.available": "1%"},
        "imageGCHighThresholdPercent": 100, "imageGCLowThresholdPercent": 99,
        "resolvConf": "", "makeIPTablesUtilChains": False, "protectKernelDefaults": False,
        "serializeImagePulls": False, "maxPods": 20,
    }, indent=2)


# -- up and down -----------------------------------------------------------------------------------

def _pidfile(name: str) -> Path:
    return NODE / f"{name}.pid"


def _running(name: str) -> bool:
    path = _pidfile(name)
    return path.exists() and alive(int(path.read_text()))


def namespace_annotations() -> dict:
    """What puts a namespace's pods on the real node (admission plugins PodNodeSelector and
    PodTolerationRestriction): its node selector, and a toleration of the node's taint."""
    return {"scheduler.alpha.kubernetes.io/node-selector": "type=real",
            "scheduler.alpha.kubernetes.io/defaultTolerations": json.dumps(
                [{"key": "coderops.test/node", "operator": "Equal", "value": "real", "effect": "NoSchedule"}])}


def running() -> bool:
    return _running("containerd") and _running("kubelet")


def ensure_standin() -> Path:
    """The Coder stand-in (tests/images/coder-standin) as an image tar, rebuilt when its source changes.
    One binary serves every version: the image tag is the version it plays (STANDIN_VERSION)."""
    src = TESTBED_DIR.parent / "tests" / "images" / "coder-standin"
    digest = hashlib.sha256()
    for path in sorted(p for p in src.rglob("*") if p.is_file()):
        digest.update(path.relative_to(src).as_posix().encode() + b"\0" + path.read_bytes())
    out = CACHE / f"coder-standin-{digest.hexdigest()[:10]}"
    binary = out / "coder-standin"
    if not binary.exists():
        run([src / "build.sh", out], what="building the Coder stand-in")
    return binary


def network_up() -> None:
    """The pod bridge with its address, before the PostgreSQL servers listen on it."""
    if subprocess.run(["ip", "link", "show", BRIDGE], capture_output=True, check=False).returncode != 0:
        run(["ip", "link", "add", BRIDGE, "type", "bridge"], what="creating the pod bridge")
        run(["ip", "addr", "add", f"{GATEWAY}/24", "dev", BRIDGE], what="addressing the pod bridge")
        run(["ip", "link", "set", BRIDGE, "up"], what="bringing the pod bridge up")


def up(kubeconfig: Path, versions=("2.29.0", "2.30.0", "2.31.0", "1.44.0", "1.45.0")) -> None:
    if not (CNI_BIN / "bridge").exists():
        raise TestbedError("the CNI plugins are missing: apt-get install containernetworking-plugins")
    kubelet = ensure_kubelet()
    pause = ensure_pause()
    standin = ensure_standin()
    network_up()
    for sub in ("containerd", "cni/net.d", "cni/ipam", "kubelet", "pod-logs", "logs"):
        (NODE / sub).mkdir(parents=True, exist_ok=True)
    created = NODE / "created-dirs"
    if not created.exists():
        # Fixed paths the kubelet creates if missing: removed by down() only if it created them.
        created.write_text("".join(f"{p}\n" for p in ("/var/log/containers", "/var/log/pods") if not Path(p).exists()))
    saved = NODE / "sysctls.json"
    if not saved.exists():
        saved.write_text(json.dumps({k: Path("/proc/sys", *k.split(".")).read_text().strip() for k in SYSCTLS}))
    for hierarchy in CGROUP_HIERARCHIES:
        path = Path("/sys/fs/cgroup", hierarchy, CGROUP_ROOT.lstrip("/"))
        path.mkdir(exist_ok=True)
        if hierarchy == "cpuset":
            # A new cpuset is empty: it takes its parent's CPUs and memory nodes.
            for key in ("cpuset.cpus", "cpuset.mems"):
                (path / key).write_text((path.parent / key).read_text())
    (NODE / "containerd.toml").write_text(_containerd_config())
    (NODE / "cni" / "net.d" / "10-coderops.conflist").write_text(_cni_config())
    (NODE / "kubelet.json").write_text(_kubelet_config())
    if not _running("containerd"):
        pid = spawn(["containerd", "--config", NODE / "containerd.toml"], log=NODE / "logs" / "containerd.log")
        _pidfile("containerd").write_text(str(pid))
        wait_for(lambda: (NODE / "containerd.sock").exists(), "containerd's socket", 30)
    ctr = ["ctr", "--address", NODE / "containerd.sock", "-n", "k8s.io"]
    run([*ctr, "images", "import", "--no-unpack", pause], what="importing the pause image")
    tar = NODE / "coder-standin.tar"
    for version in versions:
        # Also under the real charts' image names, so that the stand-in charts stay as they are.
        real = (f"ghcr.io/coder/coder:v{version}" if version.startswith("2.")
                else f"docker.io/coderenvs/coder-service:{version}")
        refs = [f"{STANDIN_IMAGE}:{version}", real]
        # The v1 chart runs /opt/coder (the real v1 image's path), the v2 chart the entrypoint.
        image_tar(tar, refs, {"/coder-standin": (standin.read_bytes(), 0o755),
                              "/opt/coder": (standin.read_bytes(), 0o755)},
                  ["/coder-standin"], user="1000:1000", env=[f"STANDIN_VERSION={version}"])
        run([*ctr, "images", "import", tar], what=f"importing the stand-in {version}")
    tar.unlink()
    if not _running("kubelet"):
        pid = spawn([kubelet, "--config", NODE / "kubelet.json", "--kubeconfig", kubeconfig,
                     "--root-dir", NODE / "kubelet", "--cert-dir", NODE / "kubelet" / "pki",
                     "--hostname-override", NODE_NAME, "--node-ip", GATEWAY,
                     "--node-labels", "type=real,coderops.test/node=real", "--v", "1"],
                    log=NODE / "logs" / "kubelet.log")
        _pidfile("kubelet").write_text(str(pid))


def _pod_netns() -> list[str]:
    """The network namespaces containerd made for this node's pods (/var/run/netns/cni-*, a fixed
    place shared with any other containerd), read from the containers' specs while it still runs."""
    if not _running("containerd"):
        return []
    ctr = ["ctr", "--address", str(NODE / "containerd.sock"), "-n", "k8s.io", "containers"]
    ids = subprocess.run([*ctr, "ls", "-q"], capture_output=True, text=True, check=False).stdout.split()
    paths = set()
    for cid in ids:
        info = subprocess.run([*ctr, "info", cid], capture_output=True, text=True, check=False).stdout
        try:
            namespaces = json.loads(info)["Spec"]["linux"]["namespaces"]
        except (ValueError, KeyError, TypeError):
            continue
        # The sandbox's own (a pinned file); the containers in the pod join it by /proc/<pid>/ns/net.
        paths.update(n["path"] for n in namespaces if n.get("type") == "network"
                     and str(n.get("path", "")).startswith(("/var/run/netns/", "/run/netns/")))
    return sorted(paths)


def down() -> None:
    import signal

    netns = _pod_netns()
    for name in ("kubelet", "containerd"):
        path = _pidfile(name)
        if path.exists():
            pid = int(path.read_text())
            if alive(pid):
                os.kill(pid, signal.SIGTERM)
                deadline = time.monotonic() + 20
                while alive(pid) and time.monotonic() < deadline:
                    time.sleep(0.2)
                if alive(pid):
                    os.kill(pid, signal.SIGKILL)
            path.unlink()
    # containerd-shim processes of pods that were still running.
    for proc in Path("/proc").iterdir():
        if proc.name.isdigit():
            try:
                cmd = (proc / "cmdline").read_bytes()
            except OSError:
                continue
            if b"containerd-shim" in cmd and str(NODE).encode() in cmd:
                os.kill(int(proc.name), signal.SIGKILL)
    saved = NODE / "sysctls.json"
    if saved.exists():
        for key, value in json.loads(saved.read_text()).items():
            Path("/proc/sys", *key.split(".")).write_text(value)
    subprocess.run(["ip", "link", "delete", BRIDGE], capture_output=True, check=False)
    # The kubelet links every container's log into /var/log/containers (a fixed path).
    containers = Path("/var/log/containers")
    if containers.is_dir():
        for link in containers.iterdir():
            if link.is_symlink() and str(NODE) in os.readlink(link):
                link.unlink()
    # The pods' processes (killing a shim does not stop its container), then the cgroup root,
    # deepest first.
    deadline = time.monotonic() + 15
    while True:
        pids = set()
        for root in _cgroup_roots():
            for procs in root.rglob("cgroup.procs"):
                pids.update(int(p) for p in procs.read_text().split())
        if not pids or time.monotonic() > deadline:
            break
        for pid in pids:
            try:
                os.kill(pid, signal.SIGKILL)
            except ProcessLookupError:
                pass
        time.sleep(0.3)
    for root in _cgroup_roots():
        for path in sorted((p for p in root.rglob("*") if p.is_dir()), key=lambda p: len(p.parts), reverse=True):
            path.rmdir()
        root.rmdir()
    # Mounts under the node's directories (pod volumes, overlay snapshots, the netns).
    with open("/proc/self/mounts", encoding="utf-8") as mounts:
        targets = [line.split()[1] for line in mounts if str(NODE) in line.split()[1]]
    for target in sorted(targets, key=len, reverse=True):
        subprocess.run(["umount", "-l", target], capture_output=True, check=False)
    for path in netns:
        subprocess.run(["umount", path], capture_output=True, check=False)
        Path(path).unlink(missing_ok=True)
    created = NODE / "created-dirs"
    if created.exists():
        for path in created.read_text().split():
            if Path(path).is_dir() and not any(Path(path).iterdir()):
                Path(path).rmdir()


if __name__ == "__main__":
    action = sys.argv[1] if len(sys.argv) > 1 else "status"
    if action == "up":
        up(STATE / "kubeconfig")
    elif action == "down":
        down()
    else:
        print("containerd", _running("containerd"), "kubelet", _running("kubelet"))
