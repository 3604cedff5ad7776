# Copyright (c) 2025, coderops maintainers
# GNU General Public License v3.0+ (see LICENSE or https://www.gnu.org/licenses/gpl-3.0.txt)
# SPDX-License-Identifier: GPL-3.0-or-later
"""The values against what the real charts do with them (issue 12; the chart contract's
"Checked against the real charts"): the v1 Service merged with externalTrafficPolicy: Local, the
v1 volume names a password Secret must not take, the v2 client key that uid 1000 reads through
fsGroup, the v2 ca-cert-<name> volume, the v2 pool that Coder before 2.30 ignores, and the v2
coder.strategy surge."""

from __future__ import annotations

import copy

import pytest
from ansible_collections.coderops.deploy.plugins.module_utils._coder_values import (
    build_values_and_url,
)
from ansible_collections.coderops.deploy.plugins.module_utils._coder_version import (
    image_tag,
    parse_version,
)
from ansible_collections.coderops.deploy.plugins.module_utils._inputs import InputError

V1 = {"host": "db.example.internal", "port": 5432, "user": "coder", "database": "coder",
      "password_secret": "coder-db-password"}
V2 = {"chart_generation": "v2", "host": "db.example.internal", "port": 5432, "user": "coder",
      "database": "coder", "url_secret": "coder-db-url"}
FACTS = {"max_connections": 100, "superuser_reserved_connections": 3, "reserved_connections": 0,
         "connections_in_use": {"others": 0}, "in_recovery": False, "port": 5432,
         "user": "coder", "database": "coder"}
ROOT = {"name": "coder-db-ca", "key": "ca.crt"}
CERT = {"name": "coder-db-client", "key": "tls.crt"}
KEY = {"name": "coder-db-client", "key": "tls.key"}


def build(base, **update):
    params = copy.deepcopy(base)
    params.update(update)
    return build_values_and_url(params)


def refused(base, **update):
    with pytest.raises(InputError) as info:
        build(base, **update)
    return info.value


# --- v1: the Service -------------------------------------------------------------------------

@pytest.mark.parametrize("service", [{"type": "ClusterIP"},
                                     {"type": "ClusterIP", "load_balancer_source_ranges": []}])
def test_v1_clusterip_nulls_the_charts_traffic_policy(service):
    values = build(V1, service=service)[0]
    assert values["coderd"]["serviceSpec"]["externalTrafficPolicy"] is None


def test_v1_clusterip_from_the_overrides_too():
    values = build(V1, values_overrides={"coderd": {"serviceSpec": {"type": "ClusterIP"}}})[0]
    assert values["coderd"]["serviceSpec"] == {"type": "ClusterIP", "externalTrafficPolicy": None}


@pytest.mark.parametrize("kind", ["LoadBalancer", "NodePort"])
def test_v1_external_types_keep_the_policy(kind):
    values = build(V1, service={"type": kind})[0]
    assert "externalTrafficPolicy" not in values["coderd"]["serviceSpec"]
    values = build(V1, service={"type": kind, "external_traffic_policy": "Cluster"})[0]
    assert values["coderd"]["serviceSpec"]["externalTrafficPolicy"] == "Cluster"


@pytest.mark.parametrize("update, field", [
    ({"service": {"type": "ClusterIP", "external_traffic_policy": "Local"}},
     "service.external_traffic_policy"),
    ({"values_overrides": {"coderd": {"serviceSpec": {"type": "ClusterIP",
                                                      "externalTrafficPolicy": "Local"}}}},
     "values_overrides.coderd.serviceSpec.externalTrafficPolicy"),
    ({"service": {"type": "NodePort", "load_balancer_source_ranges": ["192.0.2.0/24"]}},
     "service.load_balancer_source_ranges"),
])
def test_v1_service_fields_the_api_refuses(update, field):
    err = refused(V1, **update)
    assert err.field == field
    assert "remove" in str(err)


# --- v1: volume names --------------------------------------------------------------------------

@pytest.mark.parametrize("name, update", [
    ("tmp-pgcerts", {}),
    ("pgcert", {"ssl_cert_secret": CERT, "ssl_key_secret": KEY}),
    ("pgkey", {"ssl_cert_secret": CERT, "ssl_key_secret": KEY}),
    ("pgrootcert", {"ssl_mode": "verify-full", "ssl_root_cert_secret": ROOT}),
    ("clientcert", {"values_overrides": {"coderd": {"clientTLS": {"secretName": "x"}}}}),
])
def test_v1_password_secret_cannot_take_a_chart_volume_name(name, update):
    err = refused(V1, password_secret=name, no_password_env=True, **update)
    assert err.field == "password_secret"
    assert "duplicate volume name" in str(err) and repr(name) in str(err)


@pytest.mark.parametrize("name", ["pgcert", "pgkey", "pgrootcert"])
def test_v1_ssl_volume_names_are_free_while_unused(name):
    values = build(V1, password_secret=name, no_password_env=True)[0]
    assert values["postgres"]["passwordSecret"] == name


def test_v1_chart_volume_name_is_fine_as_env():
    values = build(V1, password_secret="tmp-pgcerts")[0]
    assert values["postgres"]["noPasswordEnv"] is False


# --- v2: client key and CA volume --------------------------------------------------------------

def test_v2_client_certificate_sets_fs_group():
    values = build(V2, ssl_mode="verify-full", ssl_root_cert_secret=ROOT, ssl_cert_secret=CERT,
                   ssl_key_secret=KEY)[0]
    assert values["coder"]["podSecurityContext"] == {"fsGroup": 1000}


def test_v2_no_fs_group_without_client_certificate():
    values = build(V2, ssl_mode="verify-full", ssl_root_cert_secret=ROOT)[0]
    assert "podSecurityContext" not in values["coder"]


def test_v2_users_pod_security_context_wins():
    values = build(V2, ssl_cert_secret=CERT, ssl_key_secret=KEY,
                   values_overrides={"coder": {"podSecurityContext": {
                       "fsGroup": 2000, "fsGroupChangePolicy": "OnRootMismatch"}}})[0]
    assert values["coder"]["podSecurityContext"] == {"fsGroup": 2000,
                                                     "fsGroupChangePolicy": "OnRootMismatch"}


@pytest.mark.parametrize("name", ["db.example.internal-ca", "c" * 56])
def test_v2_ca_secret_must_fit_the_volume_name(name):
    err = refused(V2, ssl_mode="verify-full", ssl_root_cert_secret={"name": name, "key": "ca.crt"})
    assert err.field == "ssl_root_cert_secret.name"
    assert "ca-cert-<Secret name>" in str(err) and "at most 55 characters" in str(err)


def test_v2_ca_secret_of_55_characters_is_fine():
    name = "c" * 55
    values = build(V2, ssl_mode="verify-full", ssl_root_cert_secret={"name": name, "key": "k"})[0]
    assert values["coder"]["certs"]["secrets"] == [{"name": name, "key": "k"}]


def test_v1_ca_secret_may_have_a_dot():
    values = build(V1, ssl_mode="verify-full",
                   ssl_root_cert_secret={"name": "db.example.internal-ca", "key": "ca.crt"})[0]
    assert values["postgres"]["ssl"]["rootCertSecret"]["name"] == "db.example.internal-ca"


def test_v2_traffic_policy_only_for_load_balancer():
    err = refused(V2, service={"type": "NodePort", "external_traffic_policy": "Local"})
    assert err.field == "service.external_traffic_policy"
    values = build(V2, service={"type": "LoadBalancer", "external_traffic_policy": "Local"})[0]
    assert values["coder"]["service"]["externalTrafficPolicy"] == "Local"


# --- v2: the pool by Coder version -------------------------------------------------------------

def env_names(values):
    return [e["name"] for e in values["coder"]["env"]]


@pytest.mark.parametrize("version", ["2.25.0", "v2.29.3", "2.29.0-rc.1"])
def test_v2_before_2_30_counts_ten_and_sets_no_pool_env(version):
    values, budget = build(V2, coder_version=version, pg_facts=FACTS, replicas=2)[:2]
    assert "CODER_PG_CONN_MAX_OPEN" not in env_names(values)
    assert "CODER_PG_CONN_MAX_IDLE" not in env_names(values)
    assert budget["inputs"]["max_db_connections"] == 10


@pytest.mark.parametrize("update, option", [({"max_db_connections": 5}, "max_db_connections"),
                                            ({"max_db_connections": 20}, "max_db_connections"),
                                            ({"max_idle_connections": 2}, "max_idle_connections")])
def test_v2_before_2_30_refuses_another_pool(update, option):
    err = refused(V2, coder_version="2.29.0", **update)
    assert err.field == option
    assert "Coder 2.29.0 (from coder_version)" in str(err) and "2.30" in str(err)


def test_v2_before_2_30_budget_fix_does_not_suggest_a_pool():
    err = refused(V2, coder_version="2.28.0", replicas=8, pg_facts=FACTS)
    assert err.field == "replicas"
    assert "before 2.30 it holds 10 per pool" in str(err) and "set max_db_connections" not in str(err)


def test_v2_before_2_30_accepts_the_fixed_pool():
    values = build(V2, coder_version="2.25.0", max_db_connections=10, max_idle_connections=3)[0]
    assert "CODER_PG_CONN_MAX_OPEN" not in env_names(values)


@pytest.mark.parametrize("version", ["2.30.0", "2.31.4", None])
def test_v2_from_2_30_sets_the_pool(version):
    values, budget = build(V2, coder_version=version, max_db_connections=5, pg_facts=FACTS)[:2]
    env = {e["name"]: e.get("value") for e in values["coder"]["env"]}
    assert env["CODER_PG_CONN_MAX_OPEN"] == "5"
    assert budget["inputs"]["max_db_connections"] == 5


def test_v2_image_tag_wins_over_the_charts_app_version():
    err = refused(V2, coder_version="2.31.0", max_db_connections=5,
                  values_overrides={"coder": {"image": {"tag": "v2.27.1"}}})
    assert "Coder 2.27.1 (from the image tag in values_overrides.coder.image.tag)" in str(err)


def test_v2_bad_coder_version():
    assert refused(V2, coder_version="latest").field == "coder_version"


# --- v2: coder.strategy ------------------------------------------------------------------------

@pytest.mark.parametrize("strategy, surge", [
    ({"type": "Recreate"}, 0),
    ({"type": "RollingUpdate", "rollingUpdate": {"maxSurge": 1}}, 1),
    ({"rollingUpdate": {"maxSurge": "100%"}}, 4),
    ({"rollingUpdate": {"maxUnavailable": 1}}, 1),  # maxSurge unset: Kubernetes' 25%
])
def test_v2_strategy_sets_the_surge_on_charts_that_have_it(strategy, surge):
    budget = build(V2, coder_version="2.32.0", replicas=4, pg_facts=dict(FACTS, max_connections=200),
                   values_overrides={"coder": {"strategy": strategy}})[1]
    assert budget["surge_pods"] == surge


def test_v2_strategy_is_ignored_where_the_chart_drops_it():
    budget = build(V2, coder_version="2.31.0", replicas=4, pg_facts=FACTS,
                   values_overrides={"coder": {"strategy": {"type": "Recreate"}}})[1]
    assert budget["surge_pods"] == 1


@pytest.mark.parametrize("strategy, field", [
    ({"type": "Blue"}, "values_overrides.coder.strategy.type"),
    ({"rollingUpdate": {"maxSurge": "1"}}, "values_overrides.coder.strategy.rollingUpdate.maxSurge"),
    ("Recreate", "values_overrides.coder.strategy"),
])
def test_v2_bad_strategy(strategy, field):
    err = refused(V2, coder_version="2.32.0", values_overrides={"coder": {"strategy": strategy}})
    assert err.field == field


# --- versions ----------------------------------------------------------------------------------

@pytest.mark.parametrize("text, version", [("2.30.1", (2, 30, 1)), ("v2.30", (2, 30, 0)),
                                           ("1.44.3+build.1", (1, 44, 3)), ("", None)])
def test_parse_version(text, version):
    assert parse_version("coder_version", text) == version


@pytest.mark.parametrize("values, generation, tag", [
    ({"coderd": {"image": "registry.example:5000/coder/coder-service:1.44.3"}}, "v1", "1.44.3"),
    ({"coderd": {"image": "registry.example:5000/coder/coder-service"}}, "v1", None),
    ({"coderd": {"image": "coder@sha256:abc"}}, "v1", None),
    ({"coder": {"image": {"tag": "v2.31.0"}}}, "v2", "v2.31.0"),
    ({"coder": "not a dict"}, "v2", None),
])
def test_image_tag(values, generation, tag):
    assert image_tag(values, generation) == tag
