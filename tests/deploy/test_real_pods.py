# Copyright (c) 2026, coderops maintainers
# GNU General Public License v3.0+ (see LICENSE or https://www.gnu.org/licenses/gpl-3.0.txt)
# SPDX-License-Identifier: GPL-3.0-or-later
"""Real pods (issue 14): playbooks/deploy_coder.yml with helm 3 and helm 4 puts the Coder stand-in
(tests/images/coder-standin, which parses the database settings with Coder's own driver) on the
test bed's real node, and the pods become Ready only because they logged in to PostgreSQL and
migrated: the test finds the migrations in the database, the pods' connections in
pg_stat_activity (no more per pod than the pool the values give it) and the version at
/api/v2/buildinfo through the API server's service proxy.

Each case gets a namespace whose pods go to the real node (its annotations) and a database of its
own, so that cases of both Coder generations run side by side. The pods reach PostgreSQL at the
pod bridge's address on this machine (CODER_TEST_POD_DB_HOST), which the server certificate names.
A wrong password in the Secret leaves the new pods crash looping: the run fails fast, quotes the
stand-in's log line, and the rollback brings back a revision whose pods are Ready for real.
"""

from __future__ import annotations

import ipaddress
import json
import uuid

import pytest
from conftest import HELMS, delete_namespace, new_namespace
from helpers import ENV, REPO, history, kubectl, kubectl_json, pg_superuser, playbook, wait_for
from leak_scan import make_canary

pytestmark = pytest.mark.skipif(not ENV.get("CODER_TEST_REAL_NODE"),
                                reason="the test bed runs without its real node (CODER_TESTBED_NODE=none)")

NODE = ENV.get("CODER_TEST_REAL_NODE")
POD_DB_HOST = ENV.get("CODER_TEST_POD_DB_HOST")
MTLS_USER = ENV["CODER_TEST_PG_MAIN_MTLS_USER"]
V2 = {"coder_chart_generation": "v2", "coder_chart_ref": str(REPO / "tests" / "charts" / "coder-v2")}
MTLS = {"coder_db_user": MTLS_USER, "coder_db_password": "",
        "coder_db_ssl_cert_file": ENV["CODER_TEST_PG_MAIN_CLIENT_CERT"],
        "coder_db_ssl_key_file": ENV["CODER_TEST_PG_MAIN_CLIENT_KEY"]}
NO_CA = {"coder_db_ssl_mode": "require", "coder_db_ssl_ca_file": ""}


def _query(database, sql, args=()):
    conn = pg_superuser(database)
    try:
        with conn.cursor() as cur:
            cur.execute(sql, args)
            return cur.fetchall()
    finally:
        conn.close()


class Place:
    """A namespace whose pods go to the real node, a database of its own, and (for the URL case)
    a login role whose password holds URL-special characters; all removed afterwards."""

    def __init__(self, owner, password_role=False):
        self.namespace = new_namespace("coderops-real")
        for key, value in json.loads(ENV["CODER_TEST_REAL_NODE_ANNOTATIONS"]).items():
            kubectl("annotate", "namespace", self.namespace, f"{key}={value}")
        self.database = f"coderops_real_{uuid.uuid4().hex[:8]}"
        self.role = self.password = None
        conn = pg_superuser()
        with conn.cursor() as cur:
            if password_role:
                self.role, self.password = f"coderops_real_{uuid.uuid4().hex[:8]}", make_canary()
                cur.execute(f'CREATE ROLE "{self.role}" LOGIN PASSWORD %s', (self.password,))
                owner = self.role
            cur.execute(f'CREATE DATABASE "{self.database}" OWNER "{owner}"')
        conn.close()

    def vars(self):
        extra = {"coder_db_host": POD_DB_HOST, "coder_db_name": self.database, "coder_health_check": True}
        if self.role:
            extra.update(coder_db_user=self.role, coder_db_password=self.password)
        return extra

    def remove(self):
        delete_namespace(self.namespace)
        conn = pg_superuser()
        with conn.cursor() as cur:
            cur.execute(f'DROP DATABASE IF EXISTS "{self.database}" WITH (FORCE)')
            if self.role:
                cur.execute(f'DROP ROLE IF EXISTS "{self.role}"')
        conn.close()


@pytest.fixture
def place(request):
    made = []

    def make(owner=ENV["CODER_TEST_PG_MAIN_USER"], password_role=False):
        made.append(Place(owner, password_role))
        return made[-1]

    yield make
    for p in made:
        p.remove()


def coder_pods(namespace):
    """The running Coder pods (not the ones on their way out)."""
    pods = kubectl_json("get", "pods", "-n", namespace)["items"]
    return [p for p in pods if not p["metadata"].get("deletionTimestamp") and p["status"].get("phase") == "Running"]


def ready(pod):
    return any(c["type"] == "Ready" and c["status"] == "True" for c in pod["status"].get("conditions", []))


def pool_env(pod, generation):
    env = {e["name"]: e.get("value") for e in pod["spec"]["containers"][0].get("env", [])}
    return int(env["CODER_MAX_DB_CONNECTIONS" if generation == "v1" else "CODER_PG_CONN_MAX_OPEN"])


def buildinfo(namespace):
    """/api/v2/buildinfo of the release's Service, through the API server's service proxy."""
    service = kubectl_json("get", "services", "-n", namespace)["items"][0]
    port = service["spec"]["ports"][0]["port"]
    proc = kubectl("get", "--raw", f"/api/v1/namespaces/{namespace}/services/{service['metadata']['name']}:{port}"
                   "/proxy/api/v2/buildinfo")
    return json.loads(proc.stdout)


def check_running_for_real(place, generation, version, replicas=1):
    """The pods run on the real node, migrated the database, hold their idle pool within the budget
    and report the version."""
    pods = coder_pods(place.namespace)
    assert len(pods) == replicas and all(ready(p) for p in pods), [p["metadata"]["name"] for p in pods]
    assert {p["spec"]["nodeName"] for p in pods} == {NODE}
    subnet = ipaddress.ip_network(ENV["CODER_TEST_POD_SUBNET"])
    ips = {p["status"]["podIP"] for p in pods}
    assert all(ipaddress.ip_address(ip) in subnet for ip in ips), ips
    if generation == "v2":
        assert _query(place.database, "SELECT version > 0, dirty FROM schema_migrations") == [(True, False)]
    else:
        assert _query(place.database, "SELECT count(*) > 0 FROM migration_cursor") == [(True,)]
    # The connections of the pods (the idle pool they hold open), from their own addresses.
    rows = _query("postgres", "SELECT host(client_addr), count(*) FROM pg_stat_activity"
                  " WHERE datname = %s AND application_name = 'coder-standin' GROUP BY 1", (place.database,))
    per_pod = dict(rows)
    assert set(per_pod) == ips, f"connections from {per_pod}, pods at {ips}"
    for pod in pods:
        assert 1 <= per_pod[pod["status"]["podIP"]] <= pool_env(pod, generation), (per_pod, pool_env(pod, generation))
    info = buildinfo(place.namespace)
    assert info["version"] == f"v{version}" and info["standin"]["ready"] is True, info


CASES = {
    # v1: the password as env (sslmode require, no CA), as a file (verify-full), a client certificate.
    "v1-password-env": ({**NO_CA}, {}),
    "v1-password-file-verify-full": ({"coder_db_no_password_env": True, "coder_replicas": 2}, {}),
    "v1-client-certificate": ({**MTLS}, {"owner": MTLS_USER}),
    # v2: a URL whose password holds URL-special characters, a CA, a client certificate (the key
    # must be readable by uid 1000: lib/pq refuses it otherwise).
    "v2-url-special-password": ({**V2, **NO_CA}, {"password_role": True}),
    "v2-ca-verify-full": ({**V2}, {}),
    "v2-client-certificate": ({**V2, **MTLS}, {"owner": MTLS_USER}),
}


@pytest.mark.parametrize("binary", HELMS)
@pytest.mark.parametrize("case", list(CASES))
def test_pods_log_in_and_migrate_for_real(case, binary, place):
    extra, how = CASES[case]
    p = place(**how)
    res = playbook("deploy_coder", binary, p.namespace, {**extra, **p.vars()}, tag=f"real-{case}-{binary}")
    assert res.rc == 0, res.output[-4000:]
    generation = extra.get("coder_chart_generation", "v1")
    version = "2.31.0" if generation == "v2" else "1.44.0"
    assert "health check passed" in res.output, res.output[-4000:]
    check_running_for_real(p, generation, version, replicas=extra.get("coder_replicas", 1))
    if p.password:
        assert p.password not in res.output


@pytest.mark.parametrize("binary", HELMS)
def test_a_wrong_password_fails_fast_quotes_the_log_and_rolls_back_to_pods_that_run(binary, place):
    p = place()
    base = {**V2, **p.vars()}
    res = playbook("deploy_coder", binary, p.namespace, base, tag=f"real-wrong-pw-install-{binary}")
    assert res.rc == 0, res.output[-4000:]
    # A new Secret with a wrong password (the controller does not check it: preflight off), so
    # that revision 1 still names the good one.
    wrong = f"wrong-{uuid.uuid4().hex}"
    res = playbook("deploy_coder", binary, p.namespace,
                   {**base, "coder_db_password": wrong, "coder_db_url_secret": "coder-db-url-new",
                    "preflight_check_database": False, "helm_release_fail_fast_grace": 5},
                   tag=f"real-wrong-pw-upgrade-{binary}")
    assert res.rc != 0
    assert "FAILED (fail_fast)" in res.output, res.output[-4000:]
    assert 'log: "' in res.output and "password authentication failed" in res.output, res.output[-4000:]
    assert wrong not in res.output
    revisions = history(binary, p.namespace)
    assert [r["status"] for r in revisions][-2:] == ["failed", "deployed"], revisions
    assert "Rollback to 1" in revisions[-1]["description"], revisions
    wait_for(lambda: len(coder_pods(p.namespace)) == 1 and all(ready(q) for q in coder_pods(p.namespace)),
             timeout=60, what="the rolled back pod Ready")
    check_running_for_real(p, "v2", "2.31.0")


@pytest.mark.parametrize("binary", HELMS)
def test_the_health_gate_fails_an_upgrade_coder_does_not_confirm(binary, place):
    # helm says ready, but Coder reports another version than the one asked for: a failed upgrade,
    # rolled back, and the gate then confirms the old revision.
    p = place()
    base = {**V2, **p.vars()}
    res = playbook("deploy_coder", binary, p.namespace, base, tag=f"real-gate-install-{binary}")
    assert res.rc == 0, res.output[-4000:]
    res = playbook("deploy_coder", binary, p.namespace,
                   {**base, "coder_replicas": 2, "coder_health_check_version": "9.9.9",
                    "coder_health_check_timeout": 6}, tag=f"real-gate-upgrade-{binary}")
    assert res.rc != 0
    assert "FAILED (health_gate)" in res.output, res.output[-4000:]
    assert "/api/v2/buildinfo reports v2.31.0, not v9.9.9" in res.output
    assert "after the rollback Coder answers v2.31.0 at coder:80" in res.output, res.output[-4000:]
    revisions = history(binary, p.namespace)
    # helm itself saw revision 2 succeed (superseded now); revision 3 is the rollback to 1.
    assert [r["status"] for r in revisions] == ["superseded", "superseded", "deployed"], revisions
    assert "Rollback to 1" in revisions[-1]["description"], revisions
    wait_for(lambda: len(coder_pods(p.namespace)) == 1, timeout=60, what="the surge pod gone")
    check_running_for_real(p, "v2", "2.31.0")
