#!/usr/bin/python
# Copyright (c) 2026, coderops maintainers
# GNU General Public License v3.0+ (see LICENSE or https://www.gnu.org/licenses/gpl-3.0.txt)
# SPDX-License-Identifier: GPL-3.0-or-later

from __future__ import annotations

DOCUMENTATION = r"""
module: coder_db_secrets
short_description: Write the namespace and the database Secrets of a Coder release in one run
version_added: 0.2.0
description:
  - Writes what the Coder charts read the database connection from, all in one run and one API
    client - the namespace (with O(create_namespace)), the password Secret of the v1 chart (key
    C(password); in place, or immutable and versioned with O(immutable_versions)), the connection
    URL Secret of the v2 chart (key C(url)), the client certificate (a C(kubernetes.io/tls)
    Secret) and the CA bundle (key C(ca.crt)).
  - Every input rule is checked before anything is written.
  - The Secrets' data never leaves the module - not in its result, its diff (Secrets and keys
    only), nor its errors. An API error is quoted only when its message holds no form of the data
    (as it is, base64, percent-encoded or quoted). Data goes in as base64 C(data), never
    C(stringData), and without client-side apply (no last-applied annotation holds it).
  - Every Secret gets the labels C(app.kubernetes.io/managed-by=coderops.deploy),
    C(app.kubernetes.io/part-of=coder) and C(coderops.io/release=<release_name>), so that
    O(state=absent) finds them; versions of an immutable Secret also C(coderops.io/secret-family).
  - "Written because M(kubernetes.core.k8s) returns the object it wrote, data included, loads the
    client and the API discovery again on every run (three to five runs per deploy), and cannot
    choose the version of an immutable Secret that holds a password."
author:
  - coderops maintainers (@coderops)
extends_documentation_fragment:
  - coderops.deploy._k8s_auth
  - coderops.deploy._attributes
attributes:
  check_mode:
    support: full
    details:
      - Every write is a server-side dry run. In a namespace that this run would create, the
        Secrets are reported as to be created.
  diff_mode:
    support: full
    details:
      - Names the namespace and the Secrets with their type and keys, and the keys whose data
        changes; never the data.
  idempotent:
    support: full
options:
  state:
    description:
      - V(present) writes the namespace and the Secrets.
      - V(cleanup) deletes the versions of the immutable password Secret O(password_secret) but
        O(keep_password_secret) (after a good rollout to that one).
      - V(absent) deletes every Secret with this module's labels for O(release_name).
    type: str
    choices: [present, cleanup, absent]
    default: present
  namespace:
    description: The release's namespace.
    type: str
    required: true
  create_namespace:
    description: Create O(namespace) when it does not exist.
    type: bool
    default: false
  release_name:
    description: The Helm release the Secrets belong to (their C(coderops.io/release) label).
    type: str
    required: true
  extra_labels:
    description: More labels for every Secret.
    type: dict
    default: {}
  chart_generation:
    description:
      - V(v1) writes the password Secret O(password_secret); V(v2) the connection URL Secret O(url_secret).
    type: str
    choices: [v1, v2]
    default: v1
  db_connector:
    description: V(awsiamrds) takes no password (an AWS IAM token logs in).
    type: str
    choices: [postgres, awsiamrds]
    default: postgres
  db_password:
    description:
      - The database password. Empty or not set - no password Secret (v1), a URL without a password (v2).
      - Refused with leading or trailing white space, and with v2 with a control character.
    type: str
  password_secret:
    description:
      - Name of the v1 password Secret; with O(immutable_versions) the base of the versions'
        names (C(<name>-v<N>)).
    type: str
    default: coder-db-password
  password_as_file:
    description:
      - Whether the chart mounts the password as a file (v1 C(postgres.noPasswordEnv)); it names a
        volume after the Secret, so O(password_secret) must then be a DNS-1123 label.
    type: bool
    default: false
  immutable_versions:
    description:
      - Write the v1 password Secret as immutable versions - the version that holds the password
        is reused, else the next one is created. RV(password_secret_name) names it.
    type: bool
    default: false
  url_secret:
    description: Name of the v2 connection URL Secret.
    type: str
    default: coder-db-url
  url_options:
    description:
      - With O(chart_generation=v2), what the URL carries besides the password - the
        RV(coderops.deploy.coder_values#module:connection_url_options) of M(coderops.deploy.coder_values).
    type: dict
  ssl_cert_file:
    description: The client certificate (PEM) for O(ssl_client_secret), read on the host that runs the module.
    type: path
  ssl_key_file:
    description: Its private key (PEM).
    type: path
  ssl_client_secret:
    description: Name of the C(kubernetes.io/tls) Secret made from O(ssl_cert_file) and O(ssl_key_file).
    type: str
    default: coder-db-client-tls
  ssl_ca_file:
    description: The CA bundle (PEM) for O(ssl_ca_secret).
    type: path
  ssl_ca_secret:
    description: Name of the Secret (key C(ca.crt)) made from O(ssl_ca_file).
    type: str
    default: coder-db-ca
  keep_password_secret:
    description: With O(state=cleanup), the version of O(password_secret) that stays.
    type: str
  names:
    description:
      - "How the messages name the options - the variable that sets each, as C(option: variable).
        An option not listed is named as itself."
    type: dict
    default: {}
seealso:
  - module: coderops.deploy.coder_values
  - module: kubernetes.core.k8s
"""

EXAMPLES = r"""
- name: The v1 password Secret and the CA bundle
  coderops.deploy.coder_db_secrets:
    namespace: coder
    create_namespace: true
    release_name: coder
    db_password: "{{ vault_coder_db_password }}"
    ssl_ca_file: /etc/coder/db-ca.pem
  register: coder_secrets

- name: The v2 connection URL Secret, from what coder_values says the URL must carry
  coderops.deploy.coder_db_secrets:
    namespace: coder
    release_name: coder
    chart_generation: v2
    db_password: "{{ vault_coder_db_password }}"
    url_options: "{{ coder_values_v2.connection_url_options }}"

- name: After a good rollout, remove the superseded immutable versions
  coderops.deploy.coder_db_secrets:
    state: cleanup
    namespace: coder
    release_name: coder
    keep_password_secret: "{{ coder_secrets.password_secret_name }}"
"""

RETURN = r"""
namespace:
  description: The namespace, and whether this run created it.
  returned: always
  type: dict
  sample: {"name": "coder", "created": false}
secrets:
  description: The Secrets written, each with its name, type, keys and V(created), V(updated) or V(unchanged).
  returned: success
  type: list
  elements: dict
  sample: [{"name": "coder-db-password-v2", "type": "Opaque", "keys": ["password"], "action": "created"}]
password_secret_name:
  description:
    - The v1 password Secret the values must name (a version with O(immutable_versions)).
    - V(null) when none was written.
  returned: always
  type: str
  sample: coder-db-password-v2
password_secret_new:
  description: Whether O(immutable_versions) created a new version (the pods roll to it).
  returned: always
  type: bool
summary:
  description: One line on what happened to the namespace and each Secret (or what was deleted).
  returned: success
  type: str
  sample: "Secret coder-db-password: written; Secret coder-db-ca: unchanged"
deleted:
  description: The Secrets deleted (O(state=cleanup) or O(state=absent)).
  returned: always
  type: list
  elements: str
field:
  description: The option at fault.
  returned: failure, when one is to blame
  type: str
  sample: ssl_cert_file
"""

from ansible.module_utils.basic import AnsibleModule
from ansible_collections.coderops.deploy.plugins.module_utils._db_secrets import SecretsError, run
from ansible_collections.coderops.deploy.plugins.module_utils._kube import (
    Kube,
    KubeAuth,
    KubeError,
    auth_argument_spec,
)


def main():
    argument_spec = auth_argument_spec()
    argument_spec.update(
        state={"type": "str", "choices": ["present", "cleanup", "absent"], "default": "present"},
        namespace={"type": "str", "required": True},
        create_namespace={"type": "bool", "default": False},
        release_name={"type": "str", "required": True},
        extra_labels={"type": "dict", "default": {}},
        chart_generation={"type": "str", "choices": ["v1", "v2"], "default": "v1"},
        db_connector={"type": "str", "choices": ["postgres", "awsiamrds"], "default": "postgres"},
        db_password={"type": "str", "no_log": True},
        password_secret={"type": "str", "default": "coder-db-password", "no_log": False},
        password_as_file={"type": "bool", "default": False, "no_log": False},
        immutable_versions={"type": "bool", "default": False},
        url_secret={"type": "str", "default": "coder-db-url", "no_log": False},
        url_options={"type": "dict"},
        ssl_cert_file={"type": "path"},
        ssl_key_file={"type": "path", "no_log": False},
        ssl_client_secret={"type": "str", "default": "coder-db-client-tls", "no_log": False},
        ssl_ca_file={"type": "path"},
        ssl_ca_secret={"type": "str", "default": "coder-db-ca", "no_log": False},
        keep_password_secret={"type": "str", "no_log": False},
        names={"type": "dict", "default": {}},
    )
    module = AnsibleModule(argument_spec=argument_spec, supports_check_mode=True)
    try:
        result = run(module.params, lambda: Kube(auth=KubeAuth(module.params)), module.check_mode)
    except (SecretsError, KubeError) as exc:
        module.fail_json(msg=exc.message, field=exc.field)
    diff = result.pop("diff")
    if module._diff:
        result["diff"] = diff
    module.exit_json(**result)


if __name__ == "__main__":
    main()
