# Copyright (c) 2025, coderops maintainers
# GNU General Public License v3.0+ (see LICENSE or https://www.gnu.org/licenses/gpl-3.0.txt)
# SPDX-License-Identifier: GPL-3.0-or-later
"""The coder-v2 stand-in chart renders with `helm template`, with helm 3 and helm 4, and renders
the values coder_values builds for v2 the way the chart contract says: the URL env from the
Secret, the pool env, the CA at /etc/ssl/certs/<name>.crt and the client certificate at the
paths the connection URL names.

helm is looked up on PATH (helm3, helm4, helm) and in $CODER_TESTBED_DIR/bin: load the test bed's
environment first (. .testbed/env.sh). Without any helm the tests are skipped, saying so.
"""

from __future__ import annotations

import os
import shutil
import subprocess
from pathlib import Path

import pytest
import yaml
from ansible_collections.coderops.deploy.plugins.module_utils._coder_values import (
    build_values_and_url,
)

CHART = Path(__file__).resolve().parents[2] / "charts" / "coder-v2"


def _helms():
    found = {}
    extra = os.environ.get("CODER_TESTBED_DIR")
    for name in ("helm3", "helm4", "helm"):
        path = shutil.which(name)
        if not path and extra:
            path = shutil.which(name, path=os.path.join(extra, "bin"))
        if path and os.path.realpath(path) not in {os.path.realpath(p) for p in found.values()}:
            found[name] = path
    return found


HELMS = _helms()
pytestmark = pytest.mark.skipif(not HELMS, reason="no helm found (load .testbed/env.sh)")


def render(helm, values, tmp_path):
    values_file = tmp_path / "values.yaml"
    values_file.write_text(yaml.safe_dump(values))
    out = subprocess.run([helm, "template", "coder", str(CHART), "--namespace", "coder",
                          "-f", str(values_file)], capture_output=True, text=True, timeout=60,
                         check=False)
    return out.returncode, out.stdout, out.stderr


def objects(text):
    docs = [d for d in yaml.safe_load_all(text) if d]
    return {(d["kind"], d["metadata"]["name"]): d for d in docs}


def coder_container(objs):
    pod = objs[("Deployment", "coder")]["spec"]["template"]["spec"]
    return pod, next(c for c in pod["containers"] if c["name"] == "coder")


HELM_IDS = sorted(HELMS) or ["none"]


@pytest.fixture(params=HELM_IDS)
def helm(request):
    return HELMS[request.param]


def test_chart_defaults(helm, tmp_path):
    rc, out, err = render(helm, {}, tmp_path)
    assert rc == 0, err
    objs = objects(out)
    assert objs[("Deployment", "coder")]["spec"]["replicas"] == 1
    assert objs[("Service", "coder")]["spec"]["type"] == "LoadBalancer"
    assert ("Ingress", "coder") not in objs
    pod, container = coder_container(objs)
    assert "volumes" not in pod and "volumeMounts" not in container
    assert [e["name"] for e in container["env"]] == ["CODER_HTTP_ADDRESS"]


def test_chart_renders_the_v2_values(helm, tmp_path):
    values, _budget, url = build_values_and_url({
        "chart_generation": "v2", "host": "db.example.internal", "port": 5432, "user": "coder",
        "database": "coder", "url_secret": "coder-db-url", "ssl_mode": "verify-full",
        "ssl_root_cert_secret": {"name": "coder-db-ca", "key": "ca.crt"},
        "ssl_cert_secret": {"name": "coder-db-client", "key": "tls.crt"},
        "ssl_key_secret": {"name": "coder-db-client", "key": "tls.key"},
        "connector": "awsiamrds", "replicas": 3, "max_db_connections": 12,
        "service": {"type": "ClusterIP"},
        "ingress": {"enable": True, "host": "coder.example.com", "class_name": "nginx"},
        "service_account_annotations": {"eks.amazonaws.com/role-arn": "arn:aws:iam::1:role/c"},
    })
    rc, out, err = render(helm, values, tmp_path)
    assert rc == 0, err
    objs = objects(out)
    assert objs[("Deployment", "coder")]["spec"]["replicas"] == 3
    assert objs[("Service", "coder")]["spec"]["type"] == "ClusterIP"
    assert objs[("Ingress", "coder")]["spec"]["ingressClassName"] == "nginx"
    assert objs[("ServiceAccount", "coder")]["metadata"]["annotations"] == {
        "eks.amazonaws.com/role-arn": "arn:aws:iam::1:role/c"}
    pod, container = coder_container(objs)
    env = {e["name"]: e for e in container["env"]}
    assert env["CODER_PG_CONNECTION_URL"]["valueFrom"] == {
        "secretKeyRef": {"name": "coder-db-url", "key": "url"}}
    assert env["CODER_PG_AUTH"]["value"] == "awsiamrds"
    assert env["CODER_PG_CONN_MAX_OPEN"]["value"] == "12"
    assert env["CODER_PG_CONN_MAX_IDLE"]["value"] == "auto"
    # Every file the URL names is a file the pod mounts.
    mounted = set()
    volumes = {v["name"]: v for v in pod["volumes"]}
    for mount in container["volumeMounts"]:
        secret = volumes[mount["name"]]["secret"]
        if "subPath" in mount:
            mounted.add(mount["mountPath"])
        else:
            for item in secret["items"]:
                mounted.add(f"{mount['mountPath']}/{item['path']}")
        assert mount["readOnly"] is True
    assert set(url["params"].values()) <= mounted
    assert url["params"]["sslrootcert"] == "/etc/ssl/certs/coder-db-ca.crt"
    assert volumes["pg-client-key"]["secret"]["defaultMode"] == 0o640


@pytest.mark.parametrize("mode", ["not-ready", "crashloop"])
def test_fail_pods_switch(helm, tmp_path, mode):
    rc, out, err = render(helm, {"testing": {"failPods": mode}}, tmp_path)
    assert rc == 0, err
    labels = objects(out)[("Deployment", "coder")]["spec"]["template"]["metadata"]["labels"]
    assert labels["coderops.test/fail"] == mode


def test_invalid_manifest_switch(helm, tmp_path):
    rc, out, err = render(helm, {"testing": {"invalidManifest": True}}, tmp_path)
    assert rc == 0, err
    assert ("ConfigMap", "coder-Invalid_Name") in objects(out)
