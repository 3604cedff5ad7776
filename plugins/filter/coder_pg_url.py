# Copyright (c) 2025, coderops maintainers
# GNU General Public License v3.0+ (see LICENSE or https://www.gnu.org/licenses/gpl-3.0.txt)
# SPDX-License-Identifier: GPL-3.0-or-later

from __future__ import annotations

DOCUMENTATION = r"""
name: coder_pg_url
short_description: A URL-encoded PostgreSQL connection URL for the Coder v2 chart's Secret
version_added: 0.1.0
author: coderops maintainers (@coderops)
description:
  - Builds C(postgres://USER:PASSWORD@HOST:PORT/DATABASE?sslmode=MODE), the value the Coder v2
    chart reads from a Secret as C(CODER_PG_CONNECTION_URL).
  - User, password, database and query values are percent-encoded, so any character is safe; an
    IPv6 address goes in brackets.
  - Error messages name the field at fault and never contain the password.
  - The result holds the password. Put it only into a Secret, with C(no_log) on the task.
options:
  _input:
    description:
      - A dictionary with C(host), C(port), C(user) and C(database); for example the result of
        M(coderops.deploy.coder_pg_facts) combined with C(host).
    type: dict
    required: true
  password:
    description:
      - The password; left out for a login without one (a client certificate, or AWS IAM).
      - No leading or trailing white space, no control characters.
    type: str
  ssl_mode:
    description: libpq C(sslmode).
    type: str
    default: require
    choices: [disable, allow, prefer, require, verify-ca, verify-full]
  search_path:
    description: A schema search path, added as C(search_path=).
    type: str
  params:
    description: More query parameters (for example C(sslrootcert)), added in key order.
    type: dict
seealso:
  - module: coderops.deploy.coder_pg_facts
"""

EXAMPLES = r"""
- name: The connection URL Secret of the Coder v2 chart
  kubernetes.core.k8s:
    state: present
    definition:
      apiVersion: v1
      kind: Secret
      metadata:
        name: coder-db-url
        namespace: coder
      stringData:
        url: >-
          {{ coder_pg | combine({'host': 'db.example.internal', 'port': 5432})
             | coderops.deploy.coder_pg_url(password=coder_db_password, ssl_mode='verify-full',
                                            params={'sslrootcert': '/etc/ssl/certs/coder-db-ca.crt'}) }}
  no_log: true
"""

RETURN = r"""
_value:
  description: The URL.
  type: string
  sample: postgres://coder:s%3Dcr%40t%20pw@db.example.internal:5432/coder?sslmode=verify-full
"""

from ansible.errors import AnsibleFilterError
from ansible_collections.coderops.deploy.plugins.module_utils._inputs import InputError, type_name
from ansible_collections.coderops.deploy.plugins.module_utils._pg_url import pg_url

_NAME = "coderops.deploy.coder_pg_url"


def coder_pg_url(connection, password=None, ssl_mode="require", search_path=None, params=None):
    if not isinstance(connection, dict):
        raise AnsibleFilterError(f"{_NAME}: the input must be a dictionary with host, port, user"
                                 f" and database; got {type_name(connection)}")
    missing = [k for k in ("host", "port", "user", "database") if connection.get(k) in (None, "")]
    if missing:
        raise AnsibleFilterError(f"{_NAME}: the input lacks {', '.join(missing)}; give a"
                                 f" dictionary with host, port, user and database")
    try:
        return pg_url(connection["host"], connection["port"], connection["user"],
                      connection["database"], password=password, ssl_mode=ssl_mode,
                      search_path=search_path, params=params)
    except InputError as exc:
        # The message names the field and never holds the password; `from None` keeps any
        # chained exception (and its arguments) out of tracebacks.
        raise AnsibleFilterError(f"{_NAME}: {exc}") from None


class FilterModule:
    """coderops.deploy PostgreSQL URL filter."""

    def filters(self):
        return {"coder_pg_url": coder_pg_url}
