# Copyright (c) 2025, coderops maintainers
# GNU General Public License v3.0+ (see LICENSE or https://www.gnu.org/licenses/gpl-3.0.txt)
# SPDX-License-Identifier: GPL-3.0-or-later

# Note that this module util is **PRIVATE** to the collection. It can have breaking changes at any time.
# Do not use this from other collections or standalone plugins/modules!

"""Helm values of the Coder chart, built from checked input (backend of coder_values).

The input is checked in two steps: what any chart generation needs (a host, a port, TLS
options that make sense together, a fitting connection budget) in normalise(), then what the
chosen chart generation needs in its builder. Each builder is registered in BUILDERS under its
`chart_generation`: the v1 ("Classic") chart and the v2 chart (database as a URL in a Secret).
The values only ever name Secrets: no password goes into them (Helm keeps every revision's
values in the release Secret for good).
"""

from __future__ import annotations

import re

from ansible_collections.coderops.deploy.plugins.module_utils._budget import (
    BUDGET_DEFAULTS,
    V2_EXTRA_CONNECTIONS_PER_REPLICA,
    BudgetError,
    budget_inputs_from_facts,
    check_plan,
    connection_budget,
)
from ansible_collections.coderops.deploy.plugins.module_utils._coder_version import (
    V2_FIXED_POOL_IDLE,
    V2_FIXED_POOL_OPEN,
    V2_POOL_ENV_SINCE,
    chart_has_strategy,
    honours_pool_env,
    image_tag,
    parse_version,
    show,
)
from ansible_collections.coderops.deploy.plugins.module_utils._helm_values import (
    dig,
    helm_merge,
    touched_paths,
)
from ansible_collections.coderops.deploy.plugins.module_utils._inputs import (
    CONNECTORS,
    SSL_MODES,
    VERIFYING_SSL_MODES,
    InputError,
    check_choice,
    check_env_name,
    check_host,
    check_port,
    check_secret_key,
    check_secret_name,
    require_text,
)

try:
    import yaml
except ImportError:
    yaml = None
    HAS_YAML = False
else:
    HAS_YAML = True

SSL_SECRETS = ("ssl_cert_secret", "ssl_key_secret", "ssl_root_cert_secret")

# The user and group Coder's images run as (both charts' securityContext: runAsUser and
# runAsGroup 1000).
CODER_GID = 1000


def _given(value):
    return value not in (None, "")


def _from_facts(params, option, fact):
    """An explicit option wins; else the fact from pg_facts. Returns (value, field name)."""
    if _given(params.get(option)):
        return params[option], option
    facts = params.get("pg_facts") or {}
    if _given(facts.get(fact)):
        return facts[fact], f"pg_facts.{fact}"
    return None, option


def _extra_envs(value):
    """Normalise extra_envs to a list of {name, value} or {name, valueFrom} dicts."""
    if value is None:
        return []
    if not isinstance(value, list):
        raise InputError("extra_envs", "extra_envs must be a list of {name, value} dictionaries")
    out = []
    for index, item in enumerate(value):
        field = f"extra_envs[{index}]"
        if not isinstance(item, dict):
            raise InputError(field, f"{field} must be a dictionary with name and value")
        unknown = sorted(set(item) - {"name", "value", "valueFrom"})
        if unknown:
            raise InputError(field, f"{field} has unknown key(s) {', '.join(unknown)}; an entry"
                                    f" has name and either value or valueFrom")
        name = check_env_name(f"{field}.name", item.get("name"))
        if ("value" in item) == ("valueFrom" in item):
            raise InputError(field, f"{field} ({name}) needs exactly one of value and valueFrom")
        if "value" in item:
            v = item["value"]
            if isinstance(v, bool) or v is None or not isinstance(v, (str, int, float)):
                raise InputError(f"{field}.value", f"{field}.value ({name}) must be a string;"
                                                   f" quote it (true, false and null are not"
                                                   f" strings in YAML)")
            out.append({"name": name, "value": str(v)})
        else:
            if not isinstance(item["valueFrom"], dict) or not item["valueFrom"]:
                raise InputError(f"{field}.valueFrom", f"{field}.valueFrom ({name}) must be a"
                                                       f" Kubernetes EnvVarSource dictionary")
            out.append({"name": name, "valueFrom": item["valueFrom"]})
    return out


def _secret_ref(params, option):
    ref = params.get(option)
    if not ref:
        return None
    if not isinstance(ref, dict):
        raise InputError(option, f"{option} must be a dictionary with name and key")
    return {
        "name": check_secret_name(f"{option}.name", ref.get("name")),
        "key": check_secret_key(f"{option}.key", ref.get("key")),
    }


def _budget(params, spec):
    facts = params.get("pg_facts")
    if not facts:
        return None
    try:
        inputs = budget_inputs_from_facts(facts, "pg_facts")
    except BudgetError as exc:
        raise InputError(exc.field, str(exc)) from None
    if facts.get("in_recovery"):
        raise InputError("pg_facts", "pg_facts describe a standby (in_recovery is true), but"
                                     " Coder needs the primary; read the facts of the primary")
    try:
        budget = connection_budget(replicas=spec["replicas"],
                                   max_db_connections=spec["max_db_connections"],
                                   surge_percent=spec["surge_percent"],
                                   reserve_connections=spec["reserve_connections"],
                                   extra_connections_per_replica=spec[
                                       "extra_connections_per_replica"],
                                   max_surge_pods=spec["max_surge_pods"],
                                   **inputs)
    except BudgetError as exc:
        field = exc.field if exc.field in BUDGET_DEFAULTS else f"pg_facts.{exc.field}"
        raise InputError(field, f"pg_facts: {exc}") from None
    if not budget["ok"]:
        if spec["pool_fixed"]:
            # A smaller pool is no fix for a Coder that does not read the pool env.
            message = budget["message"].split(" Fix: ")[0].split("; not even")[0]
            raise InputError("replicas", f"the connection budget {message}. Coder"
                                         f" {show(spec['coder_version'])} cannot take a smaller"
                                         f" pool: before {show(V2_POOL_ENV_SINCE)} it holds"
                                         f" {V2_FIXED_POOL_OPEN} per pool. Fix: lower replicas,"
                                         f" or raise max_connections on the server to at least"
                                         f" {budget['max_connections_needed']}, or deploy Coder"
                                         f" {show(V2_POOL_ENV_SINCE)} or later")
        raise InputError("max_db_connections", "the connection budget " + budget["message"])
    return budget


def normalise(params):
    """Check what every chart generation needs; returns the normalised spec."""
    spec = {}
    if params.get("pg_facts") is not None and not isinstance(params["pg_facts"], dict):
        raise InputError("pg_facts", "pg_facts must be the registered result of"
                                     " coderops.deploy.coder_pg_facts (a dictionary)")
    if not _given(params.get("host")):
        raise InputError("host", "host is empty; set it to the DNS name or IP address the Coder"
                                 " pods use to reach the database (coder_pg_facts does not"
                                 " return it)")
    spec["host"] = check_host("host", params["host"])

    port, field = _from_facts(params, "port", "port")
    if port is None:
        raise InputError("port", "port is not set; set it to the server's port as the Coder pods"
                                 " reach it (5432 by default), or pass pg_facts")
    spec["port"] = check_port(field, port)
    user, field = _from_facts(params, "user", "user")
    spec["user"] = require_text(field, user, "the PostgreSQL role Coder logs in as (or pass"
                                             " pg_facts)")
    database, field = _from_facts(params, "database", "database")
    spec["database"] = require_text(field, database, "the name of Coder's database, which must"
                                                     " already exist (or pass pg_facts)")
    spec["search_path"] = None
    if params.get("search_path") is not None:
        spec["search_path"] = require_text("search_path", params["search_path"],
                                           "a schema name, or leave it out")

    spec["ssl_mode"] = check_choice("ssl_mode", params.get("ssl_mode") or "require", SSL_MODES)
    spec["connector"] = check_choice("connector", params.get("connector") or "postgres", CONNECTORS)
    spec["no_password_env"] = bool(params.get("no_password_env"))
    spec["password_secret"] = params.get("password_secret") or None

    for option in SSL_SECRETS:
        spec[option] = _secret_ref(params, option)
    if spec["ssl_mode"] in VERIFYING_SSL_MODES and not spec["ssl_root_cert_secret"]:
        raise InputError("ssl_root_cert_secret", f"ssl_mode {spec['ssl_mode']} verifies the"
                                                 f" server's certificate, which needs a root"
                                                 f" certificate: set ssl_root_cert_secret to the"
                                                 f" Secret (name, key) holding the CA bundle, or"
                                                 f" use ssl_mode require")
    if bool(spec["ssl_cert_secret"]) != bool(spec["ssl_key_secret"]):
        given, missing = (("ssl_cert_secret", "ssl_key_secret") if spec["ssl_cert_secret"]
                          else ("ssl_key_secret", "ssl_cert_secret"))
        raise InputError(missing, f"{given} is set but {missing} is not: a client certificate"
                                  f" needs its private key and the reverse; set both or neither")

    if spec["connector"] == "awsiamrds" and spec["password_secret"]:
        raise InputError("password_secret", "connector awsiamrds logs in with an IAM token and"
                                            " takes no password Secret; remove password_secret"
                                            " (or use connector postgres)")
    if spec["no_password_env"] and not spec["password_secret"]:
        raise InputError("no_password_env", "no_password_env is true but password_secret is not"
                                            " set, so the chart would mount a volume with an"
                                            " empty name; set password_secret to the Secret"
                                            " holding the password (key 'password'), or set"
                                            " no_password_env to false")

    defaults = dict(BUDGET_DEFAULTS)
    if params.get("chart_generation") == "v2":
        defaults.update(max_db_connections=V2_POOL_DEFAULT,
                        extra_connections_per_replica=V2_EXTRA_CONNECTIONS_PER_REPLICA)
    for option in defaults:
        value = params.get(option)
        spec[option] = defaults[option] if value is None else value
    check_plan(spec)
    # v2-only options; each builder refuses the ones that do not apply to its chart.
    spec["url_secret"] = params.get("url_secret") or None
    spec["max_idle_connections"] = params.get("max_idle_connections")
    spec["extra_envs"] = _extra_envs(params.get("extra_envs"))
    seen = set()
    for index, env in enumerate(spec["extra_envs"]):
        if env["name"] in seen:
            raise InputError(f"extra_envs[{index}].name", f"extra_envs sets {env['name']} twice;"
                                                          f" keep one entry")
        seen.add(env["name"])
    spec["service"] = params.get("service") or {}
    spec["ingress"] = params.get("ingress") or {}
    spec["service_account_annotations"] = params.get("service_account_annotations") or {}
    overrides = params.get("values_overrides")
    if overrides is None:
        overrides = {}
    if not isinstance(overrides, dict):
        raise InputError("values_overrides", "values_overrides must be a dictionary of Helm values")
    spec["values_overrides"] = overrides
    spec["coder_version"], spec["coder_version_from"] = _coder_version(params, overrides)
    # A fixed number of surge pods (a strategy the chart renders), in place of surge_percent.
    spec["max_surge_pods"] = None
    # Whether Coder ignores the pool size it is given (the v2 builder decides).
    spec["pool_fixed"] = False
    return spec


def target_version(params):
    """The Coder version the values deploy, as text ('2.31.0'), and where it comes from; the
    version None when it cannot be told (no appVersion, an image tag such as latest)."""
    version, source = _coder_version(params, params.get("values_overrides") or {})
    return (show(version) if version else None), source


def _coder_version(params, overrides):
    """The Coder version the values deploy and where it comes from: an image tag set in
    values_overrides wins over the coder_version option (the chart's appVersion)."""
    generation = params.get("chart_generation") or "v1"
    tag = image_tag(overrides, generation)
    if tag:
        where = ("values_overrides.coderd.image" if generation == "v1"
                 else "values_overrides.coder.image.tag")
        try:
            return parse_version(where, tag), f"the image tag in {where}"
        except InputError:
            return None, where  # a tag that is not a version (latest, a digest): unknown
    return parse_version("coder_version", params.get("coder_version")), "coder_version"


def _refuse_owned_overrides(overrides, owned_paths):
    """Refuse values_overrides that reach into a key the builder owns; `owned_paths` maps a key
    path (tuple) to the fix to tell the operator."""
    for path in touched_paths(overrides):
        for owned, fix in owned_paths.items():
            if path[:len(owned)] == owned:
                where = "values_overrides." + ".".join(str(p) for p in path)
                raise InputError(where, f"{where} overrides a key this module builds: {fix}")


def _ingress_values(options):
    """The ingress block both chart generations share (enable, host, className, tls.enable)."""
    ingress = {}
    for option, key in (("enable", "enable"), ("host", "host"), ("class_name", "className")):
        if options.get(option) is not None:
            ingress[key] = options[option]
    if options.get("tls_enable") is not None:
        ingress["tls"] = {"enable": options["tls_enable"]}
    return ingress


class _V1Builder:
    """Values of the Coder v1 ("Classic") chart, exactly as the chart contract says."""

    generation = "v1"
    # Env vars the v1 chart sets itself on the migrations and coderd containers.
    chart_env = frozenset((
        "DB_HOST", "DB_PORT", "DB_USER", "DB_NAME", "DB_CONNECTOR", "DB_SSL_MODE",
        "DB_SEARCH_PATH", "DB_PASSWORD", "DB_PASSWORD_PATH", "DB_CERT", "DB_KEY", "DB_ROOT_CERT",
        "SKIP_MIGRATIONS",
    ))
    # Keys built from checked options; overriding them would bypass the checks.
    owned_paths = {
        ("postgres",): "the postgres block is built from this module's options (host, port, user,"
                       " database, search_path, password_secret, ssl_*, connector) and checked;"
                       " set those options instead",
        ("coderd", "replicas"): "set the replicas option instead (it also feeds the budget)",
        ("coderd", "extraEnvs"): "set extra_envs (and max_db_connections) instead; Helm would"
                                 " replace the whole list, dropping CODER_MAX_DB_CONNECTIONS",
    }

    @staticmethod
    def refuse_options(params):
        """Refuse the v2-only options."""
        for option, fix in V2_ONLY_OPTIONS.items():
            if params.get(option) is not None:
                raise InputError(option, f"{option} is an option of the Coder v2 chart only"
                                         f" (chart_generation v2); the v1 chart {fix}")

    @staticmethod
    def chart_volumes(spec):
        """The pod volumes the v1 chart names itself (templates/_common.tpl, coder.volumes),
        with what makes each appear."""
        overrides = spec["values_overrides"]
        volumes = {"tmp-pgcerts": "always (coderd copies the certificates there)"}
        for option, name in (("ssl_cert_secret", "pgcert"), ("ssl_key_secret", "pgkey"),
                             ("ssl_root_cert_secret", "pgrootcert")):
            if spec[option]:
                volumes[name] = f"for {option}"
        for path, name in ((("coderd", "tls", "hostSecretName"), "tls"),
                           (("coderd", "tls", "devurlsHostSecretName"), "devurltls"),
                           (("coderd", "clientTLS", "secretName"), "clientcert")):
            if dig(overrides, *path):
                volumes[name] = "for values_overrides." + ".".join(path)
        certs = dig(overrides, "certs", "secret", "name")
        if certs and isinstance(certs, str):
            volumes[certs] = "for values_overrides.certs.secret.name"
        return volumes

    def check(self, spec):
        if spec["password_secret"]:
            why = (", which no_password_env needs because the chart names a volume after the"
                   " Secret") if spec["no_password_env"] else ""
            check_secret_name("password_secret", spec["password_secret"],
                              label=spec["no_password_env"], why=why)
        taken = self.chart_volumes(spec)
        if spec["no_password_env"] and spec["password_secret"] in taken:
            name = spec["password_secret"]
            raise InputError("password_secret", f"password_secret {name!r} cannot be used with"
                                                f" no_password_env: the Coder v1 chart then"
                                                f" names a volume after the Secret, and it has a"
                                                f" volume {name!r} of its own"
                                                f" ({taken[name]}), so the API server would"
                                                f" reject the Deployment (duplicate volume"
                                                f" name); rename the Secret, for example to"
                                                f" 'coder-db-password'")
        for index, env in enumerate(spec["extra_envs"]):
            field = f"extra_envs[{index}].name"
            if env["name"] in self.chart_env:
                raise InputError(field, f"{field} {env['name']} shadows a variable the Coder v1"
                                        f" chart sets itself from postgres.* values, which the"
                                        f" chart does not support; set the matching option of"
                                        f" this module instead")
            if env["name"] == "CODER_MAX_DB_CONNECTIONS":
                raise InputError(field, f"{field} CODER_MAX_DB_CONNECTIONS is set from the"
                                        f" max_db_connections option (which the budget checks);"
                                        f" set that instead")
        _refuse_owned_overrides(spec["values_overrides"], self.owned_paths)

    def build(self, spec):
        def secret(ref):
            return dict(ref) if ref else {"name": "", "key": ""}

        postgres = {
            # The chart's default is true, and while it is, every other postgres.* key is ignored.
            "default": {"enable": False},
            "host": spec["host"],
            # A string in the chart; quoted in the YAML.
            "port": str(spec["port"]),
            "user": spec["user"],
            "database": spec["database"],
            "searchPath": spec["search_path"] or "",
            "passwordSecret": spec["password_secret"] or "",
            "noPasswordEnv": spec["no_password_env"],
            "sslMode": spec["ssl_mode"],
            "ssl": {
                "certSecret": secret(spec["ssl_cert_secret"]),
                "keySecret": secret(spec["ssl_key_secret"]),
                "rootCertSecret": secret(spec["ssl_root_cert_secret"]),
            },
            "connector": spec["connector"],
        }
        coderd = {
            "replicas": spec["replicas"],
            "extraEnvs": [{"name": "CODER_MAX_DB_CONNECTIONS",
                           "value": str(spec["max_db_connections"])}] + spec["extra_envs"],
        }
        service = {}
        for option, key in (("type", "type"), ("external_traffic_policy", "externalTrafficPolicy"),
                            ("load_balancer_ip", "loadBalancerIP"),
                            ("load_balancer_source_ranges", "loadBalancerSourceRanges")):
            if spec["service"].get(option) is not None:
                service[key] = spec["service"][option]
        if service:
            coderd["serviceSpec"] = service
        if spec["service_account_annotations"]:
            coderd["builtinProviderServiceAccount"] = {
                "annotations": dict(spec["service_account_annotations"])}
        values = {"postgres": postgres, "coderd": coderd}
        ingress = _ingress_values(spec["ingress"])
        if ingress:
            values["ingress"] = ingress
        return values

    @staticmethod
    def finish(values, spec):
        """The v1 chart renders coderd.serviceSpec whole, merged with its defaults, one of which
        is externalTrafficPolicy: Local; the API server allows that field only on Services that
        are reachable from outside (LoadBalancer, NodePort). For any other type the values null
        it (which removes the chart's default), or refuse a policy that the input sets."""
        service = dig(values, "coderd", "serviceSpec")
        if not isinstance(service, dict):
            return
        kind = service.get("type") or "LoadBalancer"

        def origin(option, key):
            if spec["service"].get(option) is not None:
                return f"service.{option}"
            return f"values_overrides.coderd.serviceSpec.{key}"

        if kind not in ("LoadBalancer", "NodePort"):
            if "externalTrafficPolicy" not in service:
                service["externalTrafficPolicy"] = None
            elif service["externalTrafficPolicy"] is not None:
                where = origin("external_traffic_policy", "externalTrafficPolicy")
                raise InputError(where, f"{where} is set, but the Service type is {kind}: the"
                                        f" API server allows an external traffic policy only"
                                        f" for LoadBalancer and NodePort Services; remove"
                                        f" {where}, or use service type LoadBalancer or"
                                        f" NodePort")
        if kind != "LoadBalancer" and service.get("loadBalancerSourceRanges"):
            where = origin("load_balancer_source_ranges", "loadBalancerSourceRanges")
            raise InputError(where, f"{where} is set, but the Service type is {kind}: the API"
                                    f" server allows source ranges only for LoadBalancer"
                                    f" Services; remove {where}, or use service type"
                                    f" LoadBalancer")


# The pool of the Coder v2 chart: CODER_PG_CONN_MAX_OPEN defaults to 10 in Coder v2.
V2_POOL_DEFAULT = 10

# The v2 chart mounts each coder.certs.secrets entry as a volume named ca-cert-<Secret name>.
V2_CA_VOLUME_PREFIX = "ca-cert-"

# Where the v2 values mount the TLS files, and so the paths the connection URL must name.
# The CA bundle goes through coder.certs.secrets, which the chart mounts at
# /etc/ssl/certs/<Secret name>.crt; the client certificate and key through coder.volumes and
# coder.volumeMounts, each under a fixed file name whatever the key in its Secret.
V2_CLIENT_CERT_DIR = "/etc/coder/pg/client-cert"
V2_CLIENT_KEY_DIR = "/etc/coder/pg/client-key"
V2_CLIENT_CERT_FILE = "tls.crt"
V2_CLIENT_KEY_FILE = "tls.key"
# libpq and Go's lib/pq refuse a private key readable by group or others unless root owns it,
# and then allow at most 0640; Kubernetes Secret files are owned by root.
V2_CLIENT_KEY_MODE = 0o640

# Options that only the v2 chart takes, and what to do instead on v1.
V2_ONLY_OPTIONS = {
    "url_secret": "takes the connection as host, port, user, database and password_secret;"
                  " remove url_secret (or set chart_generation v2)",
    "max_idle_connections": "has no idle pool setting; remove max_idle_connections (or set"
                            " chart_generation v2)",
}

# Options that only the v1 chart takes (value: (is it set?, fix on v2)).
V1_ONLY_OPTIONS = {
    "password_secret": (lambda params: bool(params.get("password_secret")),
                        "the password goes into the connection URL Secret named by url_secret"
                        " (key 'url'); remove password_secret"),
    "no_password_env": (lambda params: bool(params.get("no_password_env")),
                        "the v2 chart always reads the URL from the Secret named by url_secret;"
                        " remove no_password_env"),
    "service.load_balancer_source_ranges": (
        lambda params: (params.get("service") or {}).get("load_balancer_source_ranges") is not None,
        "the v2 chart has no coder.service.loadBalancerSourceRanges; restrict the sources in"
        " the load balancer or with a NetworkPolicy, and remove"
        " service.load_balancer_source_ranges"),
}


class _V2Builder:
    """Values of the Coder v2 chart, exactly as the v2 part of the chart contract says."""

    generation = "v2"
    # Env vars this builder sets itself in coder.env.
    owned_env = {
        "CODER_PG_CONNECTION_URL": "url_secret",
        "CODER_PG_AUTH": "connector",
        "CODER_PG_CONN_MAX_OPEN": "max_db_connections",
        "CODER_PG_CONN_MAX_IDLE": "max_idle_connections",
    }
    owned_paths = {
        ("postgres",): "the Coder v2 chart has no postgres block (the database is a URL in the"
                       " Secret named by url_secret); remove it",
        ("coderd",): "coderd.* are Coder v1 chart keys; the v2 chart's keys are under coder.*",
        ("coder", "env"): "set extra_envs (and max_db_connections, max_idle_connections) instead;"
                          " Helm would replace the whole list, dropping CODER_PG_CONNECTION_URL",
        ("coder", "replicaCount"): "set the replicas option instead (it also feeds the budget)",
        ("coder", "certs"): "set ssl_root_cert_secret instead; the URL's sslrootcert names the"
                            " file it mounts",
        ("coder", "volumes"): "the module builds coder.volumes for the client certificate (set"
                              " ssl_cert_secret and ssl_key_secret); Helm would replace the list",
        ("coder", "volumeMounts"): "the module builds coder.volumeMounts for the client"
                                   " certificate; Helm would replace the list",
    }

    @staticmethod
    def refuse_options(params):
        """Refuse the v1-only options first, before the checks that give them a v1 meaning."""
        for option, (is_set, fix) in V1_ONLY_OPTIONS.items():
            if is_set(params):
                raise InputError(option, f"{option} is an option of the Coder v1 chart only;"
                                         f" with chart_generation v2 {fix}")

    def check(self, spec):
        if not spec["url_secret"]:
            raise InputError("url_secret", "url_secret is not set; with chart_generation v2 set"
                                           " it to the Secret, in the release namespace, whose"
                                           " key 'url' holds the whole connection URL (build it"
                                           " with the coderops.deploy.coder_pg_url filter from"
                                           " the connection_url_options this module returns)")
        check_secret_name("url_secret", spec["url_secret"])
        ca = spec["ssl_root_cert_secret"]
        if ca:
            # The chart names the CA volume ca-cert-<Secret name>: a DNS-1123 label of at most 63.
            check_secret_name("ssl_root_cert_secret.name", ca["name"], label=True,
                              max_len=63 - len(V2_CA_VOLUME_PREFIX),
                              why=f", which the Coder v2 chart needs because it names the CA"
                                  f" volume {V2_CA_VOLUME_PREFIX}<Secret name>")
        self._check_pool_version(spec)
        self._take_strategy(spec)
        kind = spec["service"].get("type") or "LoadBalancer"
        for option in ("external_traffic_policy", "load_balancer_ip"):
            if spec["service"].get(option) is not None and kind != "LoadBalancer":
                raise InputError(f"service.{option}",
                                 f"service.{option} is set, but the Coder v2 chart renders it"
                                 f" only for service type LoadBalancer and would drop it for"
                                 f" {kind}; remove service.{option}, or use type LoadBalancer")
        idle = spec["max_idle_connections"]
        if idle is not None:
            if isinstance(idle, bool) or not isinstance(idle, int):
                raise InputError("max_idle_connections", "max_idle_connections must be a whole"
                                                         " number, or leave it out for Coder's"
                                                         " default (auto: max open / 3)")
            if not 0 <= idle <= spec["max_db_connections"]:
                raise InputError("max_idle_connections",
                                 f"max_idle_connections must be between 0 and max_db_connections"
                                 f" ({spec['max_db_connections']}, CODER_PG_CONN_MAX_OPEN); got"
                                 f" {idle}")
        for index, env in enumerate(spec["extra_envs"]):
            field = f"extra_envs[{index}].name"
            if env["name"] in self.owned_env:
                raise InputError(field, f"{field} {env['name']} is set by this module from the"
                                        f" {self.owned_env[env['name']]} option; set that"
                                        f" instead")
        _refuse_owned_overrides(spec["values_overrides"], self.owned_paths)

    @staticmethod
    def _check_pool_version(spec):
        """Coder before 2.30 ignores the pool env and holds 10 open, 3 idle per pool: refuse
        another size, which the budget would count while Coder does not use it."""
        version = spec["coder_version"]
        if honours_pool_env(version):
            return
        spec["pool_fixed"] = True
        since = show(V2_POOL_ENV_SINCE)
        for option, fixed, env in (("max_db_connections", V2_FIXED_POOL_OPEN,
                                    "CODER_PG_CONN_MAX_OPEN"),
                                   ("max_idle_connections", V2_FIXED_POOL_IDLE,
                                    "CODER_PG_CONN_MAX_IDLE")):
            value = spec[option]
            if value is not None and value != fixed:
                raise InputError(option, f"{option} is {value}, but Coder {show(version)} (from"
                                         f" {spec['coder_version_from']}) ignores {env}: before"
                                         f" {since} Coder holds {fixed} per pool whatever it is"
                                         f" set to, so the connection budget would count a"
                                         f" pool Coder does not use. Leave {option} unset (or"
                                         f" set it to {fixed}), or deploy Coder {since} or"
                                         f" later")

    @staticmethod
    def _take_strategy(spec):
        """A coder.strategy in the overrides sets the surge the budget counts, on the charts
        that render it; older charts drop it and Kubernetes' default (25%) applies."""
        strategy = dig(spec["values_overrides"], "coder", "strategy")
        if strategy is None or not chart_has_strategy(spec["coder_version"]):
            return
        where = "values_overrides.coder.strategy"
        if not isinstance(strategy, dict):
            raise InputError(where, f"{where} must be a Deployment strategy (a dictionary with"
                                    f" type and rollingUpdate)")
        kind = strategy.get("type") or "RollingUpdate"
        if kind == "Recreate":
            spec["max_surge_pods"] = 0
            return
        if kind != "RollingUpdate":
            raise InputError(f"{where}.type", f"{where}.type must be RollingUpdate or Recreate;"
                                              f" got {kind!r}")
        surge = dig(strategy, "rollingUpdate", "maxSurge")
        if surge is None:
            return
        if isinstance(surge, int) and not isinstance(surge, bool):
            spec["max_surge_pods"] = surge
        elif isinstance(surge, str) and re.fullmatch(r"\d{1,3}%", surge):
            spec["surge_percent"] = int(surge[:-1])
        else:
            raise InputError(f"{where}.rollingUpdate.maxSurge",
                             f"{where}.rollingUpdate.maxSurge must be a whole number of pods or"
                             f" a percentage such as '25%'; got {surge!r}")

    @staticmethod
    def url_options(spec):
        """What the connection URL in the url_secret Secret must carry (no password).

        Shaped for the coderops.deploy.coder_pg_url filter: the input dictionary (host, port,
        user, database) plus its ssl_mode, search_path and params arguments.
        """
        params = {}
        if spec["ssl_root_cert_secret"]:
            params["sslrootcert"] = f"/etc/ssl/certs/{spec['ssl_root_cert_secret']['name']}.crt"
        if spec["ssl_cert_secret"]:
            params["sslcert"] = f"{V2_CLIENT_CERT_DIR}/{V2_CLIENT_CERT_FILE}"
            params["sslkey"] = f"{V2_CLIENT_KEY_DIR}/{V2_CLIENT_KEY_FILE}"
        return {
            "host": spec["host"],
            "port": spec["port"],
            "user": spec["user"],
            "database": spec["database"],
            "ssl_mode": spec["ssl_mode"],
            "search_path": spec["search_path"],
            "params": params,
            "password_required": spec["connector"] != "awsiamrds",
        }

    def build(self, spec):
        env = [{"name": "CODER_PG_CONNECTION_URL",
                "valueFrom": {"secretKeyRef": {"name": spec["url_secret"], "key": "url"}}}]
        if spec["connector"] == "awsiamrds":
            env.append({"name": "CODER_PG_AUTH", "value": "awsiamrds"})
        idle = spec["max_idle_connections"]
        if honours_pool_env(spec["coder_version"]):
            env.append({"name": "CODER_PG_CONN_MAX_OPEN",
                        "value": str(spec["max_db_connections"])})
            env.append({"name": "CODER_PG_CONN_MAX_IDLE",
                        "value": "auto" if idle is None else str(idle)})
        coder = {"replicaCount": spec["replicas"], "env": env + spec["extra_envs"]}
        if spec["ssl_root_cert_secret"]:
            coder["certs"] = {"secrets": [dict(spec["ssl_root_cert_secret"])]}
        if spec["ssl_cert_secret"]:
            cert, key = spec["ssl_cert_secret"], spec["ssl_key_secret"]
            coder["volumes"] = [
                {"name": "pg-client-cert",
                 "secret": {"secretName": cert["name"],
                            "items": [{"key": cert["key"], "path": V2_CLIENT_CERT_FILE}]}},
                {"name": "pg-client-key",
                 "secret": {"secretName": key["name"], "defaultMode": V2_CLIENT_KEY_MODE,
                            "items": [{"key": key["key"], "path": V2_CLIENT_KEY_FILE}]}},
            ]
            coder["volumeMounts"] = [
                {"name": "pg-client-cert", "mountPath": V2_CLIENT_CERT_DIR, "readOnly": True},
                {"name": "pg-client-key", "mountPath": V2_CLIENT_KEY_DIR, "readOnly": True},
            ]
            # The key is root-owned and 0640 and Coder runs as uid 1000: it reads the key only
            # through the group that fsGroup gives the volume. A podSecurityContext of the user's
            # (values_overrides) is merged over this, so theirs wins.
            coder["podSecurityContext"] = {"fsGroup": CODER_GID}
        service = {}
        for option, key in (("type", "type"), ("external_traffic_policy", "externalTrafficPolicy"),
                            ("load_balancer_ip", "loadBalancerIP")):
            if spec["service"].get(option) is not None:
                service[key] = spec["service"][option]
        if service:
            coder["service"] = service
        ingress = _ingress_values(spec["ingress"])
        if ingress:
            coder["ingress"] = ingress
        if spec["service_account_annotations"]:
            coder["serviceAccount"] = {"annotations": dict(spec["service_account_annotations"])}
        return {"coder": coder}

    @staticmethod
    def finish(values, spec):
        """Nothing to fix on the merged v2 values (the chart renders the Service field by field)."""


BUILDERS = {"v1": _V1Builder(), "v2": _V2Builder()}


def build_values(params):
    """Check the input and build the values. Returns (values, budget); raises InputError."""
    return build_values_and_url(params)[:2]


def build_values_and_url(params):
    """Like build_values; also returns the connection URL options (None for v1)."""
    generation = params.get("chart_generation") or "v1"
    builder = BUILDERS.get(generation)
    if builder is None:
        raise InputError("chart_generation", f"chart_generation {generation!r} is not supported by"
                                             f" this collection version; use one of"
                                             f" {', '.join(sorted(BUILDERS))}")
    builder.refuse_options(params)
    spec = normalise(params)
    builder.check(spec)
    # After the builder's checks: they may set what the chart makes of the pool and the surge.
    spec["budget"] = _budget(params, spec)
    values = builder.build(spec)
    values = helm_merge(values, spec["values_overrides"], names=["values", "values_overrides"])
    builder.finish(values, spec)
    url = builder.url_options(spec) if hasattr(builder, "url_options") else None
    return values, spec["budget"], url


def render_yaml(values):
    """The values file's text: stable key order, so an unchanged input gives the same bytes."""
    header = ("# Helm values for the Coder chart, written by coderops.deploy.coder_values.\n"
              "# They name Secrets only; no password is stored here.\n")
    return header + yaml.safe_dump(values, default_flow_style=False, sort_keys=True,
                                   allow_unicode=True)
