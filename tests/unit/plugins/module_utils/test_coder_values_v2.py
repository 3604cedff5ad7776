# Copyright (c) 2025, coderops maintainers
# GNU General Public License v3.0+ (see LICENSE or https://www.gnu.org/licenses/gpl-3.0.txt)
# SPDX-License-Identifier: GPL-3.0-or-later
"""The v2 values builder, table-driven against every row of the chart contract
(/work/shared/coder-chart-contract.md, "Coder v2"), the refusals both ways, the v2 budget with
its per-replica overhead, and the URL the role side builds from connection_url_options."""

from __future__ import annotations

import copy

import pytest
from ansible_collections.coderops.deploy.plugins.module_utils._budget import connection_budget
from ansible_collections.coderops.deploy.plugins.module_utils._coder_values import (
    build_values,
    build_values_and_url,
    render_yaml,
)
from ansible_collections.coderops.deploy.plugins.module_utils._inputs import InputError
from ansible_collections.coderops.deploy.plugins.module_utils._pg_url import pg_url

BASE = {
    "chart_generation": "v2",
    "host": "db.example.internal",
    "port": 5432,
    "user": "coder",
    "database": "coder",
    "url_secret": "coder-db-url",
}

FACTS = {
    "changed": False,
    "port": 5433,
    "user": "coder_fact",
    "database": "coder_fact_db",
    "max_connections": 100,
    "superuser_reserved_connections": 3,
    "reserved_connections": 0,
    "connections_in_use": {"total": 5, "coder_user": 1, "others": 4},
    "in_recovery": False,
}

ROOT = {"name": "coder-db-ca", "key": "ca.crt"}
CERT = {"name": "coder-db-client", "key": "client.crt"}
KEY = {"name": "coder-db-client", "key": "client.key"}


def build(**update):
    params = copy.deepcopy(BASE)
    params.update(update)
    return build_values_and_url(params)


def env_of(values):
    return {e["name"]: e for e in values["coder"]["env"]}


def at(values, path):
    node = values
    for part in path:
        node = node[part]
    return node


# One row per line of the contract's v2 part: (update, path in the values, expected value).
CONTRACT_ROWS = [
    ({}, ("coder", "env", 0),
     {"name": "CODER_PG_CONNECTION_URL",
      "valueFrom": {"secretKeyRef": {"name": "coder-db-url", "key": "url"}}}),
    ({"connector": "awsiamrds"}, ("coder", "env", 1), {"name": "CODER_PG_AUTH", "value": "awsiamrds"}),
    ({}, ("coder", "env", 1), {"name": "CODER_PG_CONN_MAX_OPEN", "value": "10"}),
    ({"max_db_connections": 25}, ("coder", "env", 1), {"name": "CODER_PG_CONN_MAX_OPEN", "value": "25"}),
    ({}, ("coder", "env", 2), {"name": "CODER_PG_CONN_MAX_IDLE", "value": "auto"}),
    ({"max_idle_connections": 4}, ("coder", "env", 2), {"name": "CODER_PG_CONN_MAX_IDLE", "value": "4"}),
    ({}, ("coder", "replicaCount"), 1),
    ({"replicas": 3}, ("coder", "replicaCount"), 3),
    ({"ssl_mode": "verify-full", "ssl_root_cert_secret": ROOT}, ("coder", "certs", "secrets"),
     [{"name": "coder-db-ca", "key": "ca.crt"}]),
    ({"ssl_cert_secret": CERT, "ssl_key_secret": KEY}, ("coder", "volumes"),
     [{"name": "pg-client-cert",
       "secret": {"secretName": "coder-db-client",
                  "items": [{"key": "client.crt", "path": "tls.crt"}]}},
      {"name": "pg-client-key",
       "secret": {"secretName": "coder-db-client", "defaultMode": 0o640,
                  "items": [{"key": "client.key", "path": "tls.key"}]}}]),
    ({"ssl_cert_secret": CERT, "ssl_key_secret": KEY}, ("coder", "volumeMounts"),
     [{"name": "pg-client-cert", "mountPath": "/etc/coder/pg/client-cert", "readOnly": True},
      {"name": "pg-client-key", "mountPath": "/etc/coder/pg/client-key", "readOnly": True}]),
    ({"service": {"type": "ClusterIP"}}, ("coder", "service"), {"type": "ClusterIP"}),
    ({"service": {"type": "LoadBalancer", "external_traffic_policy": "Local",
                  "load_balancer_ip": "10.0.0.9"}}, ("coder", "service"),
     {"type": "LoadBalancer", "externalTrafficPolicy": "Local", "loadBalancerIP": "10.0.0.9"}),
    ({"ingress": {"enable": True, "host": "coder.example.com", "class_name": "nginx",
                  "tls_enable": True}}, ("coder", "ingress"),
     {"enable": True, "host": "coder.example.com", "className": "nginx", "tls": {"enable": True}}),
    ({"connector": "awsiamrds", "service_account_annotations": {"eks.amazonaws.com/role-arn": "arn:x"}},
     ("coder", "serviceAccount"), {"annotations": {"eks.amazonaws.com/role-arn": "arn:x"}}),
    ({"extra_envs": [{"name": "CODER_ACCESS_URL", "value": "https://coder.example.com"}]},
     ("coder", "env", 3), {"name": "CODER_ACCESS_URL", "value": "https://coder.example.com"}),
]


@pytest.mark.parametrize("update,path,expected", CONTRACT_ROWS)
def test_contract_rows(update, path, expected):
    values, _budget, _url = build(**update)
    assert at(values, path) == expected


def test_minimal_values_exactly():
    values, budget, url = build()
    assert values == {"coder": {
        "replicaCount": 1,
        "env": [
            {"name": "CODER_PG_CONNECTION_URL",
             "valueFrom": {"secretKeyRef": {"name": "coder-db-url", "key": "url"}}},
            {"name": "CODER_PG_CONN_MAX_OPEN", "value": "10"},
            {"name": "CODER_PG_CONN_MAX_IDLE", "value": "auto"},
        ],
    }}
    assert budget is None
    assert url == {"host": "db.example.internal", "port": 5432, "user": "coder",
                   "database": "coder", "ssl_mode": "require", "search_path": None, "params": {},
                   "password_required": True}


def test_no_pg_auth_for_password_login_and_no_v1_keys():
    values, _budget, _url = build()
    assert "CODER_PG_AUTH" not in env_of(values)
    assert set(values) == {"coder"}


def test_url_options_name_the_mounted_files_and_search_path():
    values, _budget, url = build(ssl_mode="verify-full", ssl_root_cert_secret=ROOT,
                                 ssl_cert_secret=CERT, ssl_key_secret=KEY,
                                 search_path="coder_schema")
    assert url["params"] == {"sslrootcert": "/etc/ssl/certs/coder-db-ca.crt",
                             "sslcert": "/etc/coder/pg/client-cert/tls.crt",
                             "sslkey": "/etc/coder/pg/client-key/tls.key"}
    assert url["search_path"] == "coder_schema" and url["ssl_mode"] == "verify-full"
    # The values mount exactly those files (the chart mounts certs.secrets at /etc/ssl/certs/<name>.crt).
    mounts = {m["name"]: m["mountPath"] for m in values["coder"]["volumeMounts"]}
    items = {v["name"]: v["secret"]["items"][0]["path"] for v in values["coder"]["volumes"]}
    assert f"{mounts['pg-client-cert']}/{items['pg-client-cert']}" == url["params"]["sslcert"]
    assert f"{mounts['pg-client-key']}/{items['pg-client-key']}" == url["params"]["sslkey"]
    assert values["coder"]["certs"]["secrets"][0]["name"] == "coder-db-ca"
    # The schema is a URL parameter, never a value.
    assert "coder_schema" not in render_yaml(values)


def test_url_built_from_the_options():
    """What the role side does: coder_pg_url(options, password, ssl_mode, search_path, params)."""
    _values, _budget, o = build(user="co der", ssl_mode="verify-full", ssl_root_cert_secret=ROOT,
                                ssl_cert_secret=CERT, ssl_key_secret=KEY, search_path="s1")
    url = pg_url(o["host"], o["port"], o["user"], o["database"], password="p@ss:w/rd%",
                 ssl_mode=o["ssl_mode"], search_path=o["search_path"], params=o["params"])
    assert url == ("postgres://co%20der:p%40ss%3Aw%2Frd%25@db.example.internal:5432/coder"
                   "?sslmode=verify-full&search_path=s1"
                   "&sslcert=%2Fetc%2Fcoder%2Fpg%2Fclient-cert%2Ftls.crt"
                   "&sslkey=%2Fetc%2Fcoder%2Fpg%2Fclient-key%2Ftls.key"
                   "&sslrootcert=%2Fetc%2Fssl%2Fcerts%2Fcoder-db-ca.crt")


def test_awsiamrds_url_has_no_password():
    values, _budget, o = build(connector="awsiamrds")
    assert o["password_required"] is False
    assert env_of(values)["CODER_PG_AUTH"]["value"] == "awsiamrds"


def test_facts_fill_port_user_database_and_v2_budget():
    values, budget, url = build(pg_facts=FACTS, port=None, user=None, database=None, replicas=3)
    assert (url["port"], url["user"], url["database"]) == (5433, "coder_fact", "coder_fact_db")
    # 3 replicas + 1 surge pod, each 10 (pool) + 5 (assumed overhead).
    assert budget["needed_peak"] == 60 and budget["needed_steady"] == 45
    assert budget["inputs"]["extra_connections_per_replica"] == 5
    assert budget == connection_budget(100, 3, held_by_others=4, replicas=3, max_db_connections=10,
                                       extra_connections_per_replica=5)
    assert values["coder"]["replicaCount"] == 3


def test_overhead_is_overridable_and_refused_when_it_does_not_fit():
    _values, budget, _url = build(pg_facts=FACTS, replicas=3, extra_connections_per_replica=0)
    assert budget["needed_peak"] == 40 and "extra_connections_per_replica" not in budget["inputs"]
    with pytest.raises(InputError) as err:
        build(pg_facts=FACTS, replicas=3, max_db_connections=10, extra_connections_per_replica=15)
    assert err.value.field == "max_db_connections"
    assert "extra_connections_per_replica 15" in str(err.value)
    # 93 available // 4 pods = 23 per pod, minus the overhead 15 = a pool of 8.
    assert "set max_db_connections to 8 or less" in str(err.value)


def test_v1_budget_unchanged_by_the_new_option():
    v1 = {"chart_generation": "v1", "host": "h", "port": 5432, "user": "u", "database": "d",
          "pg_facts": FACTS, "replicas": 2}
    _values, before = build_values(v1)
    _values, after = build_values(dict(v1, extra_connections_per_replica=0))
    assert before == after and before["needed_peak"] == 90
    _values, more = build_values(dict(v1, extra_connections_per_replica=1))
    assert more["needed_peak"] == 93 and more["headroom"] == 0


REFUSALS = [
    # v1-only options on v2.
    ({"password_secret": "coder-db-password"}, "password_secret", "Coder v1 chart only"),
    ({"no_password_env": True}, "no_password_env", "Coder v1 chart only"),
    ({"connector": "awsiamrds", "password_secret": "p"}, "password_secret", "Coder v1 chart only"),
    ({"service": {"load_balancer_source_ranges": ["10.0.0.0/8"]}},
     "service.load_balancer_source_ranges", "no coder.service.loadBalancerSourceRanges"),
    # v2's own checks.
    ({"url_secret": None}, "url_secret", "key 'url'"),
    ({"url_secret": "Coder_URL"}, "url_secret", "DNS-1123"),
    ({"max_idle_connections": 11}, "max_idle_connections", "between 0 and max_db_connections (10"),
    ({"max_idle_connections": -1}, "max_idle_connections", "between 0"),
    ({"max_idle_connections": True}, "max_idle_connections", "whole number"),
    ({"extra_envs": [{"name": "CODER_PG_CONNECTION_URL", "value": "x"}]}, "extra_envs[0].name",
     "url_secret"),
    ({"extra_envs": [{"name": "CODER_PG_CONN_MAX_OPEN", "value": "5"}]}, "extra_envs[0].name",
     "max_db_connections"),
    ({"extra_envs": [{"name": "CODER_PG_AUTH", "value": "password"}]}, "extra_envs[0].name",
     "connector"),
    ({"values_overrides": {"coder": {"env": []}}}, "values_overrides.coder.env", "extra_envs"),
    ({"values_overrides": {"coder": {"replicaCount": 2}}}, "values_overrides.coder.replicaCount",
     "replicas"),
    ({"values_overrides": {"coder": {"volumes": []}}}, "values_overrides.coder.volumes", "ssl_cert"),
    ({"values_overrides": {"coder": {"certs": {"secrets": []}}}}, "values_overrides.coder.certs",
     "ssl_root_cert_secret"),
    ({"values_overrides": {"postgres": {"host": "x"}}}, "values_overrides.postgres", "no postgres"),
    ({"values_overrides": {"coderd": {"replicas": 2}}}, "values_overrides.coderd", "v1 chart keys"),
    ({"extra_connections_per_replica": -1}, "extra_connections_per_replica", "between 0 and 1000"),
    # The same validation as v1.
    ({"host": ""}, "host", "host is empty"),
    ({"port": 0}, "port", "out of range"),
    ({"ssl_mode": "verify-full"}, "ssl_root_cert_secret", "root certificate"),
    ({"ssl_cert_secret": CERT}, "ssl_key_secret", "private key"),
    ({"ssl_root_cert_secret": {"name": "bad.Name", "key": "ca.crt"}}, "ssl_root_cert_secret.name",
     "DNS-1123"),
    ({"replicas": 0}, "replicas", "between 1 and 1000"),
]


@pytest.mark.parametrize("update,field,fragment", REFUSALS)
def test_v2_refusals_name_the_field(update, field, fragment):
    with pytest.raises(InputError) as err:
        build(**update)
    assert err.value.field == field
    assert fragment in str(err.value)


@pytest.mark.parametrize("update,field", [
    ({"url_secret": "coder-db-url"}, "url_secret"),
    ({"max_idle_connections": 3}, "max_idle_connections"),
])
def test_v2_only_options_refused_for_v1(update, field):
    params = {"chart_generation": "v1", "host": "h", "port": 5432, "user": "u", "database": "d"}
    params.update(update)
    with pytest.raises(InputError) as err:
        build_values(params)
    assert err.value.field == field
    assert "Coder v2 chart only" in str(err.value) and "remove " + field in str(err.value)


def test_values_never_hold_a_password():
    params = dict(BASE, password="hunter2-secret", login_password="hunter2-secret")
    values, _budget, url = build_values_and_url(params)
    text = render_yaml(values)
    assert "hunter2" not in text and "hunter2" not in repr(url)


def test_inputs_not_changed():
    params = dict(BASE, extra_envs=[{"name": "A", "value": "1"}],
                  values_overrides={"coder": {"podAnnotations": {"a": "b"}}})
    snapshot = copy.deepcopy(params)
    values, _budget, _url = build_values_and_url(params)
    assert params == snapshot
    assert values["coder"]["podAnnotations"] == {"a": "b"}
