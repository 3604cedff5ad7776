# Copyright (c) 2025, coderops maintainers
# GNU General Public License v3.0+ (see LICENSE or https://www.gnu.org/licenses/gpl-3.0.txt)
# SPDX-License-Identifier: GPL-3.0-or-later
"""Bad input is refused before anything is changed, with a message naming the variable: the
namespace stays empty (no Secret, no release), on the real test bed."""

from __future__ import annotations

import json
import os
import tempfile
from pathlib import Path

import pytest
from conftest import delete_namespace, new_namespace
from helpers import ENV, history, kubectl, kubectl_json, playbook, run

CERT = ENV["CODER_TEST_PG_MAIN_CLIENT_CERT"]

CASES = {
    "port-not-a-number": ({"coder_db_port": "fivefourthreetwo"}, ["coder_db_port"]),
    "port-out-of-range": ({"coder_db_port": 70000}, ["coder_db_port must be a number between 1 and 65535"]),
    "empty-host": ({"coder_db_host": ""}, ["coder_db_host is empty"]),
    "secret-name-not-dns1123-with-no-password-env": (
        {"coder_db_password_secret": "coder.db-password", "coder_db_no_password_env": True},
        ["coder_db_password_secret", "DNS-1123 label"]),
    "verify-full-without-root-cert": ({"coder_db_ssl_ca_file": ""}, ["coder_db_ssl_ca_file"]),
    "certificate-without-key": ({"coder_db_ssl_cert_file": CERT},
                                ["coder_db_ssl_cert_file is set but coder_db_ssl_key_file is not"]),
    "awsiamrds-with-password": ({"coder_db_connector": "awsiamrds"}, ["remove coder_db_password"]),
    "budget-does-not-fit": ({"coder_replicas": 3, "coder_max_db_connections": 40},
                            ["does not fit", "Suggested coder_max_db_connections: 24"]),
    "extra-env-shadows-db-var": ({"coder_extra_envs": [{"name": "DB_HOST", "value": "elsewhere"}]},
                                 ["coder_extra_envs[0].name", "DB_HOST"]),
    "override-of-a-built-key": ({"coder_values_overrides": {"postgres": {"host": "elsewhere"}}},
                                ["coder_values_overrides.postgres"]),
    "helm-binary-missing": ({"coder_helm_binary": "/nonexistent/helm"}, ["coder_helm_binary"]),
    "kubeconfig-missing": ({"coder_kubeconfig": "/nonexistent/kubeconfig"},
                           ["coder_kubeconfig", "/nonexistent/kubeconfig does not exist"]),
    "standby-server": ({"coder_db_port": int(ENV["CODER_TEST_PG_STANDBY_PORT"])}, ["(standby)"]),
    "latency-above-threshold": ({"preflight_latency_fail": True, "preflight_latency_threshold_ms": 0.0001},
                                ["preflight_latency_threshold_ms"]),
    "timeout-out-of-range": ({"coder_helm_timeout": 5}, ["coder_helm_timeout must be between 10 and 86400"]),
    "release-name-invalid": ({"coder_release_name": "Coder_Prod"}, ["coder_release_name"]),
}


@pytest.fixture(scope="module")
def empty_namespace():
    ns = new_namespace("coderops-badinput")
    yield ns
    delete_namespace(ns)


def _assert_untouched(ns):
    secrets = kubectl_json("get", "secrets", "-n", ns)["items"]
    assert not secrets, [s["metadata"]["name"] for s in secrets]
    assert history("helm3", ns) == []
    assert not kubectl_json("get", "leases", "-n", ns)["items"]


@pytest.mark.parametrize("case", sorted(CASES))
def test_bad_input_is_refused_before_anything_changes(case, empty_namespace):
    extra, expected = CASES[case]
    res = playbook("deploy_coder", "helm3", empty_namespace, {"coder_create_namespace": False, **extra},
                   tag=f"bad-{case}")
    assert res.rc != 0, res.output[-3000:]
    for text in expected:
        assert text in res.output, f"{text!r} not in:\n{res.output[-4000:]}"
    assert res.recap["changed"] == 0
    _assert_untouched(empty_namespace)


def test_namespace_missing(empty_namespace):
    res = playbook("deploy_coder", "helm3", f"{empty_namespace}-absent", {"coder_create_namespace": False},
                   tag="bad-namespace-missing")
    assert res.rc != 0 and "does not exist; create it, or set coder_create_namespace: true" in res.output


def test_secret_write_forbidden_is_a_clear_403(empty_namespace):
    """The kubeconfig's user may read but not write Secrets: a clear 403, nothing half-applied."""
    ns = empty_namespace
    kubectl("create", "serviceaccount", "deployer", "-n", ns)
    role = {"apiVersion": "rbac.authorization.k8s.io/v1", "kind": "Role",
            "metadata": {"name": "deployer", "namespace": ns},
            "rules": [{"apiGroups": [""], "resources": ["secrets"], "verbs": ["get", "list", "watch"]},
                      {"apiGroups": ["coordination.k8s.io"], "resources": ["leases"], "verbs": ["get"]}]}
    binding = {"apiVersion": "rbac.authorization.k8s.io/v1", "kind": "RoleBinding",
               "metadata": {"name": "deployer", "namespace": ns},
               "roleRef": {"apiGroup": "rbac.authorization.k8s.io", "kind": "Role", "name": "deployer"},
               "subjects": [{"kind": "ServiceAccount", "name": "deployer", "namespace": ns}]}
    run("kubectl", "create", "-f", "-", input=json.dumps({"apiVersion": "v1", "kind": "List",
                                                         "items": [role, binding]}))
    token = kubectl("create", "token", "deployer", "-n", ns, "--duration", "10m").stdout.strip()
    config = json.loads(kubectl("config", "view", "--raw", "--minify", "-o", "json").stdout)
    cluster = config["clusters"][0]
    kubeconfig = {"apiVersion": "v1", "kind": "Config", "clusters": [cluster],
                  "users": [{"name": "deployer", "user": {"token": token}}],
                  "contexts": [{"name": "deployer",
                                "context": {"cluster": cluster["name"], "user": "deployer", "namespace": ns}}],
                  "current-context": "deployer"}
    with tempfile.TemporaryDirectory(prefix="coderops-it-rbac-") as tmp:
        path = Path(tmp, "kubeconfig")
        fd = os.open(path, os.O_WRONLY | os.O_CREAT, 0o600)
        os.write(fd, json.dumps(kubeconfig).encode())
        os.close(fd)
        res = playbook("deploy_coder", "helm3", ns, {"coder_create_namespace": False, "coder_kubeconfig": str(path)},
                       tag="bad-rbac-403")
    assert res.rc != 0
    assert "Writing the Secret coder-db-password" in res.output and "HTTP 403" in res.output, res.output[-4000:]
    assert "lacks an RBAC verb" in res.output
    assert res.recap["changed"] == 0
    assert not [s for s in kubectl_json("get", "secrets", "-n", ns)["items"]
                if not s["metadata"]["name"].startswith("deployer")]
    assert history("helm3", ns) == []
