# Copyright (c) 2025, coderops maintainers
# GNU General Public License v3.0+ (see LICENSE or https://www.gnu.org/licenses/gpl-3.0.txt)
# SPDX-License-Identifier: GPL-3.0-or-later
"""Immutable password Secrets (a new version per password, switched in by the rollout, the old
one removed only after a good rollout), and coder_helm_release run as a plain module on the
target (the path taken on a non-local connection)."""

from __future__ import annotations

import json
import os
import secrets
import string
import subprocess
import tempfile
import uuid
from pathlib import Path

import psycopg2
import pytest
from conftest import HELMS
from helpers import (
    COLLECTIONS,
    ENV,
    REPO,
    VENV_BIN,
    deployment,
    history,
    kubectl_json,
    pg_login,
    playbook,
    release_values,
    secret_data,
    wait_available,
)

MAIN = {k: ENV[f"CODER_TEST_PG_MAIN_{k}"] for k in ("HOST", "PORT", "DATABASE", "SSLROOTCERT", "SOCKET_DIR")}


def _password():
    return "Im" + "".join(secrets.choice(string.ascii_letters + string.digits) for dummy in range(20)) + " =@%:"


@pytest.fixture
def role_with_password():
    """A PostgreSQL role whose password the test changes, and a file the inventory reads it from."""
    name = f"coderops_immut_{uuid.uuid4().hex[:8]}"
    conn = psycopg2.connect(host=MAIN["SOCKET_DIR"], port=MAIN["PORT"], user="postgres", dbname="postgres")
    conn.autocommit = True
    tmp = Path(tempfile.mkdtemp(prefix="coderops-it-immut-"))
    pw_file = tmp / "pw"

    def set_password(pw):
        with conn.cursor() as cur:
            cur.execute(f'ALTER ROLE "{name}" LOGIN PASSWORD %s', (pw,))
        fd = os.open(pw_file, os.O_WRONLY | os.O_CREAT | os.O_TRUNC, 0o600)
        os.write(fd, pw.encode())
        os.close(fd)

    with conn.cursor() as cur:
        cur.execute(f'CREATE ROLE "{name}" LOGIN')
    yield {"name": name, "file": pw_file, "set": set_password}
    with conn.cursor() as cur:
        cur.execute(f'DROP ROLE IF EXISTS "{name}"')
    conn.close()
    for p in tmp.iterdir():
        p.unlink()
    tmp.rmdir()


def _family(ns):
    items = kubectl_json("get", "secrets", "-n", ns, "-l", "coderops.io/secret-family=coder-db-password")["items"]
    return sorted(i["metadata"]["name"] for i in items), {i["metadata"]["name"]: i for i in items}


@pytest.mark.parametrize("binary", HELMS)
def test_immutable_password_secret(binary, namespace, role_with_password):
    r = role_with_password
    env = {"CODER_TEST_PG_PASSWORD_FILE": str(r["file"])}
    extra = {"coder_db_user": r["name"], "db_secret_immutable": True}
    first = _password()
    r["set"](first)
    res = playbook("deploy_coder", binary, namespace, extra, extra_env=env, tag=f"immutable-1-{binary}")
    assert res.rc == 0, res.output[-4000:]
    names, objs = _family(namespace)
    assert names == ["coder-db-password-v1"] and objs["coder-db-password-v1"]["immutable"] is True
    assert release_values(binary, namespace, 1)["postgres"]["passwordSecret"] == "coder-db-password-v1"
    # Same password: nothing changes.
    res = playbook("deploy_coder", binary, namespace, extra, extra_env=env, tag=f"immutable-2-{binary}")
    assert res.rc == 0 and res.recap["changed"] == 0, res.output[-4000:]

    # A new password and a rollout that fails: the new version exists, but the release goes back
    # to the values naming v1, and v1 stays.
    second = _password()
    r["set"](second)
    res = playbook("deploy_coder", binary, namespace,
                   {**extra, "coder_values_overrides": {"testing": {"failPods": "crashloop"}}}, extra_env=env,
                   tag=f"immutable-3-{binary}")
    assert res.rc != 0 and "rolled back to revision 1" in res.output
    assert _family(namespace)[0] == ["coder-db-password-v1", "coder-db-password-v2"]
    newest = history(binary, namespace)[-1]
    assert release_values(binary, namespace, newest["revision"])["postgres"]["passwordSecret"] == "coder-db-password-v1"

    # The same new password and a good rollout: the values switch to v2 (the pods roll), then v1 goes.
    res = playbook("deploy_coder", binary, namespace, extra, extra_env=env, tag=f"immutable-4-{binary}")
    assert res.rc == 0, res.output[-4000:]
    assert _family(namespace)[0] == ["coder-db-password-v2"]
    wait_available(namespace, 1)
    env_ = {e["name"]: e for e in deployment(namespace)["spec"]["template"]["spec"]["containers"][0]["env"]}
    assert env_["DB_PASSWORD"]["valueFrom"]["secretKeyRef"]["name"] == "coder-db-password-v2"
    data, dummy = secret_data(namespace, "coder-db-password-v2")
    facts = pg_login(MAIN["HOST"], MAIN["PORT"], r["name"], MAIN["DATABASE"], password=data["password"].decode(),
                     ca=MAIN["SSLROOTCERT"])
    assert facts.get("failed") is not True, facts.get("msg")


def _module(name, args, check_mode=False):
    """Run a module file directly, as Ansible runs it on a target (arguments in a JSON file)."""
    payload = dict(args)
    if check_mode:
        payload["_ansible_check_mode"] = True
    fd, path = tempfile.mkstemp(prefix="coderops-it-args-", suffix=".json")
    with os.fdopen(fd, "w") as fh:
        json.dump({"ANSIBLE_MODULE_ARGS": payload}, fh)
    env = dict(ENV, PYTHONPATH=str(COLLECTIONS))
    try:
        proc = subprocess.run([str(VENV_BIN / "python"), str(REPO / "plugins" / "modules" / f"{name}.py"), path],
                              check=False, capture_output=True, text=True, env=env, timeout=600)
    finally:
        os.unlink(path)
    return json.loads(proc.stdout)


@pytest.mark.parametrize("binary", HELMS)
def test_module_runs_on_the_target_too(binary, namespace):
    res = playbook("deploy_coder", binary, namespace, tag=f"module-{binary}")
    assert res.rc == 0, res.output[-4000:]
    values = release_values(binary, namespace, 1)
    base = {"name": "coder", "namespace": namespace, "helm_binary": binary,
            "chart_ref": str(REPO / "tests" / "charts" / "coder-v1"), "values": values}
    out = _module("coder_helm_release", base)
    assert out["changed"] is False and out["operation"] == "none", out
    out = _module("coder_helm_release", {**base, "values": {**values, "coderd": {**values["coderd"], "replicas": 2}}},
                  check_mode=True)
    assert out["changed"] is True and out["operation"] == "upgrade" and len(history(binary, namespace)) == 1
    out = _module("coder_helm_release", {**base, "values": {**values, "coderd": {**values["coderd"], "replicas": 2}}})
    assert out["changed"] is True and out["revision"] == 2 and out["status"] == "deployed", out
    assert any("started" in line for line in out["progress"])
    info = _module("coder_helm_release_info", {"name": "coder", "namespace": namespace, "helm_binary": binary,
                                               "chart_ref": base["chart_ref"], "chart_version": "1.44.0"})
    assert info["release"]["revision"] == 2 and info["release"]["last_good_revision"] == 2
    assert info["helm"]["major"] == int(binary[-1]) and info["lock"]["held"] is False
    bad = _module("coder_helm_release_info", {"name": "coder", "namespace": namespace, "helm_binary": binary,
                                              "chart_ref": base["chart_ref"], "chart_version": "9.9.9"})
    assert bad["failed"] is True and bad["field"] == "chart_version"
    gone = _module("coder_helm_release", {**base, "state": "absent"})
    assert gone["changed"] is True and history(binary, namespace) == []
    again = _module("coder_helm_release", {**base, "state": "absent"})
    assert again["changed"] is False
