"""`.testbed/env.sh` and `.testbed/bin`: what a test or a person needs to use the test bed."""

from __future__ import annotations

import json
import shlex

from . import build, container, node
from .config import (
    DB_NAME,
    DB_USER,
    KUBE_APISERVER_PORT,
    MTLS_USER,
    PG_SERVERS,
    POD_GATEWAY,
    POD_SUBNET,
    REAL_NODE,
    STATE,
    TOXIPROXY_API_PORT,
)
from .postgres import socket_dir

PKI = STATE / "pki"
PASSWORD_FILE = STATE / "secrets" / "pg-password"

HELM_SHIM = """#!/bin/sh
# helm 3 by default; CODER_TEST_HELM=helm4 switches every caller of `helm` to helm 4.
exec "$(dirname "$0")/${CODER_TEST_HELM:-helm3}" "$@"
"""


def server_vars(name: str) -> dict[str, str]:
    server = PG_SERVERS[name]
    values = {
        "HOST": "127.0.0.1",
        "PORT": str(server.port),
        "USER": DB_USER,
        "DATABASE": DB_NAME,
        "PASSWORD_FILE": str(PASSWORD_FILE),
        "SSLROOTCERT": str(PKI / "ca.crt"),
        "CLIENT_CERT": str(PKI / "client.crt"),
        "CLIENT_KEY": str(PKI / "client.key"),
        "MTLS_USER": MTLS_USER,
    }
    if name != "container":
        values["SOCKET_DIR"] = str(socket_dir(name))
    if server.backend_port:
        values["BACKEND_PORT"] = str(server.backend_port)
    return {server.env_prefix + k: v for k, v in values.items()}


def write(servers: list[str]) -> None:
    bindir = STATE / "bin"
    bindir.mkdir(parents=True, exist_ok=True)
    links = {"kubectl": build.binary("helm4", "kubectl"), "helm3": build.binary("helm3", "helm"),
             "helm4": build.binary("helm4", "helm"),
             "kwokctl": build.binary("kwok", "kwokctl")}
    for name, target in links.items():
        link = bindir / name
        link.unlink(missing_ok=True)
        link.symlink_to(target)
    (bindir / "helm").write_text(HELM_SHIM)
    (bindir / "helm").chmod(0o755)

    env = {
        "CODER_TESTBED_DIR": str(STATE),
        "KUBECONFIG": str(STATE / "kubeconfig"),
        "CODER_TEST_KUBE_APISERVER": f"https://127.0.0.1:{KUBE_APISERVER_PORT}",
        "CODER_TEST_PG_SERVERS": " ".join(servers),
        "CODER_TEST_PG_MTLS_USER": MTLS_USER,
        "CODER_TEST_PG_ROGUE_CLIENT_CERT": str(PKI / "rogue-client.crt"),
        "CODER_TEST_PG_ROGUE_CLIENT_KEY": str(PKI / "rogue-client.key"),
        "CODER_TEST_TOXIPROXY_API": f"http://127.0.0.1:{TOXIPROXY_API_PORT}",
    }
    for name in servers:
        env.update(server_vars(name))
    if REAL_NODE:
        # Pods on the real node reach the servers at the bridge's address (the certificates name it).
        env.update({"CODER_TEST_REAL_NODE": node.NODE_NAME, "CODER_TEST_POD_DB_HOST": POD_GATEWAY,
                    "CODER_TEST_POD_SUBNET": POD_SUBNET,
                    "CODER_TEST_REAL_NODE_ANNOTATIONS": json.dumps(node.namespace_annotations())})
    if "container" in servers:
        # For tests that start PostgreSQL containers of their own (molecule's postgres-container).
        env["CODER_TEST_PG_IMAGE"] = container.image_tag()
        env["CODER_TEST_PG_CONTAINER_SECRETS"] = str(container.SECRETS)
    if "main" in servers:
        main = server_vars("main")
        p = PG_SERVERS["main"].env_prefix
        env.update({
            "PGHOST": main[p + "HOST"], "PGPORT": main[p + "PORT"], "PGUSER": DB_USER,
            "PGDATABASE": DB_NAME, "PGSSLMODE": "verify-full",
            "PGSSLROOTCERT": main[p + "SSLROOTCERT"],
            "CODER_TEST_PG_PASSWORD_FILE": main[p + "PASSWORD_FILE"],
            "CODER_TEST_PG_CLIENT_CERT": main[p + "CLIENT_CERT"],
            "CODER_TEST_PG_CLIENT_KEY": main[p + "CLIENT_KEY"],
        })
    lines = ["# Written by `make testbed`. Source it: . .testbed/env.sh",
             "# The database password is never exported: read it from $CODER_TEST_PG_PASSWORD_FILE."]
    lines += [f"export {k}={shlex.quote(v)}" for k, v in env.items()]
    lines.append(f'export PATH={shlex.quote(str(bindir))}:"$PATH"')
    lines.append('export CODER_TEST_HELM="${CODER_TEST_HELM:-helm3}"')
    (STATE / "env.sh").write_text("\n".join(lines) + "\n")
