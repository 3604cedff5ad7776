#!/usr/bin/python
# Copyright (c) 2025, coderops maintainers
# GNU General Public License v3.0+ (see LICENSE or https://www.gnu.org/licenses/gpl-3.0.txt)
# SPDX-License-Identifier: GPL-3.0-or-later

from __future__ import annotations

DOCUMENTATION = r"""
module: coder_pg_facts
short_description: Read what a Coder deployment needs to know about its PostgreSQL server
version_added: 0.1.0
description:
  - Connects once to a live PostgreSQL server, inside a read-only transaction, reads the facts
    the Coder deployment guide asks an operator to look up by hand (version, port, user, database,
    connection limits) plus what a careful operator checks (connections in use, recovery state,
    TLS, round-trip latency), computes the connection budget of the planned deployment, and closes
    the connection.
  - Everything returned is read from the server; nothing is echoed from the input.
  - Every failure has a stable RV(reason) and a message that says what to fix.
author:
  - coderops maintainers (@coderops)
extends_documentation_fragment:
  - coderops.deploy._pg_connection
  - coderops.deploy._budget
  - coderops.deploy._attributes
  - coderops.deploy._attributes.info_module
options:
  latency_samples:
    description:
      - Number of C(SELECT 1) round trips timed for RV(latency_ms). Between 1 and 100.
    type: int
    default: 5
  search_path:
    description:
      - The search_path Coder's connections use (v1 C(DB_SEARCH_PATH), v2 the URL's
        C(search_path)); RV(coder_schema) is read in its first schema. Set for the read only.
      - Unset, the role's default search_path applies, as it does for Coder.
    type: str
  require_primary:
    description:
      - Fail with RV(reason=standby) when the server is a standby (C(pg_is_in_recovery()) is true).
        Coder needs the primary.
      - Set to V(false) to read the facts of a standby without failing.
    type: bool
    default: true
notes:
  - The module never writes to the server and always reports RV(changed=false); check mode
    behaves exactly like a normal run.
  - RV(port) is the port the server itself listens on (C(pg_settings)). Behind a proxy, a load
    balancer or a container port mapping, clients use another one; give the client port to
    M(coderops.deploy.coder_values) explicitly then.
seealso:
  - module: coderops.deploy.coder_values
  - plugin: coderops.deploy.coder_connection_budget
    plugin_type: filter
"""

EXAMPLES = r"""
- name: Read the facts of Coder's database server
  coderops.deploy.coder_pg_facts:
    login_host: db.example.internal
    login_user: coder
    login_password: "{{ coder_db_password }}"
    login_db: coder
    ssl_mode: verify-full
    ca_cert: /etc/coder/pg-ca.crt
    replicas: 3
    max_db_connections: 30
  register: coder_pg

- name: Stop when the planned pools do not fit
  ansible.builtin.assert:
    that: coder_pg.budget.ok
    fail_msg: "{{ coder_pg.budget.message }}"

- name: Same, with the connection given by an AWX credential (CODER_PG_* environment variables)
  coderops.deploy.coder_pg_facts:
    replicas: 2

- name: Log in with a client certificate (mTLS)
  coderops.deploy.coder_pg_facts:
    login_host: db.example.internal
    login_user: coder
    login_db: coder
    ssl_mode: verify-full
    ca_cert: /etc/coder/pg-ca.crt
    ssl_cert: /etc/coder/pg-client.crt
    ssl_key: /etc/coder/pg-client.key

- name: Amazon RDS with IAM authentication (token generated with boto3)
  coderops.deploy.coder_pg_facts:
    connector: awsiamrds
    aws_region: eu-west-1
    login_host: coder.abc123.eu-west-1.rds.amazonaws.com
    login_port: 5432
    login_user: coder
    login_db: coder
    ssl_mode: verify-full
    ca_cert: /etc/coder/rds-global-bundle.pem
"""

RETURN = r"""
coder_schema:
  description:
    - Coder's schema state as a running Coder reads it, in the first schema of O(search_path).
  returned: success
  type: dict
  contains:
    schema:
      description: The schema read (C(current_schema())).
      type: str
      sample: public
    generation:
      description:
        - Whose migration table the schema holds; V(none) for a database Coder never used, V(v2)
          for C(schema_migrations), V(v1) for Coder v1's C(migration_cursor), V(both) for both.
      type: str
      sample: v2
    version:
      description: The v2 migration version (C(schema_migrations.version)); V(null) without it.
      type: int
      sample: 342
    dirty:
      description: Whether the v2 migration table says a migration stopped halfway.
      type: bool
      sample: false
    v1_cursor:
      description: Every row of C(migration_cursor) as JSON text (compared as a whole); V(null) without it.
      type: str
changed:
  description: Always V(false); the module never writes.
  returned: always
  type: bool
  sample: false
reason:
  description:
    - Why the module failed, one of V(dns), V(refused), V(timeout), V(auth_failed), V(hba_rejected),
      V(database_missing), V(too_many_clients), V(ssl_unsupported), V(ssl_verify_failed),
      V(client_cert_required), V(starting_up), V(standby).
    - V(invalid_options) for bad input found before connecting, V(other) for a failure no rule
      knows (the message then carries the server's or libpq's text).
  returned: failure
  type: str
  sample: too_many_clients
server_version:
  description: C(server_version) of the server.
  returned: success, or failure with RV(reason=standby)
  type: str
  sample: "15.14 (Debian 15.14-0+deb12u1)"
server_version_num:
  description: C(server_version_num) of the server.
  returned: success, or failure with RV(reason=standby)
  type: int
  sample: 150014
port:
  description: The port the server listens on, from C(pg_settings).
  returned: success, or failure with RV(reason=standby)
  type: int
  sample: 5432
user:
  description: C(current_user) of the session.
  returned: success, or failure with RV(reason=standby)
  type: str
  sample: coder
database:
  description: C(current_database()) of the session.
  returned: success, or failure with RV(reason=standby)
  type: str
  sample: coder
max_connections:
  description: C(max_connections) of the server.
  returned: success, or failure with RV(reason=standby)
  type: int
  sample: 100
superuser_reserved_connections:
  description: C(superuser_reserved_connections) of the server.
  returned: success, or failure with RV(reason=standby)
  type: int
  sample: 3
reserved_connections:
  description: C(reserved_connections) of the server; V(0) before PostgreSQL 16, which lacks it.
  returned: success, or failure with RV(reason=standby)
  type: int
  sample: 0
connections_in_use:
  description: Client connections open on the whole server when the facts were read (this module's own included).
  returned: success, or failure with RV(reason=standby)
  type: dict
  contains:
    total:
      description: All client backends.
      type: int
      sample: 12
    coder_user:
      description: Those held by RV(user) (the Coder user), this module's connection included.
      type: int
      sample: 1
    others:
      description: Those held by other users; the budget subtracts them.
      type: int
      sample: 11
in_recovery:
  description: C(pg_is_in_recovery()); V(true) on a standby.
  returned: success, or failure with RV(reason=standby)
  type: bool
  sample: false
ssl:
  description: TLS of this connection, from C(pg_stat_ssl).
  returned: success, or failure with RV(reason=standby)
  type: dict
  contains:
    in_use:
      description: Whether the connection is encrypted.
      type: bool
      sample: true
    protocol:
      description: TLS version, V(null) without TLS.
      type: str
      sample: TLSv1.3
    cipher:
      description: Cipher suite, V(null) without TLS.
      type: str
      sample: TLS_AES_256_GCM_SHA384
    bits:
      description: Key bits of the cipher, V(null) without TLS.
      type: int
      sample: 256
    client_certificate:
      description: Whether the client presented a certificate.
      type: bool
      sample: false
latency_ms:
  description: Round-trip time of C(SELECT 1), in milliseconds, over O(latency_samples) trips.
  returned: success, or failure with RV(reason=standby)
  type: dict
  contains:
    samples:
      description: Number of round trips timed.
      type: int
      sample: 5
    min:
      description: Fastest round trip.
      type: float
      sample: 0.21
    median:
      description: Median round trip.
      type: float
      sample: 0.3
    p95:
      description: 95th percentile (nearest rank).
      type: float
      sample: 0.52
budget:
  description: The connection budget of the planned deployment on this server.
  returned: success, or failure with RV(reason=standby)
  type: dict
  contains:
    available:
      description: max_connections - superuser_reserved - reserved - held by other users - O(reserve_connections).
      type: int
      sample: 97
    needed_steady:
      description: O(replicas) x O(max_db_connections).
      type: int
      sample: 90
    needed_peak:
      description:
        - (O(replicas) + surge pods) x O(max_db_connections).
        - Surge pods are O(surge_percent) of O(replicas), rounded up.
      type: int
      sample: 120
    headroom:
      description: RV(budget.available) - RV(budget.needed_peak); negative when the plan does not fit.
      type: int
      sample: -23
    ok:
      description: Whether RV(budget.needed_peak) <= RV(budget.available). The module warns when not.
      type: bool
      sample: false
    suggested_max_db_connections:
      description: The largest pool that fits, RV(budget.available) // (O(replicas) + surge pods); V(0) when none does.
      type: int
      sample: 24
    surge_pods:
      description: Pods a rolling update adds.
      type: int
      sample: 1
    pods_at_peak:
      description: O(replicas) + RV(budget.surge_pods).
      type: int
      sample: 4
    max_connections_needed:
      description: The C(max_connections) the server would need for the plan as it is.
      type: int
      sample: 123
    inputs:
      description: The numbers the budget was computed from.
      type: dict
      sample: {"max_connections": 100, "superuser_reserved_connections": 3, "reserved_connections": 0,
               "held_by_others": 0, "replicas": 3, "max_db_connections": 30, "surge_percent": 25,
               "reserve_connections": 0}
    message:
      description: One sentence saying whether the plan fits, and the fix when it does not.
      type: str
      sample: "does not fit: ... Fix: set max_db_connections to 24 or less, ..."
"""

from ansible.module_utils.basic import AnsibleModule
from ansible_collections.coderops.deploy.plugins.module_utils._budget import (
    budget_argument_spec,
)
from ansible_collections.coderops.deploy.plugins.module_utils._pg_connection import (
    pg_connection_argument_spec,
)
from ansible_collections.coderops.deploy.plugins.module_utils._pg_facts import gather


def main():
    argument_spec = pg_connection_argument_spec()
    argument_spec.update(budget_argument_spec())
    argument_spec.update(
        latency_samples={"type": "int", "default": 5},
        require_primary={"type": "bool", "default": True},
        search_path={"type": "str"},
    )
    module = AnsibleModule(argument_spec=argument_spec, supports_check_mode=True)

    facts, failure = gather(module.params, register_secret=module.no_log_values.add)
    if failure is not None:
        module.fail_json(msg=failure.message, reason=failure.reason, changed=False, **(facts or {}))
    if not facts["budget"]["ok"]:
        module.warn("connection budget " + facts["budget"]["message"])
    module.exit_json(changed=False, **facts)


if __name__ == "__main__":
    main()
