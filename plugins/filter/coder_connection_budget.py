# Copyright (c) 2025, coderops maintainers
# GNU General Public License v3.0+ (see LICENSE or https://www.gnu.org/licenses/gpl-3.0.txt)
# SPDX-License-Identifier: GPL-3.0-or-later

from __future__ import annotations

DOCUMENTATION = r"""
name: coder_connection_budget
short_description: The connection budget of a Coder deployment on a PostgreSQL server
version_added: 0.1.0
author: coderops maintainers (@coderops)
description:
  - Computes whether O(replicas) coderd replicas with pools of O(max_db_connections) connections,
    plus the surge pods of a rolling update, fit into what the server allows.
  - The same function as RV(coderops.deploy.coder_pg_facts#module:budget) and the budget check of
    M(coderops.deploy.coder_values), so the three always agree.
  - "available = C(max_connections) - C(superuser_reserved_connections) - C(reserved_connections) -
    connections held by other users - O(reserve_connections); needed_peak = (O(replicas) + surge
    pods) x (O(max_db_connections) + O(extra_connections_per_replica)),
    where surge pods are O(surge_percent) of O(replicas) rounded up."
options:
  _input:
    description:
      - The registered result of M(coderops.deploy.coder_pg_facts), or a dictionary with
        C(max_connections), C(superuser_reserved_connections), and optionally
        C(reserved_connections) and C(connections_in_use.others).
    type: dict
    required: true
  replicas:
    description: Number of coderd replicas.
    type: int
    default: 1
  max_db_connections:
    description: Pool size per replica, C(CODER_MAX_DB_CONNECTIONS).
    type: int
    default: 30
  surge_percent:
    description: Surge pods during a rolling update, in percent of O(replicas), rounded up. 0-100.
    type: int
    default: 25
  reserve_connections:
    description: Connections to keep free for other applications.
    type: int
    default: 0
  extra_connections_per_replica:
    description:
      - Connections each pod holds besides its pool of O(max_db_connections); they count in
        needed_steady and needed_peak.
      - V(0) for the Coder v1 chart. For the Coder v2 chart, M(coderops.deploy.coder_values)
        assumes 5 (its pub/sub listener and internal pools); pass the same number here.
    type: int
    default: 0
    version_added: 0.2.0
seealso:
  - module: coderops.deploy.coder_pg_facts
  - module: coderops.deploy.coder_values
"""

EXAMPLES = r"""
- name: Would 4 replicas with pools of 20 fit?
  ansible.builtin.assert:
    that: (coder_pg | coderops.deploy.coder_connection_budget(replicas=4, max_db_connections=20)).ok

- name: The largest pool that fits 3 replicas on a server with max_connections 100
  ansible.builtin.debug:
    msg: >-
      {{ ({'max_connections': 100, 'superuser_reserved_connections': 3}
          | coderops.deploy.coder_connection_budget(replicas=3)).suggested_max_db_connections }}
"""

RETURN = r"""
_value:
  description: The budget.
  type: dict
  contains:
    available:
      description: Connections Coder may use.
      type: int
    needed_steady:
      description: O(replicas) x O(max_db_connections).
      type: int
    needed_peak:
      description: (O(replicas) + surge pods) x O(max_db_connections).
      type: int
    headroom:
      description: available - needed_peak; negative when the plan does not fit.
      type: int
    ok:
      description: Whether needed_peak <= available.
      type: bool
    suggested_max_db_connections:
      description: The largest pool that fits (0 when none does).
      type: int
    surge_pods:
      description: Pods a rolling update adds.
      type: int
    pods_at_peak:
      description: O(replicas) + surge pods.
      type: int
    max_connections_needed:
      description: The C(max_connections) the server would need for the plan as it is.
      type: int
    inputs:
      description: The numbers used.
      type: dict
    message:
      description: Whether the plan fits, and the fix when it does not.
      type: str
"""

from ansible.errors import AnsibleFilterError
from ansible_collections.coderops.deploy.plugins.module_utils._budget import (
    BUDGET_DEFAULTS,
    BudgetError,
    budget_inputs_from_facts,
    connection_budget,
)

_NAME = "coderops.deploy.coder_connection_budget"


def coder_connection_budget(facts, replicas=BUDGET_DEFAULTS["replicas"],
                            max_db_connections=BUDGET_DEFAULTS["max_db_connections"],
                            surge_percent=BUDGET_DEFAULTS["surge_percent"],
                            reserve_connections=BUDGET_DEFAULTS["reserve_connections"],
                            extra_connections_per_replica=BUDGET_DEFAULTS[
                                "extra_connections_per_replica"]):
    try:
        inputs = budget_inputs_from_facts(facts, field="the input")
        return connection_budget(replicas=replicas, max_db_connections=max_db_connections,
                                 surge_percent=surge_percent,
                                 reserve_connections=reserve_connections,
                                 extra_connections_per_replica=extra_connections_per_replica,
                                 **inputs)
    except BudgetError as exc:
        raise AnsibleFilterError(f"{_NAME}: {exc}") from None


class FilterModule:
    """coderops.deploy budget filter."""

    def filters(self):
        return {"coder_connection_budget": coder_connection_budget}
