#!/usr/bin/python
# Copyright (c) 2025, coderops maintainers
# GNU General Public License v3.0+ (see LICENSE or https://www.gnu.org/licenses/gpl-3.0.txt)
# SPDX-License-Identifier: GPL-3.0-or-later

from __future__ import annotations

DOCUMENTATION = r"""
module: coder_values
short_description: Build the Helm values of the Coder v1 or v2 chart for an external PostgreSQL server
version_added: 0.1.0
description:
  - Builds the values of the Coder v1 chart (C(coder/coder) from C(https://helm.coder.com)) for an
    external PostgreSQL database, exactly as the chart expects them, and refuses bad input before
    anything is written, with a message that names the option and the fix.
  - The values always set C(postgres.default.enable=false) (the chart's built-in database is on by
    default and hides every other C(postgres.*) key), give the port as a string, put
    C(CODER_MAX_DB_CONNECTIONS) into C(coderd.extraEnvs), and only name Secrets. No password ever
    goes into the values, because Helm keeps every revision's values in its release Secret.
  - With O(pg_facts) (the result of M(coderops.deploy.coder_pg_facts)), the port, user and
    database default to the server's, and the connection budget of O(replicas) x
    O(max_db_connections) is checked against that server; a plan that does not fit is refused with
    the largest pool that would.
  - With O(chart_generation=v2), builds the values of the Coder v2 chart (C(coder/coder) from
    C(https://helm.coder.com/v2)) instead; see the O(chart_generation) option for what they hold and
    RV(connection_url_options) for the connection URL the Secret named by O(url_secret) must hold.
  - Optionally writes the values to O(dest), atomically and with mode C(0600).
author:
  - coderops maintainers (@coderops)
extends_documentation_fragment:
  - coderops.deploy._budget
  - coderops.deploy._attributes
attributes:
  check_mode:
    support: full
    details:
      - With O(dest), reports whether the file would change and writes nothing.
  diff_mode:
    support: full
    details:
      - With O(dest), shows the file's content before and after.
  idempotent:
    support: full
options:
  chart_generation:
    description:
      - The generation of the Coder chart to build values for.
      - V(v1) is Coder "Classic", the chart the deployment guide is written for (C(postgres.*) and
        C(coderd.*) values).
      - V(v2) is today's Coder chart (C(coder.*) values). The database is a URL in the Secret named
        by O(url_secret), and C(coder.env) gets C(CODER_PG_CONNECTION_URL) from its key C(url),
        C(CODER_PG_AUTH=awsiamrds) with O(connector=awsiamrds), C(CODER_PG_CONN_MAX_OPEN) from
        O(max_db_connections) and C(CODER_PG_CONN_MAX_IDLE) from O(max_idle_connections);
        C(coder.replicaCount) comes from O(replicas). The CA bundle of O(ssl_root_cert_secret) is
        mounted through C(coder.certs.secrets) at C(/etc/ssl/certs/<Secret name>.crt); the client
        certificate and key of O(ssl_cert_secret) and O(ssl_key_secret) through C(coder.volumes) and
        C(coder.volumeMounts) at C(/etc/coder/pg/client-cert/tls.crt) and
        C(/etc/coder/pg/client-key/tls.key) (the key with mode C(0640), the most libpq allows for
        a file root owns). The URL must name those files; RV(connection_url_options) returns them.
      - O(password_secret), O(no_password_env) and O(service.load_balancer_source_ranges) are
        refused with V(v2); O(url_secret) and O(max_idle_connections) are refused with V(v1).
    type: str
    default: v1
    choices: [v1, v2]
  url_secret:
    description:
      - With O(chart_generation=v2), the name of the Kubernetes Secret, in the release namespace,
        whose key C(url) holds the whole connection URL (C(CODER_PG_CONNECTION_URL)); required then.
      - Build the URL with the P(coderops.deploy.coder_pg_url#filter) filter from
        RV(connection_url_options), so that it names the certificate files these values mount.
      - Refused with O(chart_generation=v1).
    type: str
    version_added: 0.2.0
  coder_version:
    description:
      - The Coder version the values deploy, such as V(2.30.1) or V(v2.30.1) - the chart's
        C(appVersion). An image tag set in O(values_overrides) (C(coder.image.tag) for v2,
        C(coderd.image) for v1) wins over it.
      - With O(chart_generation=v2), it decides the pool (see O(max_db_connections)) and whether
        the chart renders C(coder.strategy).
      - When not given (and no image tag is set), Coder is taken to honour the pool variables
        and the chart to render C(coder.strategy).
    type: str
    version_added: 0.2.0
  max_db_connections:
    description:
      - Size of each replica's connection pool.
      - With O(chart_generation=v1), C(CODER_MAX_DB_CONNECTIONS); V(30) when not given (Coder's default).
      - With O(chart_generation=v2), C(CODER_PG_CONN_MAX_OPEN); V(10) when not given (Coder's default).
      - C(CODER_PG_CONN_MAX_OPEN) and C(CODER_PG_CONN_MAX_IDLE) exist from Coder 2.30 on. Coder 2.25
        to 2.29 hold 10 open and 3 idle connections per pool whatever the env says, so with an
        older O(coder_version) the values leave both variables out, the budget counts 10, and a
        O(max_db_connections) other than 10 (or a O(max_idle_connections) other than 3) is refused.
    type: int
    # The shared budget fragment says 30; here the default depends on chart_generation.
    default: null
  max_idle_connections:
    description:
      - With O(chart_generation=v2), C(CODER_PG_CONN_MAX_IDLE), between 0 and O(max_db_connections).
        When not given, V(auto) (Coder's default, a third of the open connections).
      - Refused with O(chart_generation=v1). With a Coder v2 older than 2.30, refused unless V(3)
        (see O(max_db_connections)).
    type: int
    version_added: 0.2.0
  extra_connections_per_replica:
    description:
      - Connections each replica (and each surge pod of a rolling update) holds besides its pool
        of O(max_db_connections); they count in the connection budget.
      - With O(chart_generation=v1), V(0) when not given (coderd holds only its pool).
      - With O(chart_generation=v2), V(5) when not given. This is an assumption, not a number from
        the chart. Coder v2 keeps a connection for its pub/sub listener (PostgreSQL LISTEN) outside
        the C(CODER_PG_CONN_MAX_OPEN) pool, and opens short-lived connections besides (the schema
        migration at start-up, internal pools); 5 covers the listener and a few of those with a
        margin. Measure the real use (C(pg_stat_activity), the C(go_sql_open_connections) metric)
        and override it when it differs.
      - Between 0 and 1000.
    type: int
    # The shared budget fragment says 0; here the default depends on chart_generation.
    default: null
    version_added: 0.2.0
  pg_facts:
    description:
      - The registered result of M(coderops.deploy.coder_pg_facts) for the server.
      - Supplies O(port), O(user) and O(database) when they are not given, and the server's numbers
        for the connection budget, which must then fit.
    type: dict
  host:
    description:
      - DNS name or IP address of the database server, as the Coder pods reach it (C(postgres.host)).
      - Required; M(coderops.deploy.coder_pg_facts) does not return it.
    type: str
  port:
    description:
      - Port of the database server as the Coder pods reach it, 1-65535; a number or a string of digits.
      - Defaults to RV(coderops.deploy.coder_pg_facts#module:port) of O(pg_facts), which is the
        server's own port; behind a proxy or a port mapping, give the client port here.
      - Written as a string (C(postgres.port) is a string in the chart).
    type: raw
  user:
    description:
      - The PostgreSQL role Coder logs in as (C(postgres.user)). Defaults to the user of O(pg_facts).
    type: str
  database:
    description:
      - Coder's database, which must already exist (C(postgres.database)). Defaults to the database of O(pg_facts).
    type: str
  search_path:
    description:
      - Schema search path (C(postgres.searchPath), rendered as C(DB_SEARCH_PATH)).
    type: str
  password_secret:
    description:
      - Name of the Kubernetes Secret, in the release namespace, whose key C(password) holds the
        database password (C(postgres.passwordSecret)). Leave it out for no password.
      - A DNS-1123 name; a DNS-1123 label (no dots, at most 63 characters) with O(no_password_env),
        because the chart then names a volume after it.
      - Not with O(connector=awsiamrds).
    type: str
  no_password_env:
    description:
      - Mount the password as a file (C(DB_PASSWORD_PATH)) instead of passing it in an
        environment variable (C(postgres.noPasswordEnv)). Needs O(password_secret).
    type: bool
    default: false
  ssl_mode:
    description:
      - libpq C(sslmode) Coder connects with (C(postgres.sslMode)).
      - V(verify-ca) and V(verify-full) need O(ssl_root_cert_secret).
    type: str
    default: require
    choices: [disable, allow, prefer, require, verify-ca, verify-full]
  ssl_cert_secret:
    description:
      - The Secret and key holding the client certificate (PEM) for mTLS (C(postgres.ssl.certSecret)).
      - Needs O(ssl_key_secret).
    type: dict
    suboptions:
      name:
        description: Name of the Secret (a DNS-1123 name).
        type: str
        required: true
      key:
        description: Key inside the Secret.
        type: str
        required: true
  ssl_key_secret:
    description:
      - The Secret and key holding the client certificate's private key (PEM) (C(postgres.ssl.keySecret)).
      - Needs O(ssl_cert_secret).
    type: dict
    suboptions:
      name:
        description: Name of the Secret (a DNS-1123 name).
        type: str
        required: true
      key:
        description: Key inside the Secret.
        type: str
        required: true
  ssl_root_cert_secret:
    description:
      - The Secret and key holding the CA bundle (PEM) that signed the server's certificate
        (C(postgres.ssl.rootCertSecret)).
    type: dict
    suboptions:
      name:
        description: Name of the Secret (a DNS-1123 name).
        type: str
        required: true
      key:
        description: Key inside the Secret.
        type: str
        required: true
  connector:
    description:
      - V(postgres), or V(awsiamrds) for AWS IAM authentication to RDS (C(postgres.connector)).
      - V(awsiamrds) takes no O(password_secret); put the IRSA role annotation into
        O(service_account_annotations).
    type: str
    default: postgres
    choices: [postgres, awsiamrds]
  extra_envs:
    description:
      - More environment variables for the migrations and coderd containers, appended after
        C(CODER_MAX_DB_CONNECTIONS) in C(coderd.extraEnvs).
      - Each entry has C(name) and either C(value) (a string) or C(valueFrom) (a Kubernetes EnvVarSource).
      - Refused when it shadows a variable the chart sets itself (C(DB_HOST), C(DB_PORT), C(DB_USER),
        C(DB_NAME), C(DB_CONNECTOR), C(DB_SSL_MODE), C(DB_SEARCH_PATH), C(DB_PASSWORD),
        C(DB_PASSWORD_PATH), C(DB_CERT), C(DB_KEY), C(DB_ROOT_CERT), C(SKIP_MIGRATIONS)) or
        C(CODER_MAX_DB_CONNECTIONS) (set O(max_db_connections)).
    type: list
    elements: dict
    default: []
  service:
    description:
      - The coderd Service (C(coderd.serviceSpec)); only the options given are set.
    type: dict
    suboptions:
      type:
        description: C(coderd.serviceSpec.type).
        type: str
        choices: [ClusterIP, NodePort, LoadBalancer]
      external_traffic_policy:
        description: C(coderd.serviceSpec.externalTrafficPolicy).
        type: str
        choices: [Cluster, Local]
      load_balancer_ip:
        description: C(coderd.serviceSpec.loadBalancerIP).
        type: str
      load_balancer_source_ranges:
        description: C(coderd.serviceSpec.loadBalancerSourceRanges).
        type: list
        elements: str
  ingress:
    description:
      - An ingress in front of coderd (C(ingress.*)); only the options given are set.
    type: dict
    suboptions:
      enable:
        description: C(ingress.enable).
        type: bool
      host:
        description: C(ingress.host).
        type: str
      class_name:
        description: C(ingress.className).
        type: str
      tls_enable:
        description: C(ingress.tls.enable).
        type: bool
  service_account_annotations:
    description:
      - Annotations of the coderd service account (C(coderd.builtinProviderServiceAccount.annotations)),
        for example the IRSA role for O(connector=awsiamrds).
    type: dict
    default: {}
  values_overrides:
    description:
      - More values, deep-merged last the way Helm merges values files (maps merge, lists and
        scalars replace, a null removes the key and its chart default).
      - With O(chart_generation=v2), a C(coder.strategy) here sets the surge the connection budget
        counts (V(Recreate) none, C(rollingUpdate.maxSurge) as pods or a percentage), on charts
        from the 2.32 line on; older charts have no C(coder.strategy) and Kubernetes' 25% applies.
      - A C(coder.podSecurityContext) here is merged over the one the module sets for a client
        certificate (C(fsGroup) 1000), so its keys win.
      - Keys this module builds from checked options are refused here (C(postgres.*),
        C(coderd.replicas), C(coderd.extraEnvs)); set the options instead.
    type: dict
    default: {}
  dest:
    description:
      - Write the values as YAML to this file, atomically, with mode C(0600).
      - The module reports RV(changed) only when the content or the mode differs.
    type: path
  built_from:
    description:
      - Any text, returned unchanged as RV(built_from) - a digest of what the values are built from,
        say - so that a play that registers the result can tell later whether it is still current,
        and build the values again only when it is not (the helm_release role does).
    type: str
    version_added: 0.2.0
notes:
  - The values only name Secrets. Create the Secrets themselves separately (the password Secret
    keeps the password under the key C(password)).
  - With O(dest), the host that runs the module needs PyYAML.
  - Read the result's values as C(result['values']) in Jinja; C(result.values) is the dictionary's C(values) method.
  - With O(chart_generation=v2) and a client certificate, the key file is mounted with mode C(0640)
    and owned by root (libpq and Go's lib/pq refuse a key that group or others can read unless
    root owns it, and then allow at most C(0640)). The Coder container runs as user 1000 and
    reads the key through the group, so the values set C(coder.podSecurityContext.fsGroup) to
    1000.
  - With O(chart_generation=v2), the CA Secret of O(ssl_root_cert_secret) becomes a volume named
    C(ca-cert-<Secret name>), so its name must be a DNS-1123 label of at most 55 characters.
  - With O(chart_generation=v1), the chart merges C(coderd.serviceSpec) with its defaults, which
    carry C(externalTrafficPolicy=Local); for a Service of type C(ClusterIP) the values set it to
    null (the API server allows it only for C(LoadBalancer) and C(NodePort)). With
    O(no_password_env), the password Secret must not share a name with a volume of the chart
    (C(tmp-pgcerts), and C(pgcert), C(pgkey), C(pgrootcert) while those are in use).
  - With O(chart_generation=v2), the values name the URL Secret only. Create it separately, with
    the URL under the key C(url), built from RV(connection_url_options) and the password.
seealso:
  - module: coderops.deploy.coder_pg_facts
  - plugin: coderops.deploy.coder_values_merge
    plugin_type: filter
  - plugin: coderops.deploy.coder_connection_budget
    plugin_type: filter
"""

EXAMPLES = r"""
- name: Read the server's facts
  coderops.deploy.coder_pg_facts:
    login_host: db.example.internal
    login_user: coder
    login_password: "{{ coder_db_password }}"
    login_db: coder
    ssl_mode: verify-full
    ca_cert: /etc/coder/pg-ca.crt
    replicas: 3
  register: coder_pg

- name: Build the values, checked against the server's connection budget
  coderops.deploy.coder_values:
    pg_facts: "{{ coder_pg }}"
    host: db.example.internal
    password_secret: coder-db-password
    ssl_mode: verify-full
    ssl_root_cert_secret:
      name: coder-db-ca
      key: ca.crt
    replicas: 3
    max_db_connections: 30
    service:
      type: LoadBalancer
      external_traffic_policy: Local
    values_overrides:
      coderd:
        resources:
          requests:
            cpu: "1"
    dest: /etc/coder/values.yaml
  register: coder_values

- name: Values for Amazon RDS with IAM authentication
  coderops.deploy.coder_values:
    host: coder.abc123.eu-west-1.rds.amazonaws.com
    port: 5432
    user: coder
    database: coder
    connector: awsiamrds
    ssl_mode: verify-full
    ssl_root_cert_secret:
      name: rds-ca
      key: global-bundle.pem
    service_account_annotations:
      eks.amazonaws.com/role-arn: arn:aws:iam::123456789012:role/coder-rds
  register: coder_values

- name: Values for the Coder v2 chart; the Secret coder-db-url holds the URL under the key url
  coderops.deploy.coder_values:
    chart_generation: v2
    pg_facts: "{{ coder_pg }}"
    host: db.example.internal
    url_secret: coder-db-url
    ssl_mode: verify-full
    ssl_root_cert_secret:
      name: coder-db-ca
      key: ca.crt
    replicas: 3
    max_db_connections: 10
  register: coder_values_v2

- name: The URL for that Secret, naming the CA file the values mount
  ansible.builtin.set_fact:
    coder_db_url: >-
      {{ coder_values_v2.connection_url_options | coderops.deploy.coder_pg_url(
           password=coder_db_password,
           ssl_mode=coder_values_v2.connection_url_options.ssl_mode,
           search_path=coder_values_v2.connection_url_options.search_path,
           params=coder_values_v2.connection_url_options.params) }}
  no_log: true
"""

RETURN = r"""
values:
  description:
    - The Helm values (O(values_overrides) merged in).
    - In Jinja, write C(result['values']); C(result.values) is the dictionary's C(values) method.
  returned: success
  type: dict
  sample:
    postgres:
      default:
        enable: false
      host: db.example.internal
      port: "5432"
      user: coder
      database: coder
      searchPath: ""
      passwordSecret: coder-db-password
      noPasswordEnv: false
      sslMode: verify-full
      ssl:
        certSecret: {name: "", key: ""}
        keySecret: {name: "", key: ""}
        rootCertSecret: {name: coder-db-ca, key: ca.crt}
      connector: postgres
    coderd:
      replicas: 3
      extraEnvs:
        - name: CODER_MAX_DB_CONNECTIONS
          value: "30"
connection_url_options:
  description:
    - With O(chart_generation=v2), what the connection URL in the Secret named by O(url_secret) must
      carry, without the password. Shaped for the P(coderops.deploy.coder_pg_url#filter) filter; the
      dictionary itself is its input (it reads C(host), C(port), C(user) and C(database)), and
      C(ssl_mode), C(search_path) and C(params) are its arguments of the same names.
    - V(null) with O(chart_generation=v1).
  returned: success
  type: dict
  version_added: 0.2.0
  contains:
    host:
      description: The database host.
      type: str
    port:
      description: The database port.
      type: int
    user:
      description: The PostgreSQL role.
      type: str
    database:
      description: The database.
      type: str
    ssl_mode:
      description: The C(sslmode) of the URL.
      type: str
    search_path:
      description: The C(search_path) of the URL, or V(null) for none.
      type: str
    params:
      description:
        - More URL parameters, C(sslrootcert), C(sslcert) and C(sslkey), naming the files the
          values mount; empty without certificates.
      type: dict
    password_required:
      description: Whether the URL carries a password (V(false) with O(connector=awsiamrds)).
      type: bool
  sample:
    host: db.example.internal
    port: 5432
    user: coder
    database: coder
    ssl_mode: verify-full
    search_path: null
    params: {sslrootcert: /etc/ssl/certs/coder-db-ca.crt}
    password_required: true
built_from:
  description: O(built_from), unchanged.
  returned: when O(built_from) is given
  type: str
  version_added: 0.2.0
  sample: 3f786850e387550fdab836ed7e6dc881de23001b
coder_version:
  description:
    - The Coder version these values deploy - an image tag set in O(values_overrides) wins over
      O(coder_version) (the chart's appVersion) - and where it comes from. The preflight role
      compares it with the running Coder's to refuse a downgrade or a skipped stepping stone.
  returned: success
  type: dict
  version_added: 0.2.0
  contains:
    version:
      description: The version without a leading C(v); V(null) when it cannot be told (no
        O(coder_version), or an image tag that is not a version, such as C(latest)).
      type: str
    source:
      description: Where it comes from (V(coder_version), or the image tag's place in O(values_overrides)).
      type: str
  sample: {version: 2.31.0, source: coder_version}
budget:
  description:
    - The connection budget with the numbers of O(pg_facts), shaped like
      RV(coderops.deploy.coder_pg_facts#module:budget). V(null) without O(pg_facts).
  returned: success
  type: dict
  sample: {"available": 97, "needed_steady": 90, "needed_peak": 120, "headroom": -23, "ok": false,
           "suggested_max_db_connections": 24}
dest:
  description: The file written, when O(dest) is set.
  returned: when O(dest) is set
  type: str
  sample: /etc/coder/values.yaml
changed:
  description:
    - Whether O(dest) was (or, in check mode, would be) written or its mode fixed.
    - Always V(false) without O(dest).
  returned: always
  type: bool
  sample: true
"""

from ansible.module_utils.basic import AnsibleModule, missing_required_lib
from ansible_collections.coderops.deploy.plugins.module_utils._budget import (
    budget_argument_spec,
)
from ansible_collections.coderops.deploy.plugins.module_utils._coder_values import (
    BUILDERS,
    HAS_YAML,
    build_values_and_url,
    render_yaml,
    target_version,
)
from ansible_collections.coderops.deploy.plugins.module_utils._files import (
    FileError,
    ensure_file,
)
from ansible_collections.coderops.deploy.plugins.module_utils._inputs import (
    CONNECTORS,
    SSL_MODES,
    InputError,
)

VALUES_FILE_MODE = 0o600


def _secret_ref_spec():
    return {
        "type": "dict",
        "no_log": False,
        "options": {
            "name": {"type": "str", "required": True},
            "key": {"type": "str", "required": True, "no_log": False},
        },
    }


def main():
    argument_spec = budget_argument_spec()
    # Their defaults depend on chart_generation (build_values_and_url fills them in).
    argument_spec["max_db_connections"].pop("default")
    argument_spec["extra_connections_per_replica"].pop("default")
    argument_spec.update(
        url_secret={"type": "str", "no_log": False},
        max_idle_connections={"type": "int"},
        coder_version={"type": "str"},
        chart_generation={"type": "str", "default": "v1", "choices": sorted(BUILDERS)},
        pg_facts={"type": "dict"},
        host={"type": "str"},
        port={"type": "raw"},
        user={"type": "str"},
        database={"type": "str"},
        search_path={"type": "str"},
        password_secret={"type": "str", "no_log": False},
        no_password_env={"type": "bool", "default": False, "no_log": False},
        ssl_mode={"type": "str", "default": "require", "choices": list(SSL_MODES)},
        ssl_cert_secret=_secret_ref_spec(),
        ssl_key_secret=_secret_ref_spec(),
        ssl_root_cert_secret=_secret_ref_spec(),
        connector={"type": "str", "default": "postgres", "choices": list(CONNECTORS)},
        extra_envs={"type": "list", "elements": "dict", "default": []},
        service={"type": "dict", "options": {
            "type": {"type": "str", "choices": ["ClusterIP", "NodePort", "LoadBalancer"]},
            "external_traffic_policy": {"type": "str", "choices": ["Cluster", "Local"]},
            "load_balancer_ip": {"type": "str"},
            "load_balancer_source_ranges": {"type": "list", "elements": "str"},
        }},
        ingress={"type": "dict", "options": {
            "enable": {"type": "bool"},
            "host": {"type": "str"},
            "class_name": {"type": "str"},
            "tls_enable": {"type": "bool"},
        }},
        service_account_annotations={"type": "dict", "default": {}},
        values_overrides={"type": "dict", "default": {}},
        dest={"type": "path"},
        built_from={"type": "str", "no_log": False},
    )
    module = AnsibleModule(argument_spec=argument_spec, supports_check_mode=True)

    try:
        values, budget, url_options = build_values_and_url(module.params)
    except InputError as exc:
        module.fail_json(msg=str(exc), field=exc.field, changed=False)

    version, version_from = target_version(module.params)
    result = {"changed": False, "values": values, "budget": budget,
              "connection_url_options": url_options,
              "coder_version": {"version": version, "source": version_from}}
    if module.params["built_from"] is not None:
        result["built_from"] = module.params["built_from"]
    dest = module.params["dest"]
    if dest:
        if not HAS_YAML:
            module.fail_json(msg=missing_required_lib("PyYAML"), changed=False)
        content = render_yaml(values)
        try:
            changed, before, before_mode = ensure_file(dest, content, VALUES_FILE_MODE,
                                                       module.check_mode)
        except FileError as exc:
            module.fail_json(msg=str(exc), field="dest", changed=False)
        result.update(changed=changed, dest=dest)
        if module._diff:
            old_mode = "absent" if before_mode is None else f"mode {before_mode:04o}"
            result["diff"] = {"before": before or "", "after": content,
                              "before_header": f"{dest} ({old_mode})",
                              "after_header": f"{dest} (mode {VALUES_FILE_MODE:04o})"}
    module.exit_json(**result)


if __name__ == "__main__":
    main()
