#!/usr/bin/python
# Copyright (c) 2025, coderops maintainers
# GNU General Public License v3.0+ (see LICENSE or https://www.gnu.org/licenses/gpl-3.0.txt)
# SPDX-License-Identifier: GPL-3.0-or-later

from __future__ import annotations

DOCUMENTATION = r"""
module: coder_values
short_description: Build the Helm values of the Coder chart for an external PostgreSQL server
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
      - Only V(v1) (Coder "Classic", the chart the deployment guide is written for) for now.
    type: str
    default: v1
    choices: [v1]
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
      - Keys this module builds from checked options are refused here (C(postgres.*),
        C(coderd.replicas), C(coderd.extraEnvs)); set the options instead.
    type: dict
    default: {}
  dest:
    description:
      - Write the values as YAML to this file, atomically, with mode C(0600).
      - The module reports RV(changed) only when the content or the mode differs.
    type: path
notes:
  - The values only name Secrets. Create the Secrets themselves separately (the password Secret
    keeps the password under the key C(password)).
  - With O(dest), the host that runs the module needs PyYAML.
  - Read the result's values as C(result['values']) in Jinja; C(result.values) is the dictionary's C(values) method.
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
    build_values,
    render_yaml,
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
    argument_spec.update(
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
    )
    module = AnsibleModule(argument_spec=argument_spec, supports_check_mode=True)

    try:
        values, budget = build_values(module.params)
    except InputError as exc:
        module.fail_json(msg=str(exc), field=exc.field, changed=False)

    result = {"changed": False, "values": values, "budget": budget}
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
