# Copyright (c) 2025, coderops maintainers
# GNU General Public License v3.0+ (see LICENSE or https://www.gnu.org/licenses/gpl-3.0.txt)
# SPDX-License-Identifier: GPL-3.0-or-later
"""The v1 values builder, table-driven against every row of the chart contract
(/work/shared/coder-chart-contract.md, "Coder v1")."""

from __future__ import annotations

import copy

import pytest
from ansible_collections.coderops.deploy.plugins.module_utils._coder_values import (
    BUILDERS,
    build_values,
    render_yaml,
)
from ansible_collections.coderops.deploy.plugins.module_utils._inputs import InputError

BASE = {
    "chart_generation": "v1",
    "host": "db.example.internal",
    "port": 5432,
    "user": "coder",
    "database": "coder",
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


def build(**update):
    params = copy.deepcopy(BASE)
    params.update(update)
    return build_values(params)


def build_only(**update):
    return build(**update)[0]


def build_budget(**update):
    return build(**update)[1]


def get(values, path):
    node = values
    for part in path.split("."):
        node = node[part]
    return node


# --- The postgres.* table: (contract key, params, expected value) -----------------------------
POSTGRES_ROWS = [
    ("postgres.default.enable", {}, False),
    ("postgres.default.enable", {"values_overrides": {"coderd": {"x": 1}}}, False),
    ("postgres.host", {}, "db.example.internal"),
    ("postgres.host", {"host": "10.0.0.7"}, "10.0.0.7"),
    ("postgres.host", {"host": "[fd00::7]"}, "fd00::7"),
    ("postgres.port", {}, "5432"),
    ("postgres.port", {"port": "6432"}, "6432"),
    ("postgres.port", {"port": 65535}, "65535"),
    ("postgres.user", {}, "coder"),
    ("postgres.database", {}, "coder"),
    ("postgres.searchPath", {}, ""),
    ("postgres.searchPath", {"search_path": "coder_schema"}, "coder_schema"),
    ("postgres.passwordSecret", {}, ""),
    ("postgres.passwordSecret", {"password_secret": "coder-db.password"}, "coder-db.password"),
    ("postgres.noPasswordEnv", {}, False),
    ("postgres.noPasswordEnv", {"password_secret": "coder-db", "no_password_env": True}, True),
    ("postgres.sslMode", {}, "require"),
    ("postgres.sslMode", {"ssl_mode": "disable"}, "disable"),
    ("postgres.sslMode", {"ssl_mode": "prefer"}, "prefer"),
    ("postgres.sslMode", {"ssl_mode": "verify-full",
                          "ssl_root_cert_secret": {"name": "ca", "key": "ca.crt"}}, "verify-full"),
    ("postgres.ssl.certSecret", {}, {"name": "", "key": ""}),
    ("postgres.ssl.certSecret", {"ssl_cert_secret": {"name": "pg-client", "key": "tls.crt"},
                                 "ssl_key_secret": {"name": "pg-client", "key": "tls.key"}},
     {"name": "pg-client", "key": "tls.crt"}),
    ("postgres.ssl.keySecret", {}, {"name": "", "key": ""}),
    ("postgres.ssl.keySecret", {"ssl_cert_secret": {"name": "pg-client", "key": "tls.crt"},
                                "ssl_key_secret": {"name": "pg-key", "key": "tls.key"}},
     {"name": "pg-key", "key": "tls.key"}),
    ("postgres.ssl.rootCertSecret", {}, {"name": "", "key": ""}),
    ("postgres.ssl.rootCertSecret", {"ssl_mode": "verify-ca",
                                     "ssl_root_cert_secret": {"name": "pg-ca", "key": "ca.crt"}},
     {"name": "pg-ca", "key": "ca.crt"}),
    ("postgres.connector", {}, "postgres"),
    ("postgres.connector", {"connector": "awsiamrds"}, "awsiamrds"),
]


@pytest.mark.parametrize("path,update,expected", POSTGRES_ROWS,
                         ids=[f"{r[0]}-{i}" for i, r in enumerate(POSTGRES_ROWS)])
def test_postgres_rows(path, update, expected):
    values = build_only(**update)
    assert get(values, path) == expected
    if path == "postgres.port":
        assert isinstance(get(values, path), str)


def test_postgres_block_has_exactly_the_contract_keys():
    values = build_only()
    assert set(values["postgres"]) == {
        "default", "host", "port", "user", "database", "searchPath", "passwordSecret",
        "noPasswordEnv", "sslMode", "ssl", "connector"}
    assert set(values["postgres"]["ssl"]) == {"certSecret", "keySecret", "rootCertSecret"}


# --- The coderd.* / ingress table ----------------------------------------------------------------
CODERD_ROWS = [
    ("coderd.replicas", {}, 1),
    ("coderd.replicas", {"replicas": 4}, 4),
    ("coderd.extraEnvs", {}, [{"name": "CODER_MAX_DB_CONNECTIONS", "value": "30"}]),
    ("coderd.extraEnvs", {"max_db_connections": 12,
                          "extra_envs": [{"name": "CODER_VERBOSE", "value": "true"},
                                         {"name": "PORT_NUM", "value": 8080},
                                         {"name": "FROM_SECRET",
                                          "valueFrom": {"secretKeyRef": {"name": "s", "key": "k"}}}]},
     [{"name": "CODER_MAX_DB_CONNECTIONS", "value": "12"},
      {"name": "CODER_VERBOSE", "value": "true"},
      {"name": "PORT_NUM", "value": "8080"},
      {"name": "FROM_SECRET", "valueFrom": {"secretKeyRef": {"name": "s", "key": "k"}}}]),
    ("coderd.serviceSpec", {"service": {"type": "LoadBalancer", "external_traffic_policy": "Local",
                                        "load_balancer_ip": "192.0.2.10",
                                        "load_balancer_source_ranges": ["192.0.2.0/24"]}},
     {"type": "LoadBalancer", "externalTrafficPolicy": "Local", "loadBalancerIP": "192.0.2.10",
      "loadBalancerSourceRanges": ["192.0.2.0/24"]}),
    ("coderd.serviceSpec", {"service": {"type": "ClusterIP", "external_traffic_policy": None}},
     {"type": "ClusterIP", "externalTrafficPolicy": None}),
    ("coderd.builtinProviderServiceAccount.annotations",
     {"connector": "awsiamrds",
      "service_account_annotations": {"eks.amazonaws.com/role-arn": "arn:aws:iam::1:role/r"}},
     {"eks.amazonaws.com/role-arn": "arn:aws:iam::1:role/r"}),
    ("ingress", {"ingress": {"enable": True, "host": "coder.example.com", "class_name": "nginx",
                             "tls_enable": True}},
     {"enable": True, "host": "coder.example.com", "className": "nginx", "tls": {"enable": True}}),
    ("ingress", {"ingress": {"enable": False}}, {"enable": False}),
]


@pytest.mark.parametrize("path,update,expected", CODERD_ROWS,
                         ids=[f"{r[0]}-{i}" for i, r in enumerate(CODERD_ROWS)])
def test_coderd_rows(path, update, expected):
    values = build_only(**update)
    assert get(values, path) == expected


def test_unset_service_and_ingress_leave_chart_defaults():
    values = build_only()
    assert "serviceSpec" not in values["coderd"]
    assert "builtinProviderServiceAccount" not in values["coderd"]
    assert "ingress" not in values


# --- What the chart renders: a model of the contract's render table ----------------------------
def render_v1_env(values):
    """The env vars and volumes the v1 chart renders, per the contract's table (test model)."""
    pg = values["postgres"]
    assert pg["default"]["enable"] is False
    env = {"DB_HOST": pg["host"], "DB_PORT": pg["port"], "DB_USER": pg["user"],
           "DB_NAME": pg["database"], "DB_CONNECTOR": pg["connector"], "DB_SSL_MODE": pg["sslMode"]}
    volumes = {}
    if pg["searchPath"]:
        env["DB_SEARCH_PATH"] = pg["searchPath"]
    if pg["passwordSecret"] and not pg["noPasswordEnv"]:
        env["DB_PASSWORD"] = {"valueFrom": {"secretKeyRef": {"name": pg["passwordSecret"],
                                                             "key": "password"}}}
    if pg["passwordSecret"] and pg["noPasswordEnv"]:
        env["DB_PASSWORD_PATH"] = f"/run/secrets/{pg['passwordSecret']}/password"
        volumes[pg["passwordSecret"]] = f"/run/secrets/{pg['passwordSecret']}"
    for secret, var, vol, sub in (("certSecret", "DB_CERT", "pgcert", "cert"),
                                  ("keySecret", "DB_KEY", "pgkey", "key"),
                                  ("rootCertSecret", "DB_ROOT_CERT", "pgrootcert", "rootcert")):
        if pg["ssl"][secret]["name"]:
            env[var] = f"/etc/ssl/certs/pg/{sub}/{pg['ssl'][secret]['key']}"
            volumes[vol] = f"/etc/ssl/certs/pg/{sub}"
    for extra in values["coderd"]["extraEnvs"]:
        env[extra["name"]] = extra.get("value", extra.get("valueFrom"))
    return env, volumes


RENDER_ROWS = [
    ("DB_HOST", {}, "db.example.internal"),
    ("DB_PORT", {"port": 6543}, "6543"),
    ("DB_USER", {}, "coder"),
    ("DB_NAME", {}, "coder"),
    ("DB_CONNECTOR", {"connector": "awsiamrds"}, "awsiamrds"),
    ("DB_SSL_MODE", {}, "require"),
    ("DB_SEARCH_PATH", {"search_path": "s1"}, "s1"),
    ("DB_SEARCH_PATH", {}, None),
    ("DB_PASSWORD", {"password_secret": "coder-db"},
     {"valueFrom": {"secretKeyRef": {"name": "coder-db", "key": "password"}}}),
    ("DB_PASSWORD", {"password_secret": "coder-db", "no_password_env": True}, None),
    ("DB_PASSWORD_PATH", {"password_secret": "coder-db", "no_password_env": True},
     "/run/secrets/coder-db/password"),
    ("DB_PASSWORD_PATH", {"password_secret": "coder-db"}, None),
    ("DB_CERT", {"ssl_cert_secret": {"name": "c", "key": "tls.crt"},
                 "ssl_key_secret": {"name": "c", "key": "tls.key"}}, "/etc/ssl/certs/pg/cert/tls.crt"),
    ("DB_KEY", {"ssl_cert_secret": {"name": "c", "key": "tls.crt"},
                "ssl_key_secret": {"name": "c", "key": "tls.key"}}, "/etc/ssl/certs/pg/key/tls.key"),
    ("DB_ROOT_CERT", {"ssl_mode": "verify-full", "ssl_root_cert_secret": {"name": "ca", "key": "ca.pem"}},
     "/etc/ssl/certs/pg/rootcert/ca.pem"),
    ("CODER_MAX_DB_CONNECTIONS", {"max_db_connections": 7}, "7"),
]


@pytest.mark.parametrize("var,update,expected", RENDER_ROWS,
                         ids=[f"{r[0]}-{i}" for i, r in enumerate(RENDER_ROWS)])
def test_rendered_env(var, update, expected):
    values = build_only(**update)
    env = render_v1_env(values)[0]
    assert env.get(var) == expected


def test_rendered_volumes_no_password_env():
    values = build_only(password_secret="coder-db", no_password_env=True, ssl_mode="verify-full",
                        ssl_root_cert_secret={"name": "ca", "key": "ca.crt"})
    volumes = render_v1_env(values)[1]
    assert volumes == {"coder-db": "/run/secrets/coder-db", "pgrootcert": "/etc/ssl/certs/pg/rootcert"}


# --- Refusals: (params, field, fragment of the message) --------------------------------------
REFUSALS = [
    ({"host": ""}, "host", "host is empty"),
    ({"host": "   "}, "host", "host is empty"),
    ({"host": None}, "host", "host is empty"),
    ({"host": "postgres://db"}, "host", "bare host name"),
    ({"host": "db:5432"}, "host", "give the port in the port option"),
    ({"port": "abc"}, "port", "must be a number between 1 and 65535"),
    ({"port": "54 32"}, "port", "must be a number between 1 and 65535"),
    ({"port": 0}, "port", "out of range"),
    ({"port": 65536}, "port", "out of range"),
    ({"port": "70000"}, "port", "out of range"),
    ({"port": True}, "port", "must be a number"),
    ({"port": None}, "port", "port is not set"),
    ({"user": ""}, "user", "user is empty"),
    ({"database": ""}, "database", "database is empty"),
    ({"database": None}, "database", "database is empty"),
    ({"password_secret": "Coder_DB"}, "password_secret", "is not a DNS-1123 name"),
    ({"password_secret": "coder.db", "no_password_env": True}, "password_secret",
     "is not a DNS-1123 label"),
    ({"password_secret": "x" * 64, "no_password_env": True}, "password_secret", "DNS-1123 label"),
    ({"no_password_env": True}, "no_password_env", "password_secret is not set"),
    ({"ssl_mode": "verify-ca"}, "ssl_root_cert_secret", "needs a root certificate"),
    ({"ssl_mode": "verify-full"}, "ssl_root_cert_secret", "needs a root certificate"),
    ({"ssl_cert_secret": {"name": "c", "key": "tls.crt"}}, "ssl_key_secret",
     "needs its private key"),
    ({"ssl_key_secret": {"name": "c", "key": "tls.key"}}, "ssl_cert_secret",
     "needs its private key"),
    ({"ssl_cert_secret": {"name": "bad_name", "key": "tls.crt"},
      "ssl_key_secret": {"name": "c", "key": "tls.key"}}, "ssl_cert_secret.name", "DNS-1123"),
    ({"ssl_mode": "verify-full", "ssl_root_cert_secret": {"name": "ca", "key": "a/b"}},
     "ssl_root_cert_secret.key", "not a valid Secret key"),
    ({"connector": "awsiamrds", "password_secret": "coder-db"}, "password_secret",
     "takes no password Secret"),
    ({"extra_envs": [{"name": "DB_HOST", "value": "x"}]}, "extra_envs[0].name", "shadows"),
    ({"extra_envs": [{"name": "A", "value": "1"}, {"name": "DB_PASSWORD", "value": "x"}]},
     "extra_envs[1].name", "shadows"),
    ({"extra_envs": [{"name": "SKIP_MIGRATIONS", "value": "x"}]}, "extra_envs[0].name", "shadows"),
    ({"extra_envs": [{"name": "CODER_MAX_DB_CONNECTIONS", "value": "5"}]}, "extra_envs[0].name",
     "max_db_connections option"),
    ({"extra_envs": [{"name": "A", "value": True}]}, "extra_envs[0].value", "quote it"),
    ({"extra_envs": [{"name": "A"}]}, "extra_envs[0]", "exactly one of value and valueFrom"),
    ({"extra_envs": [{"name": "1A", "value": "x"}]}, "extra_envs[0].name", "not a valid environment"),
    ({"extra_envs": [{"name": "A", "value": "1"}, {"name": "A", "value": "2"}]},
     "extra_envs[1].name", "twice"),
    ({"extra_envs": [{"name": "A", "value": "1", "other": 1}]}, "extra_envs[0]", "unknown key"),
    ({"replicas": 0}, "replicas", "between 1 and"),
    ({"max_db_connections": 0}, "max_db_connections", "between 1 and"),
    ({"surge_percent": 101}, "surge_percent", "between 0 and 100"),
    ({"reserve_connections": -1}, "reserve_connections", "0 or more"),
    ({"values_overrides": {"postgres": {"host": ""}}}, "values_overrides.postgres",
     "set those options instead"),
    ({"values_overrides": {"postgres": {"default": {"enable": True}}}},
     "values_overrides.postgres", "overrides a key this module builds"),
    ({"values_overrides": {"coderd": {"extraEnvs": []}}}, "values_overrides.coderd.extraEnvs",
     "set extra_envs"),
    ({"values_overrides": {"coderd": {"replicas": 9}}}, "values_overrides.coderd.replicas",
     "set the replicas option"),
    ({"values_overrides": ["x"]}, "values_overrides", "must be a dictionary"),
    ({"chart_generation": "v3"}, "chart_generation", "not supported by this collection version"),
    ({"pg_facts": dict(FACTS, max_connections=20), "port": None}, "max_db_connections",
     "set max_db_connections to 6 or less"),
    ({"pg_facts": dict(FACTS, in_recovery=True)}, "pg_facts", "standby"),
    ({"pg_facts": {"failed": True, "reason": "timeout"}}, "pg_facts", "failed coder_pg_facts"),
    ({"pg_facts": {"port": 5432}}, "pg_facts", "lacks max_connections"),
    ({"pg_facts": dict(FACTS, max_connections="many")}, "pg_facts.max_connections",
     "whole number"),
]


@pytest.mark.parametrize("update,field,fragment", REFUSALS,
                         ids=[f"{r[1]}-{i}" for i, r in enumerate(REFUSALS)])
def test_refusals_name_the_field(update, field, fragment):
    with pytest.raises(InputError) as err:
        build(**update)
    assert err.value.field == field
    assert fragment in str(err.value)
    # The message names the field it is about (the fix is in the same sentence).
    assert field.split("[")[0].split(".")[0] in str(err.value) or field.startswith("pg_facts")


def test_facts_fill_port_user_database_and_budget():
    values, budget = build(port=None, user=None, database=None, pg_facts=FACTS, replicas=2)
    assert values["postgres"]["port"] == "5433"
    assert values["postgres"]["user"] == "coder_fact"
    assert values["postgres"]["database"] == "coder_fact_db"
    # 100 - 3 - 0 - 4 others = 93; (2 + 1 surge) x 30 = 90.
    assert budget["available"] == 93
    assert budget["needed_peak"] == 90
    assert budget["ok"] is True


def test_explicit_options_win_over_facts():
    values = build_only(port="6432", user="u", database="d", pg_facts=FACTS)
    assert (values["postgres"]["port"], values["postgres"]["user"],
            values["postgres"]["database"]) == ("6432", "u", "d")


def test_no_budget_without_facts():
    budget = build_budget(replicas=50, max_db_connections=100)
    assert budget is None


def test_overrides_merge_like_helm():
    overrides = {"coderd": {"serviceSpec": {"loadBalancerSourceRanges": ["b"], "loadBalancerIP": None},
                            "image": {"tag": "1.2.3"}},
                 "ingress": {"enable": True}}
    values = build_only(service={"type": "LoadBalancer", "load_balancer_source_ranges": ["a"]},
                        values_overrides=overrides)
    assert values["coderd"]["serviceSpec"] == {"type": "LoadBalancer",
                                               "loadBalancerSourceRanges": ["b"],
                                               "loadBalancerIP": None}
    assert values["coderd"]["image"] == {"tag": "1.2.3"}
    assert values["coderd"]["replicas"] == 1
    assert values["ingress"] == {"enable": True}


def test_values_hold_no_secret_material():
    values = build_only(password_secret="coder-db", extra_envs=[{"name": "X", "value": "y"}])
    text = render_yaml(values)
    assert "password:" not in text
    assert "passwordSecret: coder-db" in text


def test_render_yaml_is_stable_and_quotes_the_port():
    a = render_yaml(build(values_overrides={"b": 1, "a": 2})[0])
    b = render_yaml(build(values_overrides={"a": 2, "b": 1})[0])
    assert a == b
    assert "port: '5432'" in a


def test_builders_registry_is_open_for_more_generations():
    assert set(BUILDERS) == {"v1", "v2"}
    builder = BUILDERS["v1"]
    assert builder.generation == "v1"
    assert callable(builder.check) and callable(builder.build)
