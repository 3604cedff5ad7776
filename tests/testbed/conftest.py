"""Fixtures for the test bed's smoke tests: the environment of `.testbed/env.sh`, kubectl, helm
and PostgreSQL connections to the real servers."""

from __future__ import annotations

import json
import os
import subprocess
import uuid
from pathlib import Path

import psycopg2
import pytest

REPO = Path(__file__).resolve().parents[2]
STATE = Path(os.environ.get("CODER_TESTBED_STATE", REPO / ".testbed"))
CHART = Path(__file__).resolve().parent / "charts" / "smoke"


def _load_env() -> dict[str, str]:
    env_sh = STATE / "env.sh"
    if not env_sh.exists():
        pytest.exit(f"{env_sh} is missing: run `make testbed` first", returncode=2)
    out = subprocess.run(["bash", "-c", f". {env_sh} && env -0"], capture_output=True, check=True)
    return dict(item.split("=", 1) for item in out.stdout.decode().split("\0") if "=" in item)


ENV = _load_env()


@pytest.fixture(scope="session")
def env() -> dict[str, str]:
    return ENV


def run(*cmd: str, check: bool = True, timeout: float = 300, env: dict | None = None):
    proc = subprocess.run(cmd, capture_output=True, text=True, env=env or ENV, timeout=timeout)
    if check and proc.returncode != 0:
        raise AssertionError(f"{' '.join(cmd)} failed ({proc.returncode}):\n{proc.stdout}\n{proc.stderr}")
    return proc


def kubectl(*args: str, check: bool = True):
    return run("kubectl", *args, check=check)


def kubectl_json(*args: str):
    return json.loads(kubectl(*args, "-o", "json").stdout)


@pytest.fixture
def namespace():
    name = f"smoke-{uuid.uuid4().hex[:8]}"
    kubectl("create", "namespace", name)
    yield name
    kubectl("delete", "namespace", name, "--wait=false", check=False)


def server_params(name: str, **overrides) -> dict:
    prefix = f"CODER_TEST_PG_{name.upper()}_"
    params = {
        "host": ENV[prefix + "HOST"],
        "port": int(ENV[prefix + "PORT"]),
        "user": ENV[prefix + "USER"],
        "dbname": ENV[prefix + "DATABASE"],
        "password": Path(ENV[prefix + "PASSWORD_FILE"]).read_text(),
        "sslmode": "verify-full",
        "sslrootcert": ENV[prefix + "SSLROOTCERT"],
        "connect_timeout": 10,
    }
    params.update(overrides)
    return {k: v for k, v in params.items() if v is not None}


def connect(name: str, **overrides):
    return psycopg2.connect(**server_params(name, **overrides))


def query(name: str, sql: str, **overrides):
    conn = connect(name, **overrides)
    try:
        with conn.cursor() as cur:
            cur.execute(sql)
            return cur.fetchall()
    finally:
        conn.close()


def require_server(name: str) -> None:
    if name not in ENV.get("CODER_TEST_PG_SERVERS", "").split():
        pytest.fail(f"PostgreSQL server {name} is not part of the running test bed")
