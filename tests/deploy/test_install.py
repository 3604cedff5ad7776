# Copyright (c) 2025, coderops maintainers
# GNU General Public License v3.0+ (see LICENSE or https://www.gnu.org/licenses/gpl-3.0.txt)
# SPDX-License-Identifier: GPL-3.0-or-later
"""First installs (password env, noPasswordEnv, mTLS, awsiamrds), the idempotent re-run, an
upgrade, the rollback and uninstall playbooks: with helm 3 and helm 4, on the test bed."""

from __future__ import annotations

import os
import tempfile
from pathlib import Path

import pytest
from conftest import HELMS, delete_namespace, new_namespace
from contract import check_deployment, check_values
from helpers import (
    ENV,
    REPO,
    deployment,
    helm,
    history,
    kubectl,
    kubectl_json,
    pg_login,
    playbook,
    release_values,
    secret_data,
    secret_hash,
    template_of,
    wait_available,
)

MAIN = {k: ENV[f"CODER_TEST_PG_MAIN_{k}"] for k in ("HOST", "PORT", "USER", "DATABASE", "SSLROOTCERT")}
ROOT = {"name": "coder-db-ca", "key": "ca.crt"}


def _no_last_applied(namespace):
    for kind in ("secrets", "configmaps", "deployments", "services"):
        for obj in kubectl_json("get", kind, "-n", namespace)["items"]:
            annotations = obj["metadata"].get("annotations") or {}
            assert "kubectl.kubernetes.io/last-applied-configuration" not in annotations, obj["metadata"]["name"]


def _manifest(binary, namespace, revision=None):
    args = ["get", "manifest", "coder", "-n", namespace]
    if revision:
        args += ["--revision", str(revision)]
    return helm(binary, *args).stdout


@pytest.fixture(scope="session")
def state():
    created = []
    yield {"created": created}
    for ns in created:
        delete_namespace(ns)


def _tasks_listed(output):
    """How many tasks a run lists (ansible's default callback: a TASK line each, skipped ones too)."""
    return sum(1 for line in output.splitlines() if line.startswith("TASK ["))


@pytest.mark.parametrize("binary", HELMS)
class TestPasswordEnvLifecycle:
    """One namespace per helm, through install, re-run, check mode, upgrade, rollback, uninstall."""

    def test_first_install(self, binary, state):
        ns = new_namespace()
        state["created"].append(ns)
        state[binary] = ns
        res = playbook("deploy_coder", binary, ns)
        assert res.rc == 0, res.output[-4000:]
        assert "coder_helm_release: helm install of coder to revision 1" in res.output
        # Issue 16: a first install lists at most 25 tasks (skipped ones count).
        assert _tasks_listed(res.output) <= 25, res.output[-6000:]
        assert "Coder is at http://127.0.0.1" in res.output
        hist = history(binary, ns)
        assert [(h["revision"], h["status"]) for h in hist] == [(1, "deployed")]
        wait_available(ns, 1)
        check_deployment(template_of(ns), host=MAIN["HOST"], port=MAIN["PORT"], user=MAIN["USER"],
                         database=MAIN["DATABASE"], ssl_mode="verify-full",
                         password_secret="coder-db-password", root_cert=ROOT)
        check_values(release_values(binary, ns, 1), password_secret="coder-db-password")
        assert "defaultMode" not in _manifest(binary, ns)
        # The Secret: data (base64) under key password, labelled, no last-applied annotation.
        data, obj = secret_data(ns, "coder-db-password")
        assert set(data) == {"password"} and obj["type"] == "Opaque"
        assert obj["metadata"]["labels"]["app.kubernetes.io/managed-by"] == "coderops.deploy"
        assert "stringData" not in obj
        _no_last_applied(ns)
        ca, dummy = secret_data(ns, "coder-db-ca")
        assert ca["ca.crt"] == Path(MAIN["SSLROOTCERT"]).read_bytes()
        # The password read back from the Secret logs in.
        facts = pg_login(MAIN["HOST"], MAIN["PORT"], MAIN["USER"], MAIN["DATABASE"],
                         password=data["password"].decode(), ca=MAIN["SSLROOTCERT"])
        assert facts.get("failed") is not True, facts.get("msg")
        assert facts["user"] == MAIN["USER"]

    def test_rerun_changes_nothing(self, binary, state):
        ns = state[binary]
        before = secret_hash(ns, "coder-db-password")
        res = playbook("deploy_coder", binary, ns)
        assert res.rc == 0, res.output[-4000:]
        assert res.recap["changed"] == 0, res.output[-6000:]
        assert len(history(binary, ns)) == 1
        assert secret_hash(ns, "coder-db-password") == before
        assert "unchanged at revision 1" in res.output
        # Issue 16: a no-op run lists at most 20 tasks, and keeps its progress lines and the report.
        assert _tasks_listed(res.output) <= 20, res.output[-6000:]
        assert "Preflight passed: helm" in res.output
        # Nothing on stderr from the modules run in the worker (a runpy warning did, every task).
        assert "errantly sent data" not in res.output and "RuntimeWarning" not in res.output, res.output[-6000:]

    def test_check_mode_changes_nothing(self, binary, state):
        ns = state[binary]
        # Latency above the threshold without preflight_latency_fail: a warning in the one report.
        res = playbook("deploy_coder", binary, ns, {"coder_replicas": 2, "preflight_latency_threshold_ms": 0.0001},
                       args=("--check", "--diff"))
        assert res.rc == 0, res.output[-4000:]
        assert "would upgrade" in res.output
        assert "WARNING: the median round trip to PostgreSQL is" in res.output, res.output[-4000:]
        assert "above preflight_latency_threshold_ms 0.0001; Coder will be slow. Preflight passed:" in res.output
        assert len(history(binary, ns)) == 1
        assert deployment(ns)["spec"]["replicas"] == 1

    def test_upgrade(self, binary, state):
        ns = state[binary]
        res = playbook("deploy_coder", binary, ns, {"coder_replicas": 2, "coder_max_db_connections": 20})
        assert res.rc == 0, res.output[-4000:]
        hist = history(binary, ns)
        assert [(h["revision"], h["status"]) for h in hist] == [(1, "superseded"), (2, "deployed")]
        wait_available(ns, 2)
        dep = deployment(ns)
        assert dep["spec"]["replicas"] == 2
        check_deployment(dep["spec"]["template"], host=MAIN["HOST"], port=MAIN["PORT"], user=MAIN["USER"],
                         database=MAIN["DATABASE"], ssl_mode="verify-full",
                         password_secret="coder-db-password", root_cert=ROOT, max_db_connections=20)
        assert "upgraded to revision 2" in res.output

    def test_rollback_playbook(self, binary, state):
        ns = state[binary]
        res = playbook("rollback_coder", binary, ns, {"coder_rollback_revision": 1})
        assert res.rc == 0, res.output[-4000:]
        hist = history(binary, ns)
        assert hist[-1]["status"] == "deployed" and hist[-1]["description"] == "Rollback to 1"
        wait_available(ns, 1)
        # Again: nothing left to do.
        res = playbook("rollback_coder", binary, ns, {"coder_rollback_revision": 1})
        assert res.rc == 0 and res.recap["changed"] == 0, res.output[-4000:]
        res = playbook("rollback_coder", binary, ns)
        assert res.rc == 0 and res.recap["changed"] == 0, res.output[-4000:]
        assert "nothing to roll back" in res.output

    def test_as_collection_playbook(self, binary, state):
        ns = state[binary]
        res = playbook("deploy_coder", binary, ns, {"coder_replicas": 1}, as_collection=True)
        assert res.rc == 0, res.output[-4000:]
        assert res.recap["changed"] == 0

    def test_uninstall_keeps_secrets(self, binary, state):
        ns = state[binary]
        res = playbook("uninstall_coder", binary, ns)
        assert res.rc == 0, res.output[-4000:]
        assert history(binary, ns) == []
        assert secret_hash(ns, "coder-db-password") is not None
        res = playbook("uninstall_coder", binary, ns)
        assert res.rc == 0 and res.recap["changed"] == 0
        res = playbook("uninstall_coder", binary, ns, {"coder_uninstall_delete_secrets": True})
        assert res.rc == 0
        assert secret_hash(ns, "coder-db-password") is None
        assert secret_hash(ns, "coder-db-ca") is None


@pytest.mark.parametrize("binary", HELMS)
def test_install_no_password_env(binary, namespace):
    res = playbook("deploy_coder", binary, namespace, {
        "coder_db_no_password_env": True, "coder_db_password_secret": "coder-pg-pass",
        "coder_ingress": {"enable": True, "host": "coder.example.test", "tls_enable": True}})
    assert res.rc == 0, res.output[-4000:]
    # The access URL is the ingress host (https: TLS is on).
    assert "Coder is at https://coder.example.test" in res.output
    wait_available(namespace, 1)
    check_deployment(template_of(namespace), host=MAIN["HOST"], port=MAIN["PORT"], user=MAIN["USER"],
                     database=MAIN["DATABASE"], ssl_mode="verify-full", password_secret="coder-pg-pass",
                     no_password_env=True, root_cert=ROOT)
    data, dummy = secret_data(namespace, "coder-pg-pass")
    facts = pg_login(MAIN["HOST"], MAIN["PORT"], MAIN["USER"], MAIN["DATABASE"],
                     password=data["password"].decode(), ca=MAIN["SSLROOTCERT"])
    assert facts.get("failed") is not True, facts.get("msg")


@pytest.mark.parametrize("binary", HELMS)
def test_install_mtls(binary, namespace):
    extra = {"coder_db_user": ENV["CODER_TEST_PG_MAIN_MTLS_USER"], "coder_db_password": "",
             "coder_db_ssl_cert_file": ENV["CODER_TEST_PG_MAIN_CLIENT_CERT"],
             "coder_db_ssl_key_file": ENV["CODER_TEST_PG_MAIN_CLIENT_KEY"]}
    res = playbook("deploy_coder", binary, namespace, extra)
    assert res.rc == 0, res.output[-4000:]
    wait_available(namespace, 1)
    check_deployment(template_of(namespace), host=MAIN["HOST"], port=MAIN["PORT"],
                     user=ENV["CODER_TEST_PG_MAIN_MTLS_USER"], database=MAIN["DATABASE"],
                     ssl_mode="verify-full", cert={"name": "coder-db-client-tls", "key": "tls.crt"},
                     key={"name": "coder-db-client-tls", "key": "tls.key"}, root_cert=ROOT)
    assert secret_hash(namespace, "coder-db-password") is None
    data, obj = secret_data(namespace, "coder-db-client-tls")
    assert obj["type"] == "kubernetes.io/tls"
    assert data["tls.crt"] == Path(ENV["CODER_TEST_PG_MAIN_CLIENT_CERT"]).read_bytes()
    # The certificate and key read back from the Secret log in.
    with tempfile.TemporaryDirectory(prefix="coderops-it-mtls-") as tmp:
        cert, key = Path(tmp, "c.crt"), Path(tmp, "c.key")
        cert.write_bytes(data["tls.crt"])
        fd = os.open(key, os.O_WRONLY | os.O_CREAT, 0o600)
        os.write(fd, data["tls.key"])
        os.close(fd)
        facts = pg_login(MAIN["HOST"], MAIN["PORT"], ENV["CODER_TEST_PG_MAIN_MTLS_USER"], MAIN["DATABASE"],
                         ca=MAIN["SSLROOTCERT"], cert=str(cert), key=str(key))
    assert facts.get("failed") is not True, facts.get("msg")
    assert facts["ssl"]["client_certificate"] is True
    res = playbook("deploy_coder", binary, namespace, extra)
    assert res.rc == 0 and res.recap["changed"] == 0, res.output[-4000:]


@pytest.mark.parametrize("binary", HELMS)
def test_install_awsiamrds(binary, namespace):
    role = "arn:aws:iam::123456789012:role/coder-rds"
    extra = {"coder_db_connector": "awsiamrds", "coder_db_password": "",
             "coder_db_host": "coder.abc123.eu-west-1.rds.amazonaws.com", "coder_db_port": 5432,
             "preflight_check_database": False,
             "coder_service_account_annotations": {"eks.amazonaws.com/role-arn": role}}
    res = playbook("deploy_coder", binary, namespace, extra)
    assert res.rc == 0, res.output[-4000:]
    assert "PostgreSQL not checked" in res.output
    wait_available(namespace, 1)
    check_deployment(template_of(namespace), host="coder.abc123.eu-west-1.rds.amazonaws.com", port=5432,
                     user=MAIN["USER"], database=MAIN["DATABASE"], ssl_mode="verify-full",
                     connector="awsiamrds", root_cert=ROOT)
    check_values(release_values(binary, namespace, 1), password_secret=None)
    assert secret_hash(namespace, "coder-db-password") is None
    names = [s["metadata"]["name"] for s in kubectl_json("get", "secrets", "-n", namespace)["items"]]
    assert not any("password" in n for n in names), names
    # On the ServiceAccount coderd runs as (the real chart's templates/rbac.yaml), not on the
    # workspaces' environments.
    sa = kubectl_json("get", "serviceaccount", "coder", "-n", namespace)
    assert sa["metadata"]["annotations"]["eks.amazonaws.com/role-arn"] == role
    pod = kubectl_json("get", "deployment", "coderd", "-n", namespace)["spec"]["template"]["spec"]
    assert pod["serviceAccountName"] == "coder"
    workspaces = kubectl_json("get", "serviceaccount", "environments", "-n", namespace)
    assert "eks.amazonaws.com/role-arn" not in (workspaces["metadata"].get("annotations") or {})


def test_builtin_database_is_always_off(namespace):
    """The chart's default (postgres.default.enable: true) renders the built-in database; the
    collection's values always turn it off (no timescale StatefulSet, DB_HOST is ours)."""
    res = playbook("deploy_coder", "helm3", namespace)
    assert res.rc == 0, res.output[-4000:]
    assert kubectl("get", "statefulset", "timescale", "-n", namespace, check=False).returncode != 0
    plain = helm("helm3", "template", "t", str(REPO / "tests" / "charts" / "coder-v1"))
    assert "kind: StatefulSet" in plain.stdout and "timescale." in plain.stdout
