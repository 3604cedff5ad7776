# Copyright (c) 2025, coderops maintainers
# GNU General Public License v3.0+ (see LICENSE or https://www.gnu.org/licenses/gpl-3.0.txt)
# SPDX-License-Identifier: GPL-3.0-or-later
"""Bad input is refused before anything is changed, with a message naming the variable and the
fix, on the real test bed, through deploy_coder.yml: every entry of the reliability checklist's
"Bad input" and "PostgreSQL" lists. "Nothing changed" is proven by comparing, before and after
each run, the namespace (release history, Secrets, Leases) and the database (the roles' catalogue
rows, password hashes included, the databases, and the sessions in pg_stat_activity)."""

from __future__ import annotations

import json
import os
import secrets
import socket
import tempfile
import threading
import uuid
from pathlib import Path

import psycopg2
import pytest
from conftest import delete_namespace, new_namespace
from helpers import ENV, history, kubectl, kubectl_json, playbook, run

CERT = ENV["CODER_TEST_PG_MAIN_CLIENT_CERT"]
KEY = ENV["CODER_TEST_PG_MAIN_CLIENT_KEY"]
MAIN = {k: ENV[f"CODER_TEST_PG_MAIN_{k}"] for k in ("HOST", "PORT", "DATABASE", "SOCKET_DIR")}
# coder_mtls logs in only over TLS with a client certificate (hostssl ... cert; anything else: reject).
MTLS = {"coder_db_user": ENV["CODER_TEST_PG_MAIN_MTLS_USER"]}


def _pg_fail(reason, *more):
    return [f"PostgreSQL check failed ({reason})", "Nothing was changed", *more]


# case: (extra vars, texts the output must hold, password-file key or None, what the case is).
# Extra vars are applied on top of the test bed's inventory, with the test's own login role.
CASES = {
    "port-not-a-number": ({"coder_db_port": "fivefourthreetwo"}, ["coder_db_port"], None,
                          "coder_db_port is not a number"),
    "port-out-of-range": ({"coder_db_port": 70000}, ["coder_db_port must be a number between 1 and 65535"], None,
                          "coder_db_port 70000"),
    "empty-host": ({"coder_db_host": ""}, ["coder_db_host is empty"], None, "coder_db_host empty"),
    "empty-user": ({"coder_db_user": ""}, ["coder_db_user"], None, "coder_db_user empty"),
    "empty-database": ({"coder_db_name": ""}, ["coder_db_name"], None, "coder_db_name empty"),
    "secret-name-not-dns1123-with-no-password-env": (
        {"coder_db_password_secret": "coder.db-password", "coder_db_no_password_env": True},
        ["coder_db_password_secret", "DNS-1123 label"], None, "password Secret name not DNS-1123, noPasswordEnv on"),
    "secret-name-too-long": ({"coder_db_password_secret": "coder-" + "p" * 250}, ["coder_db_password_secret"], None,
                             "password Secret name of 256 characters (the API allows 253)"),
    "no-password-env-without-secret": (
        {"coder_db_password_secret": "", "coder_db_no_password_env": True},
        ["coder_db_no_password_env", "password_secret is not set"], None,
        "noPasswordEnv (coder_db_no_password_env) without a Secret name"),
    "verify-full-without-root-cert": ({"coder_db_ssl_ca_file": ""}, ["coder_db_ssl_ca_file"], None,
                                      "ssl_mode verify-full, no root certificate"),
    "verify-ca-without-root-cert": ({"coder_db_ssl_mode": "verify-ca", "coder_db_ssl_ca_file": ""},
                                    ["coder_db_ssl_ca_file"], None, "ssl_mode verify-ca, no root certificate"),
    "certificate-without-key": ({"coder_db_ssl_cert_file": CERT},
                                ["coder_db_ssl_cert_file is set but coder_db_ssl_key_file is not"], None,
                                "client certificate without key"),
    "key-without-certificate": ({"coder_db_ssl_key_file": KEY}, ["coder_db_ssl_key_file", "coder_db_ssl_cert_file"],
                                None, "client key without certificate"),
    "awsiamrds-with-password": ({"coder_db_connector": "awsiamrds"}, ["remove coder_db_password"], None,
                                "connector awsiamrds with a password"),
    "budget-does-not-fit": ({"coder_replicas": 3, "coder_max_db_connections": 40},
                            ["does not fit", "Suggested coder_max_db_connections: 24"], None,
                            "3 replicas x 40 connections against max_connections 100"),
    "extra-env-shadows-db-var": ({"coder_extra_envs": [{"name": "DB_HOST", "value": "elsewhere"}]},
                                 ["coder_extra_envs[0].name", "DB_HOST"], None,
                                 "coder_extra_envs sets DB_HOST, which the chart sets"),
    "override-of-a-built-key": ({"coder_values_overrides": {"postgres": {"host": "elsewhere"}}},
                                ["coder_values_overrides.postgres"], None,
                                "coder_values_overrides replaces the built postgres block"),
    "helm-binary-missing": ({"coder_helm_binary": "/nonexistent/helm"},
                            ["coder_helm_binary", "set coder_helm_binary to its full path"], None,
                            "coder_helm_binary does not exist"),
    "kubeconfig-missing": ({"coder_kubeconfig": "/nonexistent/kubeconfig"},
                           ["coder_kubeconfig", "/nonexistent/kubeconfig does not exist"], None,
                           "coder_kubeconfig does not exist"),
    "kubeconfig-unreadable": ({"coder_kubeconfig": "@GARBAGE@"}, ["coder_kubeconfig", "is not a kubeconfig file"], None,
                              "coder_kubeconfig is not a kubeconfig (garbage bytes)"),
    "standby-server": ({"coder_db_port": int(ENV["CODER_TEST_PG_STANDBY_PORT"])}, ["(standby)"], None,
                       "the server is a streaming standby"),
    "latency-above-threshold": ({"preflight_latency_fail": True, "preflight_latency_threshold_ms": 0.0001},
                                ["preflight_latency_threshold_ms"], None, "latency above a fail threshold"),
    "timeout-out-of-range": ({"coder_helm_timeout": 5}, ["coder_helm_timeout must be between 10 and 86400"], None,
                             "coder_helm_timeout 5"),
    "release-name-invalid": ({"coder_release_name": "Coder_Prod"}, ["coder_release_name"], None,
                             "coder_release_name not a DNS-1123 name"),
    # The PostgreSQL list.
    "pg-host-does-not-resolve": ({"coder_db_host": "no-such-host.invalid"},
                                 _pg_fail("dns", "does not resolve"), None, "coder_db_host does not resolve"),
    "pg-port-closed": ({"coder_db_port": "@CLOSED@"}, _pg_fail("refused"), None, "nothing listens on the port"),
    "pg-never-answers": ({"coder_db_port": "@SILENT@"}, _pg_fail("timeout", "connect_timeout (10 s)"), None,
                         "a TCP listener that accepts and never speaks; the default connect_timeout applies"),
    "pg-wrong-password": ({}, _pg_fail("auth_failed", "Check coder_db_user and coder_db_password"), "wrong",
                          "a wrong password"),
    "pg-password-like-a-dsn": ({}, _pg_fail("auth_failed"), "dsn",
                               "a wrong password that looks like DSN keywords (host=... dbname=...)"),
    "pg-password-trailing-newline": ({}, ["coder_db_password has leading or trailing white space"], "padded",
                                     "the right password with a trailing newline"),
    "pg-password-trailing-space": ({}, ["coder_db_password has leading or trailing white space"], "spaced",
                                   "the right password with a trailing space"),
    "pg-hba-rejects": ({**MTLS, "coder_db_ssl_mode": "disable", "coder_db_ssl_ca_file": ""},
                       _pg_fail("hba_rejected"), "wrong", "pg_hba.conf rejects the user without TLS"),
    "pg-database-missing": ({"coder_db_name": "no_such_database"}, _pg_fail("database_missing"), None,
                            "the database does not exist"),
    "pg-host-name-mismatch": ({"coder_db_host": "vm"}, _pg_fail("ssl_verify_failed"), None,
                              "verify-full with host name `vm` (127.0.0.1, not in the certificate)"),
    "pg-root-ca-missing": ({"coder_db_ssl_ca_file": "/nonexistent/ca.crt"},
                           _pg_fail("ssl_verify_failed", "Set coder_db_ssl_ca_file", "coder_db_ssl_* variables"), None,
                           "the root CA file does not exist"),
    "pg-client-cert-required": ({**MTLS}, _pg_fail("client_cert_required"), "wrong",
                                "the server demands a client certificate, none given"),
    "pg-client-cert-wrong-ca": ({**MTLS, "coder_db_ssl_cert_file": ENV["CODER_TEST_PG_ROGUE_CLIENT_CERT"],
                                 "coder_db_ssl_key_file": ENV["CODER_TEST_PG_ROGUE_CLIENT_KEY"]},
                                _pg_fail("client_cert_required"), None,
                                "a client certificate signed by a CA the server does not trust"),
}

# Cases the playbook does not handle as the checklist wants yet: strict xfail, so that the fix
# turns them into passes (and the report shows them as known gaps until then).
GAPS = {}


def _superuser():
    conn = psycopg2.connect(host=MAIN["SOCKET_DIR"], port=MAIN["PORT"], user="postgres", dbname="postgres")
    conn.autocommit = True
    return conn


def _write_private(path, data):
    fd = os.open(path, os.O_WRONLY | os.O_CREAT | os.O_TRUNC, 0o600)
    os.write(fd, data.encode())
    os.close(fd)


class Silent:
    """A real TCP listener on loopback that accepts and never says a word (an address that never
    answers: libpq would wait forever without a connect_timeout)."""

    def __init__(self):
        self.sock = socket.socket()
        self.sock.bind(("127.0.0.1", 0))
        self.sock.listen(16)
        self.port = self.sock.getsockname()[1]
        self.held = []
        threading.Thread(target=self._accept, daemon=True).start()

    def _accept(self):
        while True:
            try:
                conn, dummy = self.sock.accept()
            except OSError:
                return
            self.held.append(conn)

    def close(self):
        for conn in self.held:
            conn.close()
        self.sock.close()


def _closed_port():
    s = socket.socket()
    s.bind(("127.0.0.1", 0))
    port = s.getsockname()[1]
    s.close()  # nothing listens there any more
    return port


@pytest.fixture(scope="session")
def bed():
    """An empty namespace and a login role of the test's own (random password), so that the
    database snapshot sees only what these runs did, whatever else uses the shared server."""
    ns = new_namespace("coderops-badinput")
    role = f"coderops_bad_{uuid.uuid4().hex[:8]}"
    password = secrets.token_urlsafe(18)
    conn = _superuser()
    with conn.cursor() as cur:
        cur.execute(f'CREATE ROLE "{role}" LOGIN PASSWORD %s', (password,))
    root = Path(tempfile.mkdtemp(prefix="coderops-it-bad-"))
    files = {"right": root / "right", "wrong": root / "wrong", "dsn": root / "dsn", "padded": root / "padded",
             "spaced": root / "spaced", "garbage": root / "kubeconfig-garbage"}
    _write_private(files["right"], password)
    _write_private(files["wrong"], password[::-1] + "x")
    _write_private(files["dsn"], f"x' host=no-such-host.invalid dbname=postgres user=postgres {password[:4]}")
    _write_private(files["padded"], password + "\n")
    _write_private(files["spaced"], password + " ")
    _write_private(files["garbage"], "\x00\x01 not: [a kubeconfig")
    silent = Silent()
    yield {"ns": ns, "role": role, "conn": conn, "files": files, "silent": silent}
    silent.close()
    delete_namespace(ns)
    with conn.cursor() as cur:
        cur.execute(f'DROP ROLE IF EXISTS "{role}"')
    conn.close()
    for path in files.values():
        path.unlink(missing_ok=True)
    root.rmdir()


# tests/deploy/realnode.py, test_upgrade_guard.py and test_db_restore.py: databases of their cases' own.
OTHER_TESTS_DATABASES = "^coderops_(real|guard|restore)_"


def snapshot(bed):
    """Everything a refused run must leave as it was."""
    ns = bed["ns"]
    with bed["conn"].cursor() as cur:
        cur.execute("SELECT rolname, rolsuper, rolcanlogin, rolconnlimit, rolvaliduntil::text, "
                    "md5(coalesce(rolpassword, '')) FROM pg_authid WHERE rolname = ANY(%s) ORDER BY 1",
                    ([bed["role"], "coder", "coder_mtls"],))
        roles = cur.fetchall()
        # Not the databases other tests make and drop meanwhile (one per real-pod and guard case).
        cur.execute("SELECT datname, pg_get_userbyid(datdba) FROM pg_database WHERE datname !~ %s ORDER BY 1",
                    (OTHER_TESTS_DATABASES,))
        databases = cur.fetchall()
        cur.execute("SELECT pid, usename, application_name, backend_start::text FROM pg_stat_activity "
                    "WHERE usename = ANY(%s) ORDER BY 1", ([bed["role"]],))
        sessions = cur.fetchall()
    return {
        "history": history("helm3", ns),
        "secrets": sorted((s["metadata"]["name"], s["metadata"]["resourceVersion"])
                          for s in kubectl_json("get", "secrets", "-n", ns)["items"]),
        "leases": [item["metadata"]["name"] for item in kubectl_json("get", "leases", "-n", ns)["items"]],
        "roles": roles, "databases": databases, "sessions": sessions,
    }


def _recent_sessions(bed, since):
    """Sessions of the users these runs log in as that started during the run and are still open."""
    with bed["conn"].cursor() as cur:
        # Not the Coder stand-in's pods on the real node, which log in as coder_mtls meanwhile.
        cur.execute("SELECT count(*) FROM pg_stat_activity WHERE usename = ANY(%s) "
                    "AND backend_start >= %s::timestamptz AND application_name <> 'coder-standin'",
                    ([bed["role"], "coder_mtls"], since))
        return cur.fetchone()[0]


def _resolve(value, bed):
    if value == "@CLOSED@":
        return _closed_port()
    if value == "@SILENT@":
        return bed["silent"].port
    if value == "@GARBAGE@":
        return str(bed["files"]["garbage"])
    return value


def _now(bed):
    with bed["conn"].cursor() as cur:
        cur.execute("SELECT now()::text")
        return cur.fetchone()[0]


@pytest.mark.reliability(section="Bad input", case="{case}",
                         done=lambda params: f"deploy_coder.yml with {CASES[params['case']][3]}",
                         expected="refused before any change; the message names the field and the fix; "
                                  "release history, Secrets, Leases, DB roles and pg_stat_activity unchanged")
@pytest.mark.parametrize("case", [pytest.param(c, marks=pytest.mark.xfail(reason=GAPS[c], strict=True))
                                  if c in GAPS else c for c in sorted(CASES)])
def test_bad_input_is_refused_before_anything_changes(case, bed, observe):
    extra, expected, password, dummy = CASES[case]
    extra = {"coder_create_namespace": False, "coder_db_user": bed["role"],
             **{k: _resolve(v, bed) for k, v in extra.items()}}
    before = snapshot(bed)
    since = _now(bed)
    res = playbook("deploy_coder", "helm3", bed["ns"], extra, tag=f"bad-{case}",
                   extra_env={"CODER_TEST_PG_PASSWORD_FILE": str(bed["files"][password or "right"])})
    assert res.rc != 0, res.output[-3000:]
    for text in expected:
        assert text in res.output, f"{text!r} not in:\n{res.output[-4000:]}"
    assert res.recap["changed"] == 0
    after = snapshot(bed)
    for key in before:
        assert after[key] == before[key], f"{key} changed: {before[key]!r} -> {after[key]!r}"
    assert not after["secrets"] and after["history"] == []
    assert _recent_sessions(bed, since) == 0, "a session of the refused run is still open"
    message = next((line.strip() for line in res.output.splitlines() if expected[0] in line), expected[0])
    message = message.removeprefix("[ERROR]: ").removeprefix("Task failed: ").removeprefix("Action failed: ")
    observe(f"rc={res.rc}, changed=0 in {res.duration:.0f} s; said: {message[:220]}; history, Secrets, "
            f"Leases, {len(after['roles'])} roles, databases and sessions unchanged")


@pytest.mark.reliability(section="Bad input", case="namespace-missing",
                         done="deploy_coder.yml into a namespace that does not exist, coder_create_namespace false",
                         expected="refused, naming coder_create_namespace; nothing created")
def test_namespace_missing(bed, observe):
    empty_namespace = bed["ns"]
    res = playbook("deploy_coder", "helm3", f"{empty_namespace}-absent", {"coder_create_namespace": False},
                   tag="bad-namespace-missing")
    assert res.rc != 0 and "does not exist; create it, or set coder_create_namespace: true" in res.output
    assert kubectl("get", "namespace", f"{empty_namespace}-absent", check=False).returncode != 0
    observe(f"rc={res.rc}: 'does not exist; create it, or set coder_create_namespace: true'; no namespace made")


@pytest.mark.reliability(section="Bad input", case="rbac-secret-write-forbidden",
                         done="deploy_coder.yml with a kubeconfig whose user may read but not write Secrets",
                         expected="a clear 403 naming the missing RBAC verb; no Secret, no release")
def test_secret_write_forbidden_is_a_clear_403(bed, observe):
    """The kubeconfig's user may read but not write Secrets: a clear 403, nothing half-applied."""
    ns = bed["ns"]
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
    before = snapshot(bed)
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
    after = snapshot(bed)
    assert after["roles"] == before["roles"] and after["sessions"] == before["sessions"]
    observe(f"rc={res.rc}: 'HTTP 403', 'lacks an RBAC verb'; no Secret written, no release, DB unchanged")
