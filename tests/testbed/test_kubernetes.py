"""The kwok cluster: Ready nodes, Available Deployments, the failure Stages, LoadBalancer IPs."""

from __future__ import annotations

import json
import subprocess
import time

from conftest import ENV, kubectl, kubectl_json


def _deployment(name: str, replicas: int = 2, fail: str | None = None) -> str:
    labels = {"app": name}
    if fail:
        labels["coderops.test/fail"] = fail
    return json.dumps({
        "apiVersion": "apps/v1", "kind": "Deployment", "metadata": {"name": name},
        "spec": {"replicas": replicas, "selector": {"matchLabels": {"app": name}},
                 "template": {"metadata": {"labels": labels},
                              "spec": {"containers": [{"name": "app", "image": "registry.invalid/x:1"}]}}},
    })


def _apply(namespace: str, manifest: str) -> None:
    subprocess.run(["kubectl", "apply", "-n", namespace, "-f", "-"], input=manifest, text=True,
                   env=ENV, check=True, capture_output=True)


def test_at_least_three_nodes_are_ready():
    nodes = kubectl_json("get", "nodes")["items"]
    ready = [n["metadata"]["name"] for n in nodes
             if any(c["type"] == "Ready" and c["status"] == "True" for c in n["status"]["conditions"])]
    assert len(ready) >= 3, ready


def test_control_plane_is_real_and_pinned():
    version = kubectl_json("version")["serverVersion"]
    assert version["gitVersion"] == "v1.34.4"
    # RBAC is on: an unprivileged ServiceAccount is refused.
    proc = kubectl("auth", "can-i", "create", "secrets", "--as",
                   "system:serviceaccount:default:default", check=False)
    assert proc.stdout.strip() == "no"


def test_deployment_becomes_available(namespace):
    _apply(namespace, _deployment("web", replicas=3))
    kubectl("wait", "-n", namespace, "deployment/web", "--for=condition=Available", "--timeout=90s")
    dep = kubectl_json("get", "-n", namespace, "deployment/web")
    assert dep["status"]["readyReplicas"] == 3
    pods = kubectl_json("get", "-n", namespace, "pods")["items"]
    assert {p["status"]["phase"] for p in pods} == {"Running"}
    assert len({p["spec"]["nodeName"] for p in pods}) >= 1


def test_not_ready_stage_blocks_readiness(namespace):
    _apply(namespace, _deployment("stuck", replicas=1, fail="not-ready"))
    deadline = time.monotonic() + 60
    pod = None
    while time.monotonic() < deadline:
        pods = kubectl_json("get", "-n", namespace, "pods")["items"]
        if pods and pods[0]["status"].get("phase") == "Running":
            pod = pods[0]
            break
        time.sleep(1)
    assert pod, "the pod never started running"
    time.sleep(5)  # give any wrong stage the chance to make it Ready
    pod = kubectl_json("get", "-n", namespace, "pod", pod["metadata"]["name"])
    conds = {c["type"]: c["status"] for c in pod["status"]["conditions"]}
    assert conds["Ready"] == "False"
    proc = kubectl("wait", "-n", namespace, "deployment/stuck", "--for=condition=Available",
                   "--timeout=5s", check=False)
    assert proc.returncode != 0


def test_crashloop_stage(namespace):
    _apply(namespace, _deployment("crash", replicas=1, fail="crashloop"))
    deadline = time.monotonic() + 60
    while time.monotonic() < deadline:
        pods = kubectl_json("get", "-n", namespace, "pods")["items"]
        statuses = pods[0]["status"].get("containerStatuses", []) if pods else []
        if statuses:
            break
        time.sleep(1)
    waiting = statuses[0]["state"].get("waiting", {})
    assert waiting.get("reason") == "CrashLoopBackOff"
    assert statuses[0]["ready"] is False


def test_load_balancer_gets_ingress_ip(namespace):
    svc = {"apiVersion": "v1", "kind": "Service", "metadata": {"name": "lb"},
           "spec": {"type": "LoadBalancer", "selector": {"app": "x"}, "ports": [{"port": 80}]}}
    _apply(namespace, json.dumps(svc))
    deadline = time.monotonic() + 30
    ingress = []
    while time.monotonic() < deadline and not ingress:
        ingress = kubectl_json("get", "-n", namespace, "service/lb")["status"].get(
            "loadBalancer", {}).get("ingress", [])
        time.sleep(0.5)
    assert ingress and ingress[0]["ip"] == "127.0.0.1"
