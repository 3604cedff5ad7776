"""Where things live and which versions and ports the test bed uses (one source for each)."""

from __future__ import annotations

import os
from dataclasses import dataclass
from pathlib import Path

TESTBED_DIR = Path(__file__).resolve().parent.parent
REPO = TESTBED_DIR.parent
STATE = Path(os.environ.get("CODER_TESTBED_STATE", REPO / ".testbed"))
CACHE = Path(os.environ.get("CODER_TESTBED_CACHE", Path.home() / ".cache" / "coderops-testbed"))

CLUSTER_NAME = "coderops"
NODE_COUNT = 3
# PostgreSQL must not run as root; when the test bed is started by root it uses this account.
PG_OS_USER = "coderops-testbed"
DB_USER = "coder"
DB_NAME = "coder"
MTLS_USER = "coder_mtls"
PG_IMAGE = "coderops-testbed/postgres"


def _read_versions() -> dict[str, str]:
    versions = {}
    for line in (TESTBED_DIR / "versions.env").read_text().splitlines():
        line = line.strip()
        if line and not line.startswith("#"):
            key, _, value = line.partition("=")
            versions[key] = value
    return versions


VERSIONS = _read_versions()
PORT_BASE = int(os.environ.get("CODER_TESTBED_PORT_BASE", "15430"))


@dataclass(frozen=True)
class PgServer:
    """One PostgreSQL server of the test bed."""

    name: str
    port: int  # the port clients use (for `far`, the latency proxy's)
    max_connections: int = 100
    backend_port: int | None = None  # `far` only: where the real server listens
    description: str = ""

    @property
    def env_prefix(self) -> str:
        return f"CODER_TEST_PG_{self.name.upper()}_"


PG_SERVERS = {
    s.name: s
    for s in (
        PgServer("main", PORT_BASE + 2, description="primary, TLS, max_connections 100"),
        PgServer("small", PORT_BASE + 3, max_connections=20, description="max_connections 20"),
        PgServer("standby", PORT_BASE + 4, description="streaming replica of main"),
        PgServer("far", PORT_BASE + 5, backend_port=PORT_BASE + 6,
                 description="behind a Toxiproxy latency proxy"),
        PgServer("container", PORT_BASE + 7, description="in a Docker container"),
    )
}
DEFAULT_PG = ("main", "small", "standby", "far", "container")
KUBE_APISERVER_PORT = PORT_BASE + 13
# The real node (bed/node.py): CODER_TESTBED_NODE=none leaves it out. Its pods are on a bridge of
# their own, a /24 per port base in 10.213.0.0/16; they reach this machine (the PostgreSQL servers)
# at the bridge's own address, .1, and nothing else (no masquerading, no route out).
REAL_NODE = os.environ.get("CODER_TESTBED_NODE", "real") == "real"
POD_SUBNET = f"10.213.{(PORT_BASE // 10) % 250}.0/24"
POD_GATEWAY = f"10.213.{(PORT_BASE // 10) % 250}.1"
KUBELET_PORT = PORT_BASE + 20
TOXIPROXY_API_PORT = PORT_BASE + 44
# One container per test bed (a second bed on other ports must not touch the first one's).
PG_CONTAINER = f"coderops-testbed-pg-{PORT_BASE}"


def selected_servers(spec: str | None) -> list[str]:
    """Parse PG="main small"; the standby needs main, so main is always added with it."""
    names = spec.split() if spec else list(DEFAULT_PG)
    unknown = [n for n in names if n not in PG_SERVERS]
    if unknown:
        raise SystemExit(
            f"testbed: unknown PostgreSQL server(s) {' '.join(unknown)} in PG=; "
            f"choose from: {' '.join(PG_SERVERS)}"
        )
    if "standby" in names and "main" not in names:
        names.insert(0, "main")
    return [n for n in PG_SERVERS if n in names]
