"""helm install --wait, upgrade and rollback work against the kwok cluster, with helm 3 and 4."""

from __future__ import annotations

import json

import pytest
from conftest import CHART, ENV, kubectl_json, run

HELMS = ["helm3", "helm4"]


def helm(binary: str, *args: str, check: bool = True):
    return run(binary, *args, check=check, timeout=240)


def history(binary: str, namespace: str) -> list[dict]:
    return json.loads(helm(binary, "history", "smoke", "-n", namespace, "-o", "json").stdout)


@pytest.mark.parametrize("binary", HELMS)
def test_helm_binaries_are_the_pinned_majors(binary):
    out = helm(binary, "version", "--short").stdout
    assert out.startswith("v3." if binary == "helm3" else "v4.")


def test_helm_shim_follows_coder_test_helm():
    assert run("helm", "version", "--short").stdout.startswith("v3.")
    env = dict(ENV, CODER_TEST_HELM="helm4")
    assert run("helm", "version", "--short", env=env).stdout.startswith("v4.")


@pytest.mark.parametrize("binary", HELMS)
def test_install_upgrade_rollback(binary, namespace):
    helm(binary, "install", "smoke", str(CHART), "-n", namespace, "--wait", "--timeout", "120s")
    dep = kubectl_json("get", "-n", namespace, "deployment/smoke")
    assert dep["status"]["availableReplicas"] == 2

    helm(binary, "upgrade", "smoke", str(CHART), "-n", namespace, "--wait", "--timeout", "120s",
         "--set", "message=upgraded", "--set", "replicas=3")
    dep = kubectl_json("get", "-n", namespace, "deployment/smoke")
    assert dep["spec"]["template"]["spec"]["containers"][0]["env"][0]["value"] == "upgraded"
    assert dep["status"]["availableReplicas"] == 3

    helm(binary, "rollback", "smoke", "1", "-n", namespace, "--wait", "--timeout", "120s")
    revs = history(binary, namespace)
    assert [r["status"] for r in revs] == ["superseded", "superseded", "deployed"]
    dep = kubectl_json("get", "-n", namespace, "deployment/smoke")
    assert dep["spec"]["template"]["spec"]["containers"][0]["env"][0]["value"] == "hello"


@pytest.mark.parametrize("binary", HELMS)
def test_upgrade_to_pods_that_never_become_ready_fails(binary, namespace):
    helm(binary, "install", "smoke", str(CHART), "-n", namespace, "--wait", "--timeout", "120s")
    proc = helm(binary, "upgrade", "smoke", str(CHART), "-n", namespace, "--wait", "--timeout", "15s",
                "--set", "fail=not-ready", check=False)
    assert proc.returncode != 0
    assert [r["status"] for r in history(binary, namespace)] == ["deployed", "failed"]
