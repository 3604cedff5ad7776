# Copyright (c) 2026, coderops maintainers
# GNU General Public License v3.0+ (see LICENSE or https://www.gnu.org/licenses/gpl-3.0.txt)
# SPDX-License-Identifier: GPL-3.0-or-later
"""What the tests on the test bed's real node share (docs/testbed.md, "The real node"): a place for
a case (a namespace whose pods go to the real node, a database of its own), and the checks that
Coder's pods run there for real."""

from __future__ import annotations

import contextlib
import ipaddress
import json
import uuid

import pytest
from conftest import delete_namespace, new_namespace
from helpers import ENV, REPO, kubectl, kubectl_json, pg_superuser, wait_for
from leak_scan import make_canary

SKIP = pytest.mark.skipif(not ENV.get("CODER_TEST_REAL_NODE"),
                          reason="the test bed runs without its real node (CODER_TESTBED_NODE=none)")

NODE = ENV.get("CODER_TEST_REAL_NODE")
POD_DB_HOST = ENV.get("CODER_TEST_POD_DB_HOST")
MTLS_USER = ENV["CODER_TEST_PG_MAIN_MTLS_USER"]
V2 = {"coder_chart_generation": "v2", "coder_chart_ref": str(REPO / "tests" / "charts" / "coder-v2")}
MTLS = {"coder_db_user": MTLS_USER, "coder_db_password": "",
        "coder_db_ssl_cert_file": ENV["CODER_TEST_PG_MAIN_CLIENT_CERT"],
        "coder_db_ssl_key_file": ENV["CODER_TEST_PG_MAIN_CLIENT_KEY"]}
NO_CA = {"coder_db_ssl_mode": "require", "coder_db_ssl_ca_file": ""}


def query(database, sql, args=()):
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


@contextlib.contextmanager
def places():
    """For a fixture: make(owner=..., password_role=...) -> Place; every Place removed after."""
    made = []

    def make(owner=ENV["CODER_TEST_PG_MAIN_USER"], password_role=False):
        made.append(Place(owner, password_role))
        return made[-1]

    try:
        yield make
    finally:
        for place in made:
            place.remove()


def coder_pods(namespace):
    """The running Coder pods (not the ones on their way out)."""
    pods = kubectl_json("get", "pods", "-n", namespace)["items"]
    return [p for p in pods if not p["metadata"].get("deletionTimestamp") and p["status"].get("phase") == "Running"]


def ready(pod):
    return any(c["type"] == "Ready" and c["status"] == "True" for c in pod["status"].get("conditions", []))


def wait_ready(namespace, replicas=1, timeout=60):
    """Until exactly `replicas` Coder pods run, all Ready (after a rollback, the surge pods gone)."""
    wait_for(lambda: len(pods := coder_pods(namespace)) == replicas and all(ready(q) for q in pods),
             timeout=timeout, what=f"{replicas} Coder pod(s) Ready")


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


def _whereabouts(place):
    """For a failed check: every pod of the namespace (those on their way out too) and every
    session on the database, with when it started."""
    items = kubectl_json("get", "pods", "-n", place.namespace)["items"]
    pods = [(p["metadata"]["name"], p["status"].get("podIP"), p["status"].get("phase"),
             p["metadata"].get("deletionTimestamp")) for p in items]
    sessions = query("postgres", "SELECT host(client_addr), application_name, state, backend_start::text"
                                 " FROM pg_stat_activity WHERE datname = %s ORDER BY backend_start", (place.database,))
    return f"pods {pods}, sessions {sessions}"


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
        assert query(place.database, "SELECT version > 0, dirty FROM schema_migrations") == [(True, False)]
    else:
        assert query(place.database, "SELECT count(*) > 0 FROM migration_cursor") == [(True,)]
    # The connections of the pods (the idle pool they hold open), from their own addresses. A gone
    # pod's may stay a few seconds: under load its FIN can be lost with its network, and the server
    # then notices by TCP keepalive (the test bed's servers: within 11 s, testbed/bed/postgres.py).
    def sessions():
        return dict(query("postgres", "SELECT host(client_addr), count(*) FROM pg_stat_activity"
                                      " WHERE datname = %s AND application_name = 'coder-standin' GROUP BY 1",
                          (place.database,)))

    try:
        per_pod = wait_for(lambda: (found := sessions()) and set(found) == ips and found, timeout=20, interval=0.5,
                           what="sessions from the running pods only")
    except AssertionError:
        per_pod = sessions()
        raise AssertionError(f"connections from {per_pod}, pods at {ips}; {_whereabouts(place)}") from None
    for pod in pods:
        assert 1 <= per_pod[pod["status"]["podIP"]] <= pool_env(pod, generation), (per_pod, pool_env(pod, generation))
    info = buildinfo(place.namespace)
    assert info["version"] == f"v{version}" and info["standin"]["ready"] is True, info


