# Copyright (c) 2025, coderops maintainers
# GNU General Public License v3.0+ (see LICENSE or https://www.gnu.org/licenses/gpl-3.0.txt)
# SPDX-License-Identifier: GPL-3.0-or-later
"""The Coder v2 chart (coder_chart_generation: v2) through playbooks/deploy_coder.yml, on the
test bed, with helm 3 and helm 4: first install, the idempotent re-run, check mode, an upgrade
to the next chart version, a crash looping upgrade rolled back automatically, a changed
password, mTLS, awsiamrds, uninstall; the options of one generation refused with the other
before anything changes; and the canary password (plain, URL-encoded, inside the whole URL) in
no output, file, process, Helm revision or namespace object but the URL Secret.

The stand-in chart tests/charts/coder-v2 is served from a chart repository on loopback as 2.30.0
and 2.31.0 (`helm package --version`, as the v1 tests do with coder-v1), so that an upgrade
changes the chart version, and as 2.29.0, a Coder that ignores the pool env (before 2.30). The
URL the tests expect is built here, independently of the collection's coder_pg_url filter.
"""

from __future__ import annotations

import base64
import functools
import http.server
import json
import os
import shutil
import subprocess
import tempfile
import threading
import uuid
from pathlib import Path
from urllib.parse import quote, unquote, urlsplit

import psycopg2
import pytest
from conftest import HELMS, delete_namespace, new_namespace
from helpers import (
    ENV,
    REPO,
    history,
    key_readable_by_coder,
    kubectl,
    kubectl_json,
    lease_exists,
    module_way,
    namespace_hits,
    pg_login,
    playbook,
    ran_the_module_way,
    release_values,
    secret_data,
    secret_hash,
    wait_for,
)
from leak_scan import ProcWatcher, find, forms, make_canary, scan_tree

MAIN = {k: ENV[f"CODER_TEST_PG_MAIN_{k}"]
        for k in ("HOST", "PORT", "USER", "DATABASE", "SSLROOTCERT", "SOCKET_DIR")}
CHART_DIR = REPO / "tests" / "charts" / "coder-v2"
V1_CHART_DIR = REPO / "tests" / "charts" / "coder-v1"
V2 = {"coder_chart_generation": "v2", "coder_chart_ref": str(CHART_DIR)}
URL_SECRET = "coder-db-url"
CA_PATH = "/etc/ssl/certs/coder-db-ca.crt"
CERT_PATH = "/etc/coder/pg/client-cert/tls.crt"
KEY_PATH = "/etc/coder/pg/client-key/tls.key"


def _password():
    return Path(ENV["CODER_TEST_PG_PASSWORD_FILE"]).read_text()


def expected_url(user, password, host, port, database, ssl_mode="verify-full", search_path=None,
                 params=None):
    """The URL the Secret must hold, built here from the contract (every part percent-encoded)."""
    auth = quote(user, safe="") if password is None else f"{quote(user, safe='')}:{quote(password, safe='')}"
    query = [("sslmode", ssl_mode)]
    if search_path:
        query.append(("search_path", search_path))
    query += sorted((params or {}).items())
    qs = "&".join(f"{quote(k, safe='')}={quote(v, safe='')}" for k, v in query)
    return f"postgres://{auth}@{host}:{port}/{quote(database, safe='')}?{qs}"


def url_of(namespace, name=URL_SECRET):
    data, obj = secret_data(namespace, name)
    assert set(data) == {"url"}, sorted(data)
    assert obj["type"] == "Opaque" and "stringData" not in obj
    assert obj["metadata"]["labels"]["app.kubernetes.io/managed-by"] == "coderops.deploy"
    assert "kubectl.kubernetes.io/last-applied-configuration" not in (obj["metadata"].get("annotations") or {})
    return data["url"].decode()


def login_with_url(url, ca=MAIN["SSLROOTCERT"], cert=None, key=None):
    """Log in with the parts of the URL (host, port, user, database and the decoded password)."""
    parts = urlsplit(url)
    password = unquote(parts.password) if parts.password is not None else None
    return pg_login(parts.hostname, parts.port, unquote(parts.username), unquote(parts.path[1:]),
                    password=password, ca=ca, cert=cert, key=key)


def coder_deployment(namespace):
    return kubectl_json("get", "-n", namespace, "deployment/coder")


def wait_coder_available(namespace, replicas, timeout=120):
    def ok():
        dep = coder_deployment(namespace)
        st = dep.get("status", {})
        return (st.get("observedGeneration", 0) >= dep["metadata"]["generation"]
                and st.get("readyReplicas", 0) == replicas and st.get("updatedReplicas", 0) == replicas
                and st.get("replicas", 0) == replicas)
    return wait_for(ok, timeout, what=f"deployment/coder in {namespace} to be available")


def check_v2_deployment(template, *, url_secret=URL_SECRET, pool=10, idle="auto", awsiamrds=False,
                        root_cert="coder-db-ca", client_cert=None):
    """The live pod template against the v2 part of the chart contract."""
    spec = template["spec"]
    containers = {c["name"]: c for c in spec["containers"]}
    assert set(containers) == {"coder"}, containers.keys()
    assert not spec.get("initContainers")
    coder = containers["coder"]
    env = {e["name"]: e for e in coder["env"]}
    assert env["CODER_PG_CONNECTION_URL"] == {
        "name": "CODER_PG_CONNECTION_URL",
        "valueFrom": {"secretKeyRef": {"name": url_secret, "key": "url"}}}, env["CODER_PG_CONNECTION_URL"]
    if pool is None:
        # Coder before 2.30 ignores both (chart contract): the values leave them out.
        assert "CODER_PG_CONN_MAX_OPEN" not in env and "CODER_PG_CONN_MAX_IDLE" not in env
    else:
        assert env["CODER_PG_CONN_MAX_OPEN"]["value"] == str(pool)
        assert env["CODER_PG_CONN_MAX_IDLE"]["value"] == str(idle)
    if awsiamrds:
        assert env["CODER_PG_AUTH"]["value"] == "awsiamrds"
    else:
        assert "CODER_PG_AUTH" not in env
    # No v1 env and no value holding a URL or password: only the Secret reference.
    assert not any(n.startswith("DB_") for n in env), sorted(env)
    for e in coder["env"]:
        assert "postgres://" not in str(e.get("value", "")), e["name"]
    mounts = {m["name"]: m for m in coder.get("volumeMounts", [])}
    volumes = {v["name"]: v for v in spec.get("volumes", [])}
    if root_cert:
        name = f"ca-cert-{root_cert}"
        assert mounts[name]["mountPath"] == f"/etc/ssl/certs/{root_cert}.crt"
        assert mounts[name]["subPath"] == "ca.crt" and mounts[name]["readOnly"] is True
        assert volumes[name]["secret"]["secretName"] == root_cert
    else:
        assert not any(n.startswith("ca-cert-") for n in mounts)
    if client_cert:
        assert mounts["pg-client-cert"]["mountPath"] == os.path.dirname(CERT_PATH)
        assert mounts["pg-client-key"]["mountPath"] == os.path.dirname(KEY_PATH)
        assert volumes["pg-client-cert"]["secret"]["secretName"] == client_cert
        assert volumes["pg-client-key"]["secret"]["secretName"] == client_cert
        assert volumes["pg-client-key"]["secret"]["defaultMode"] == 0o640
        assert volumes["pg-client-key"]["secret"]["items"] == [{"key": "tls.key", "path": "tls.key"}]
        # Coder (uid 1000) reads the root-owned 0640 key through the pod's fsGroup.
        assert key_readable_by_coder(spec, coder, "pg-client-key"), spec.get("securityContext")
    else:
        assert "pg-client-cert" not in mounts and "pg-client-key" not in volumes


def check_v2_values(values, url_secret=URL_SECRET):
    """What helm stores: coder.* only, naming the URL Secret; no postgres block, no URL."""
    assert set(values) <= {"coder", "testing"}, sorted(values)
    assert "postgres://" not in json.dumps(values)
    refs = [e for e in values["coder"]["env"] if e["name"] == "CODER_PG_CONNECTION_URL"]
    assert refs == [{"name": "CODER_PG_CONNECTION_URL",
                     "valueFrom": {"secretKeyRef": {"name": url_secret, "key": "url"}}}]


def _managed_secrets(namespace):
    return sorted(s["metadata"]["name"] for s in kubectl_json(
        "get", "secrets", "-n", namespace, "-l", "app.kubernetes.io/managed-by=coderops.deploy")["items"])


class _QuietHandler(http.server.SimpleHTTPRequestHandler):
    def log_message(self, *args):
        pass


@pytest.fixture(scope="session")
def v2_chart_repo():
    """A chart repository on loopback with the v2 stand-in as coder 2.29.0, 2.30.0 and 2.31.0."""
    root = Path(tempfile.mkdtemp(prefix="coderops-charts-v2-"))
    for version in ("2.29.0", "2.30.0", "2.31.0"):
        subprocess.run(["helm3", "package", str(CHART_DIR), "--version", version, "--app-version", version,
                        "-d", str(root)], env=ENV, check=True, capture_output=True)
    server = http.server.ThreadingHTTPServer(("127.0.0.1", 0),
                                             functools.partial(_QuietHandler, directory=str(root)))
    url = f"http://127.0.0.1:{server.server_address[1]}"
    subprocess.run(["helm3", "repo", "index", str(root), "--url", url], env=ENV, check=True, capture_output=True)
    thread = threading.Thread(target=server.serve_forever, daemon=True)
    thread.start()
    yield url
    server.shutdown()
    shutil.rmtree(root, ignore_errors=True)


def _from_repo(repo_url, version, **extra):
    return {**V2, "coder_chart_ref": "coder/coder", "coder_chart_repo_url": repo_url,
            "coder_chart_version": version, **extra}


@pytest.fixture(scope="session")
def state():
    created = []
    yield {"created": created}
    for ns in created:
        delete_namespace(ns)


@pytest.mark.parametrize("binary", HELMS)
class TestV2Lifecycle:
    """One namespace per helm: install, re-run, check mode, upgrade, a fault rolled back, a
    changed password, uninstall."""

    def test_first_install(self, binary, state, v2_chart_repo):
        ns = new_namespace("coderops-v2")
        state["created"].append(ns)
        state[binary] = ns
        res = playbook("deploy_coder", binary, ns, _from_repo(v2_chart_repo, "2.30.0"), tag=f"v2-install-{binary}")
        assert res.rc == 0, res.output[-4000:]
        assert "installed as revision 1 (coder-2.30.0, deployed)" in res.output
        assert "Coder is at http://127.0.0.1" in res.output
        # The budget counts the v2 pool (10) and the assumed 5 more connections per pod.
        assert "max_db_connections 10 + extra_connections_per_replica 5" in res.output
        assert [(h["revision"], h["status"]) for h in history(binary, ns)] == [(1, "deployed")]
        wait_coder_available(ns, 1)
        check_v2_deployment(coder_deployment(ns)["spec"]["template"])
        check_v2_values(release_values(binary, ns, 1))
        # The URL Secret: every part, the password URL-encoded, the CA path the values mount.
        url = url_of(ns)
        assert url == expected_url(MAIN["USER"], _password(), MAIN["HOST"], MAIN["PORT"], MAIN["DATABASE"],
                                   params={"sslrootcert": CA_PATH})
        # No v1 password Secret; the CA Secret as with v1.
        assert _managed_secrets(ns) == ["coder-db-ca", URL_SECRET]
        ca, dummy = secret_data(ns, "coder-db-ca")
        assert ca["ca.crt"] == Path(MAIN["SSLROOTCERT"]).read_bytes()
        # The URL read back from the cluster logs in.
        facts = login_with_url(url)
        assert facts.get("failed") is not True, facts.get("msg")
        assert facts["user"] == MAIN["USER"]

    def test_rerun_changes_nothing(self, binary, state, v2_chart_repo):
        ns = state[binary]
        before = secret_hash(ns, URL_SECRET)
        res = playbook("deploy_coder", binary, ns, _from_repo(v2_chart_repo, "2.30.0"), tag=f"v2-rerun-{binary}")
        assert res.rc == 0, res.output[-4000:]
        assert res.recap["changed"] == 0, res.output[-6000:]
        assert "unchanged at revision 1" in res.output
        assert len(history(binary, ns)) == 1
        assert secret_hash(ns, URL_SECRET) == before

    def test_check_mode_changes_nothing(self, binary, state, v2_chart_repo):
        ns = state[binary]
        before = secret_hash(ns, URL_SECRET)
        res = playbook("deploy_coder", binary, ns, _from_repo(v2_chart_repo, "2.31.0", coder_replicas=2),
                       args=("--check", "--diff"), tag=f"v2-check-{binary}")
        assert res.rc == 0, res.output[-4000:]
        assert "would upgrade" in res.output
        assert len(history(binary, ns)) == 1
        assert coder_deployment(ns)["spec"]["replicas"] == 1
        assert secret_hash(ns, URL_SECRET) == before

    def test_upgrade(self, binary, state, v2_chart_repo):
        ns = state[binary]
        before = secret_hash(ns, URL_SECRET)
        res = playbook("deploy_coder", binary, ns, _from_repo(
            v2_chart_repo, "2.31.0", coder_replicas=2, coder_max_db_connections=12,
            coder_db_max_idle_connections=4), tag=f"v2-upgrade-{binary}")
        assert res.rc == 0, res.output[-4000:]
        assert "upgraded to revision 2 (coder-2.31.0, deployed)" in res.output
        hist = history(binary, ns)
        assert [(h["revision"], h["status"]) for h in hist] == [(1, "superseded"), (2, "deployed")]
        assert hist[-1]["chart"] == "coder-2.31.0"
        wait_coder_available(ns, 2)
        dep = coder_deployment(ns)
        assert dep["spec"]["replicas"] == 2
        assert dep["spec"]["template"]["metadata"]["labels"]["helm.sh/chart"] == "coder-2.31.0"
        check_v2_deployment(dep["spec"]["template"], pool=12, idle=4)
        check_v2_values(release_values(binary, ns, 2))
        assert secret_hash(ns, URL_SECRET) == before

    def test_crashloop_upgrade_rolls_back(self, binary, state, v2_chart_repo):
        ns = state[binary]
        good = _from_repo(v2_chart_repo, "2.31.0", coder_replicas=2, coder_max_db_connections=12,
                          coder_db_max_idle_connections=4)
        before_values = release_values(binary, ns, 2)
        before_template = coder_deployment(ns)["spec"]["template"]
        before_secret = secret_hash(ns, URL_SECRET)
        res = playbook("deploy_coder", binary, ns,
                       {**good, "coder_values_overrides": {"testing": {"failPods": "crashloop"}}},
                       tag=f"v2-crashloop-{binary}")
        assert res.rc != 0, res.output[-4000:]
        assert "rolled back to revision 2" in res.output, res.output[-5000:]
        hist = wait_for(lambda: (h := history(binary, ns)) and h[-1]["status"] == "deployed" and h,
                        120, what="a deployed newest revision")
        assert hist[-1]["revision"] == 4 and hist[-2]["status"] == "failed", hist
        assert hist[-1]["chart"] == "coder-2.31.0"
        assert release_values(binary, ns, 4) == before_values
        wait_coder_available(ns, 2)
        after = coder_deployment(ns)["spec"]["template"]
        after.get("metadata", {}).pop("creationTimestamp", None)
        before_template.get("metadata", {}).pop("creationTimestamp", None)
        assert after == before_template
        assert secret_hash(ns, URL_SECRET) == before_secret
        wait_for(lambda: not lease_exists(ns), 30, what="the Lease to be released")
        # The last good revision is what the next run keeps: nothing to do.
        res = playbook("deploy_coder", binary, ns, good, tag=f"v2-after-crashloop-{binary}")
        assert res.rc == 0 and res.recap["changed"] == 0, res.output[-4000:]

    def test_changed_password_updates_the_url_secret(self, binary, state, v2_chart_repo):
        ns = state[binary]
        good = _from_repo(v2_chart_repo, "2.31.0", coder_replicas=2, coder_max_db_connections=12,
                          coder_db_max_idle_connections=4)
        before = secret_hash(ns, URL_SECRET)
        revisions = len(history(binary, ns))
        # Another password (the database check is off: the server does not know it).
        other = "n3w p@ss/w%rd:ü"
        res = playbook("deploy_coder", binary, ns,
                       {**good, "coder_db_password": other, "preflight_check_database": False},
                       tag=f"v2-new-password-{binary}")
        assert res.rc == 0, res.output[-4000:]
        assert "Secret coder-db-url: written" in res.output
        assert url_of(ns) == expected_url(MAIN["USER"], other, MAIN["HOST"], MAIN["PORT"], MAIN["DATABASE"],
                                          params={"sslrootcert": CA_PATH})
        # The values only name the Secret, so no new revision.
        assert len(history(binary, ns)) == revisions
        res = playbook("deploy_coder", binary, ns, good, tag=f"v2-old-password-{binary}")
        assert res.rc == 0, res.output[-4000:]
        assert secret_hash(ns, URL_SECRET) == before
        assert login_with_url(url_of(ns)).get("failed") is not True

    def test_uninstall_deletes_the_url_secret_when_asked(self, binary, state):
        ns = state[binary]
        res = playbook("uninstall_coder", binary, ns, {"coder_chart_generation": "v2"}, tag=f"v2-uninstall-{binary}")
        assert res.rc == 0, res.output[-4000:]
        assert history(binary, ns) == []
        assert secret_hash(ns, URL_SECRET) is not None
        res = playbook("uninstall_coder", binary, ns, {"coder_uninstall_delete_secrets": True},
                       tag=f"v2-uninstall-secrets-{binary}")
        assert res.rc == 0, res.output[-4000:]
        assert _managed_secrets(ns) == []


@pytest.mark.parametrize("binary", HELMS)
def test_v2_mtls(binary, namespace):
    """A client certificate and no password: the URL names the files the values mount."""
    extra = {**V2, "coder_db_user": ENV["CODER_TEST_PG_MAIN_MTLS_USER"], "coder_db_password": "",
             "coder_db_ssl_cert_file": ENV["CODER_TEST_PG_MAIN_CLIENT_CERT"],
             "coder_db_ssl_key_file": ENV["CODER_TEST_PG_MAIN_CLIENT_KEY"],
             "coder_db_search_path": "public"}
    res = playbook("deploy_coder", binary, namespace, extra, tag=f"v2-mtls-{binary}")
    assert res.rc == 0, res.output[-4000:]
    wait_coder_available(namespace, 1)
    check_v2_deployment(coder_deployment(namespace)["spec"]["template"], client_cert="coder-db-client-tls")
    url = url_of(namespace)
    assert url == expected_url(ENV["CODER_TEST_PG_MAIN_MTLS_USER"], None, MAIN["HOST"], MAIN["PORT"],
                               MAIN["DATABASE"], search_path="public",
                               params={"sslrootcert": CA_PATH, "sslcert": CERT_PATH, "sslkey": KEY_PATH})
    # The certificate and key read back from their Secret log in as the URL's user.
    data, obj = secret_data(namespace, "coder-db-client-tls")
    assert obj["type"] == "kubernetes.io/tls"
    with tempfile.TemporaryDirectory(prefix="coderops-it-v2-mtls-") as tmp:
        cert, key = Path(tmp, "c.crt"), Path(tmp, "c.key")
        cert.write_bytes(data["tls.crt"])
        fd = os.open(key, os.O_WRONLY | os.O_CREAT, 0o600)
        os.write(fd, data["tls.key"])
        os.close(fd)
        facts = login_with_url(url, cert=str(cert), key=str(key))
    assert facts.get("failed") is not True, facts.get("msg")
    assert facts["ssl"]["client_certificate"] is True
    res = playbook("deploy_coder", binary, namespace, extra, tag=f"v2-mtls-rerun-{binary}")
    assert res.rc == 0 and res.recap["changed"] == 0, res.output[-4000:]


@pytest.mark.parametrize("binary", HELMS)
def test_v2_awsiamrds(binary, namespace):
    role = "arn:aws:iam::123456789012:role/coder-rds"
    host = "coder.abc123.eu-west-1.rds.amazonaws.com"
    extra = {**V2, "coder_db_connector": "awsiamrds", "coder_db_password": "", "coder_db_host": host,
             "coder_db_port": 5432, "preflight_check_database": False,
             "coder_service_account_annotations": {"eks.amazonaws.com/role-arn": role}}
    res = playbook("deploy_coder", binary, namespace, extra, tag=f"v2-awsiamrds-{binary}")
    assert res.rc == 0, res.output[-4000:]
    wait_coder_available(namespace, 1)
    check_v2_deployment(coder_deployment(namespace)["spec"]["template"], awsiamrds=True)
    assert url_of(namespace) == expected_url(MAIN["USER"], None, host, 5432, MAIN["DATABASE"],
                                             params={"sslrootcert": CA_PATH})
    sa = kubectl_json("get", "serviceaccount", "coder", "-n", namespace)
    assert sa["metadata"]["annotations"]["eks.amazonaws.com/role-arn"] == role


REFUSALS = {
    "v2-no-password-env": ({**V2, "coder_db_no_password_env": True},
                           ["coder_db_no_password_env", "Coder v1 chart only"]),
    "v2-immutable": ({**V2, "db_secret_immutable": True}, ["db_secret_immutable", "coder_chart_generation v2"]),
    "v2-source-ranges": ({**V2, "coder_service": {"load_balancer_source_ranges": ["10.0.0.0/8"]}},
                         ["coder_service.load_balancer_source_ranges", "Coder v1 chart only"]),
    "v2-idle-above-pool": ({**V2, "coder_db_max_idle_connections": 11},
                           ["coder_db_max_idle_connections", "between 0 and coder_max_db_connections"]),
    "v2-owned-env": ({**V2, "coder_extra_envs": [{"name": "CODER_PG_CONNECTION_URL", "value": "x"}]},
                     ["coder_extra_envs[0].name", "CODER_PG_CONNECTION_URL"]),
    "v2-bad-url-secret-name": ({**V2, "coder_db_url_secret": "Coder_URL"}, ["coder_db_url_secret"]),
    "v2-control-char-password": ({**V2, "coder_db_password": "a\tb", "preflight_check_database": False},
                                 ["coder_db_password contains a control character"]),
    "v2-budget-does-not-fit": ({**V2, "coder_replicas": 4, "coder_max_db_connections": 20},
                               ["does not fit", "coder_db_extra_connections_per_replica 5",
                                "Suggested coder_max_db_connections"]),
    "v2-ca-secret-with-a-dot": ({**V2, "coder_db_ssl_ca_secret": "db.example.internal-ca"},
                                ["coder_db_ssl_ca_secret 'db.example.internal-ca' is not a DNS-1123 label",
                                 "ca-cert-<Secret name>"]),
    "v2-ca-secret-too-long": ({**V2, "coder_db_ssl_ca_secret": "c" * 56},
                              ["coder_db_ssl_ca_secret", "at most 55 characters"]),
    "v1-idle": ({"coder_db_max_idle_connections": 3},
                ["coder_db_max_idle_connections", "Coder v2 chart only"]),
    "v2-values-on-v1-chart": ({"coder_chart_generation": "v2", "coder_chart_ref": str(V1_CHART_DIR)},
                              ["coder_chart_generation is v2", "is a Coder v1 chart"]),
    "v1-values-on-v2-chart": ({"coder_chart_generation": "v1", "coder_chart_ref": str(CHART_DIR)},
                              ["coder_chart_generation is v1", "is a Coder v2 chart"]),
    "unknown-generation": ({"coder_chart_generation": "v3"}, ["coder_chart_generation", "v3"]),
}


@pytest.mark.parametrize("case", sorted(REFUSALS))
def test_v2_refusals_change_nothing(case, namespace):
    """Each is refused with a message naming the variable, before anything changes (with
    coder_create_namespace true, even the namespace's Secrets stay untouched)."""
    extra, texts = REFUSALS[case]
    res = playbook("deploy_coder", "helm3", namespace, extra, tag=f"v2-refusal-{case}")
    assert res.rc != 0, res.output[-3000:]
    for text in texts:
        assert text in res.output, f"{text!r} not in the output:\n{res.output[-4000:]}"
    assert res.recap["changed"] == 0, res.output[-4000:]
    assert history("helm3", namespace) == []
    assert _managed_secrets(namespace) == []


# -- no leak ---------------------------------------------------------------------------------------


def _superuser():
    return psycopg2.connect(host=MAIN["SOCKET_DIR"], port=MAIN["PORT"], user="postgres", dbname="postgres")


@pytest.fixture(scope="session")
def v2_canary():
    """A login role with an awkward random password, its password file in a private directory,
    and the places the runs write to (log, fact cache, temporary directories)."""
    password = make_canary()
    role = f"coderops_v2canary_{uuid.uuid4().hex[:8]}"
    conn = _superuser()
    conn.autocommit = True
    with conn.cursor() as cur:
        cur.execute(f'CREATE ROLE "{role}" LOGIN PASSWORD %s', (password,))
    root = Path(tempfile.mkdtemp(prefix="coderops-it-v2-leak-"))
    secret_dir = root / "secret"
    secret_dir.mkdir(mode=0o700)
    pw_file = secret_dir / "pg-password"
    fd = os.open(pw_file, os.O_WRONLY | os.O_CREAT, 0o600)
    os.write(fd, password.encode())
    os.close(fd)
    places = {name: root / name for name in ("log", "facts", "tmp", "local_tmp", "remote_tmp")}
    for path in places.values():
        path.mkdir()
    yield {"password": password, "role": role, "file": pw_file, "root": root, "secret_dir": secret_dir,
           "places": places}
    with conn.cursor() as cur:
        cur.execute(f'DROP ROLE IF EXISTS "{role}"')
    conn.close()
    shutil.rmtree(root, ignore_errors=True)


def _url_needles(url):
    """The whole URL in every form but the Secret's own base64 data: the URL is as secret as the
    password inside it. ("core", a slice from its start, is the user and host: not secret.)"""
    return {f"url-{name}": value for name, value in forms(url).items() if name != "core"}


@pytest.mark.parametrize("binary", HELMS)
def test_v2_no_run_shows_the_password_or_the_url(binary, v2_canary):
    ns = new_namespace("coderops-v2-leak")
    canary = v2_canary
    p = canary["places"]
    env = {"CODER_TEST_PG_PASSWORD_FILE": str(canary["file"]),
           "ANSIBLE_LOG_PATH": str(p["log"] / f"ansible-{binary}.log"),
           "ANSIBLE_CACHE_PLUGIN": "ansible.builtin.jsonfile",
           "ANSIBLE_CACHE_PLUGIN_CONNECTION": str(p["facts"]),
           "TMPDIR": str(p["tmp"]), "ANSIBLE_LOCAL_TEMP": str(p["local_tmp"]),
           "ANSIBLE_REMOTE_TMP": str(p["remote_tmp"])}
    base = {**V2, "coder_db_user": canary["role"]}
    url = expected_url(canary["role"], canary["password"], MAIN["HOST"], MAIN["PORT"], MAIN["DATABASE"],
                       params={"sslrootcert": CA_PATH})
    needles = {**forms(canary["password"]), **_url_needles(url)}
    # The URL-encoded password really is a needle, and differs from the plain one.
    assert needles["url-encoded"] != needles["plain"] and b"%" in needles["url-encoded"]
    outputs = {}
    proc_hits = {}
    samples = 0
    runs = [
        ("install", {}, ("-vvvv", "--diff"), 0),
        ("check-diff", {"coder_replicas": 2}, ("-vvvv", "--check", "--diff"), 0),
        ("rerun", {}, ("-vvvv", "--diff"), 0),
        ("upgrade", {"coder_replicas": 2}, ("-vvvv", "--diff"), 0),
        ("wrong-type", {"coder_replicas": "two"}, ("-vvvv",), 2),
        ("failed-upgrade", {"coder_replicas": 2, "coder_values_overrides": {"testing": {"failPods": "crashloop"}}},
         ("-vvvv", "--diff"), 2),
    ]
    try:
        for tag, extra, args, want in runs:
            with ProcWatcher(needles) as watcher:
                res = playbook("deploy_coder", binary, ns, {**base, **module_way(binary), **extra}, args=args,
                               extra_env=env,
                               tag=f"v2-leak-{tag}-{binary}")
            outputs[tag] = res.output
            proc_hits.update({f"{tag}: {k}": v for k, v in watcher.hits.items()})
            samples += watcher.samples
            assert (res.rc == 0) == (want == 0), f"{tag}: rc {res.rc}\n{res.output[-4000:]}"
            if tag == "install":
                assert ran_the_module_way(binary, res.output), res.output[-4000:]  # really -vvvv, and which way
                # The deployment really uses the canary: the Secret holds the URL, which logs in.
                assert url_of(ns) == url
                facts = login_with_url(url)
                assert facts.get("failed") is not True and facts["user"] == canary["role"], facts.get("msg")
            if tag == "check-diff":
                assert "would upgrade" in res.output
            if tag == "rerun":
                assert res.recap["changed"] == 0, res.output[-4000:]
            if tag == "wrong-type":
                assert "coder_replicas" in res.output
            if tag == "failed-upgrade":
                assert "rolled back to revision" in res.output, res.output[-4000:]

        hits = {}
        for tag, output in outputs.items():
            if find(output, needles):
                hits[f"output of {tag}"] = find(output, needles)
        hits.update(scan_tree(canary["root"], needles, skip=(canary["secret_dir"],)))
        hits.update(proc_hits)
        scan = namespace_hits(binary, ns, needles, skip_data=(URL_SECRET,))
        hits.update(scan.hits)
        # Where the URL belongs: the URL Secret's data, and only there.
        assert URL_SECRET in scan.kept
        assert base64.b64decode(scan.kept[URL_SECRET]["url"]).decode() == url
        assert not hits, f"the canary password or URL leaked: {hits}"
        assert samples > 20, "the process watcher took too few samples"
        # Positive control: the same detectors find the URL where it belongs.
        raw = kubectl("get", "secret", URL_SECRET, "-n", ns, "-o", "json").stdout
        assert "url-base64" in find(raw, needles)
    finally:
        delete_namespace(ns)


@pytest.mark.parametrize("binary", HELMS)
def test_v2_pool_before_2_30(binary, namespace, v2_chart_repo):
    """Coder 2.29 holds 10 open and 3 idle per pool whatever the env says: the budget counts 10,
    the values set no pool env, and another pool size is refused before anything changes."""
    res = playbook("deploy_coder", binary, namespace, _from_repo(v2_chart_repo, "2.29.0"),
                   tag=f"v2-pool-2.29-{binary}")
    assert res.rc == 0, res.output[-4000:]
    assert "max_db_connections 10 + extra_connections_per_replica 5" in res.output
    check_v2_deployment(coder_deployment(namespace)["spec"]["template"], pool=None)
    res = playbook("deploy_coder", binary, namespace,
                   _from_repo(v2_chart_repo, "2.29.0", coder_max_db_connections=5),
                   tag=f"v2-pool-2.29-refused-{binary}")
    assert res.rc != 0, res.output[-4000:]
    assert ("coder_max_db_connections is 5, but Coder 2.29.0 (from the chart's appVersion) ignores"
            " CODER_PG_CONN_MAX_OPEN") in res.output, res.output[-4000:]
    assert res.recap["changed"] == 0, res.output[-4000:]
    assert len(history(binary, namespace)) == 1
