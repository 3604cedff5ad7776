# Copyright (c) 2025, coderops maintainers
# GNU General Public License v3.0+ (see LICENSE or https://www.gnu.org/licenses/gpl-3.0.txt)
# SPDX-License-Identifier: GPL-3.0-or-later
"""What the API server makes of the values (issue 12): no object it would refuse passes a test.

* Every values case, both chart generations, every connector, TLS mode and Service type (and the
  password as a file for v1), is built by coder_values' backend, rendered by the stand-in chart
  with helm 3 and helm 4, and applied to the test bed's API server with a server-side dry run.
* The stand-in charts fail where the real ones do (the chart contract's "Checked against the real
  charts"): values that bypass coder_values' checks are rejected by the API server (a ClusterIP
  Service with the v1 chart's default externalTrafficPolicy, a password volume named like one of
  the v1 chart's own, a v2 CA volume name that is no DNS-1123 label), and a v2 client key without
  fsGroup is unreadable for Coder's uid 1000.
* A v1 release with a ClusterIP Service installs through the playbook, with helm 3 and helm 4.
"""

from __future__ import annotations

import copy
import itertools
import sys

import pytest
import yaml
from conftest import HELMS, delete_namespace, new_namespace
from helpers import COLLECTIONS, REPO, history, key_readable_by_coder, kubectl_json, playbook, run

sys.path.insert(0, str(COLLECTIONS))
from ansible_collections.coderops.deploy.plugins.module_utils._coder_values import (  # noqa: E402
    build_values,
)

CHARTS = {"v1": REPO / "tests" / "charts" / "coder-v1", "v2": REPO / "tests" / "charts" / "coder-v2"}
ROOT = {"name": "coder-db-ca", "key": "ca.crt"}
CERT = {"name": "coder-db-client-tls", "key": "tls.crt"}
KEY = {"name": "coder-db-client-tls", "key": "tls.key"}
TLS = {
    "require": {"ssl_mode": "require"},
    "verify-full": {"ssl_mode": "verify-full", "ssl_root_cert_secret": ROOT},
    "mtls": {"ssl_mode": "verify-full", "ssl_root_cert_secret": ROOT, "ssl_cert_secret": CERT,
             "ssl_key_secret": KEY},
}
SERVICES = ("ClusterIP", "NodePort", "LoadBalancer")


def _cases():
    """Every input combination the suite deploys, as (id, coder_values params)."""
    base = {"host": "db.example.internal", "port": 5432, "user": "coder", "database": "coder",
            "replicas": 2}
    for connector, tls, service in itertools.product(("postgres", "awsiamrds"), TLS, SERVICES):
        for no_password_env in ((False, True) if connector == "postgres" else (False,)):
            params = {**base, **TLS[tls], "connector": connector, "service": {"type": service},
                      "no_password_env": no_password_env}
            if connector == "postgres":
                params["password_secret"] = "coder-db-password"
            else:
                params["service_account_annotations"] = {
                    "eks.amazonaws.com/role-arn": "arn:aws:iam::123456789012:role/coder"}
            name = f"v1-{connector}-{tls}-{service}" + ("-file" if no_password_env else "")
            yield name, params
        v2 = {**base, **TLS[tls], "chart_generation": "v2", "connector": connector,
              "service": {"type": service}, "url_secret": "coder-db-url"}
        yield f"v2-{connector}-{tls}-{service}", v2
    yield "v1-search-path-ingress", {**base, "password_secret": "coder-db-password",
                                     "search_path": "coder",
                                     "ingress": {"enable": True, "host": "coder.example.test",
                                                 "class_name": "nginx", "tls_enable": True}}
    yield "v2-ingress", {**base, "chart_generation": "v2", "url_secret": "coder-db-url",
                         "ingress": {"enable": True, "host": "coder.example.test",
                                     "class_name": "nginx"}}


CASES = dict(_cases())


@pytest.fixture(scope="session")
def dry_run_namespace():
    name = new_namespace("coderops-dryrun")
    yield name
    delete_namespace(name)


def render(binary, generation, values, tmp_path):
    path = tmp_path / "values.yaml"
    path.write_text(yaml.safe_dump(values))
    return run(binary, "template", "coder", CHARTS[generation], "--namespace", "coder", "-f", path).stdout


def dry_run(namespace, manifest):
    """kubectl apply --dry-run=server: the API server validates (and defaults) every object."""
    return run("kubectl", "apply", "--dry-run=server", "-n", namespace, "-f", "-", input=manifest,
               check=False)


def pod_of(manifest):
    dep = next(d for d in yaml.safe_load_all(manifest) if d and d["kind"] == "Deployment")
    return dep["spec"]["template"]["spec"]


@pytest.mark.parametrize("binary", HELMS)
@pytest.mark.parametrize("case", sorted(CASES))
def test_values_pass_a_server_side_dry_run(case, binary, dry_run_namespace, tmp_path):
    params = CASES[case]
    generation = params.get("chart_generation", "v1")
    values = build_values(copy.deepcopy(params))[0]
    manifest = render(binary, generation, values, tmp_path)
    out = dry_run(dry_run_namespace, manifest)
    assert out.returncode == 0, f"{case}: the API server refused the rendered objects:\n{out.stderr}"
    pod = pod_of(manifest)
    if generation == "v2" and "ssl_key_secret" in params:
        coder = next(c for c in pod["containers"] if c["name"] == "coder")
        assert key_readable_by_coder(pod, coder, "pg-client-key"), pod.get("securityContext")


def _v1_values(**postgres):
    return {"postgres": {"default": {"enable": False}, "host": "db", "port": "5432", "user": "coder",
                         "database": "coder", "passwordSecret": "coder-db-password", **postgres}}


# Values the real charts turn into objects the API server refuses (chart contract), written by hand
# so that they bypass coder_values' checks: the stand-ins must be refused just the same.
REFUSED = {
    "v1-clusterip-with-the-charts-traffic-policy": (
        "v1", {**_v1_values(), "coderd": {"serviceSpec": {"type": "ClusterIP"}}},
        "externalTrafficPolicy"),
    "v1-password-volume-tmp-pgcerts": (
        "v1", _v1_values(passwordSecret="tmp-pgcerts", noPasswordEnv=True), "Duplicate value"),
    "v1-password-volume-pgcert": (
        "v1", _v1_values(passwordSecret="pgcert", noPasswordEnv=True,
                         ssl={"certSecret": {"name": "c", "key": "tls.crt"},
                              "keySecret": {"name": "c", "key": "tls.key"},
                              "rootCertSecret": {"name": "", "key": ""}}),
        "Duplicate value"),
    "v2-ca-secret-with-a-dot": (
        "v2", {"coder": {"certs": {"secrets": [{"name": "db.example.internal-ca", "key": "ca.crt"}]}}},
        "ca-cert-db.example.internal-ca"),
    "v2-ca-secret-of-56-characters": (
        "v2", {"coder": {"certs": {"secrets": [{"name": "c" * 56, "key": "ca.crt"}]}}},
        "must be no more than 63 characters"),
}


@pytest.mark.parametrize("case", sorted(REFUSED))
def test_stand_ins_are_refused_where_the_real_charts_are(case, dry_run_namespace, tmp_path):
    generation, values, why = REFUSED[case]
    out = dry_run(dry_run_namespace, render("helm3", generation, values, tmp_path))
    assert out.returncode != 0, f"{case}: the API server accepted what it refuses with the real chart"
    assert why in out.stderr, out.stderr


def test_v2_client_key_is_unreadable_without_fs_group(tmp_path):
    """The real v2 chart's pod runs as uid 1000 with no fsGroup: the root-owned 0640 key cannot
    be read. So does the stand-in's, and the values' fsGroup is what makes it readable."""
    params = {"chart_generation": "v2", "host": "db", "port": 5432, "user": "coder",
              "database": "coder", "url_secret": "coder-db-url", **TLS["mtls"]}
    values = build_values(params)[0]
    without = copy.deepcopy(values)
    del without["coder"]["podSecurityContext"]
    for vals, readable in ((without, False), (values, True)):
        pod = pod_of(render("helm3", "v2", vals, tmp_path))
        coder = next(c for c in pod["containers"] if c["name"] == "coder")
        assert coder["securityContext"]["runAsUser"] == 1000
        assert key_readable_by_coder(pod, coder, "pg-client-key") is readable


@pytest.mark.parametrize("binary", HELMS)
def test_v1_clusterip_release(binary):
    """The v1 chart with a ClusterIP Service installs (the values null the chart's
    externalTrafficPolicy: Local), and a re-run changes nothing."""
    ns = new_namespace("coderops-clusterip")
    try:
        extra = {"coder_service": {"type": "ClusterIP"}}
        res = playbook("deploy_coder", binary, ns, extra, tag=f"v1-clusterip-{binary}")
        assert res.rc == 0, res.output[-4000:]
        assert [h["status"] for h in history(binary, ns)] == ["deployed"]
        svc = kubectl_json("get", "service", "coderd", "-n", ns)
        assert svc["spec"]["type"] == "ClusterIP"
        assert "externalTrafficPolicy" not in svc["spec"]
        res = playbook("deploy_coder", binary, ns, extra, tag=f"v1-clusterip-rerun-{binary}")
        assert res.rc == 0 and res.recap["changed"] == 0, res.output[-4000:]
    finally:
        delete_namespace(ns)
