# Copyright (c) 2025, coderops maintainers
# GNU General Public License v3.0+ (see LICENSE or https://www.gnu.org/licenses/gpl-3.0.txt)
# SPDX-License-Identifier: GPL-3.0-or-later

# Note that this doc fragment is **PRIVATE** to the collection. It can have breaking changes at any time.
# Do not use this from other collections or standalone plugins/modules!
#
# Paired one-to-one with budget_argument_spec() in plugins/module_utils/_budget.py; a unit test
# keeps the two in step.

from __future__ import annotations


class ModuleDocFragment:
    DOCUMENTATION = r"""
options:
  replicas:
    description:
      - Number of coderd replicas (C(coderd.replicas)).
      - Each replica holds a pool of up to O(max_db_connections) connections.
    type: int
    default: 1
  max_db_connections:
    description:
      - Size of each replica's connection pool, C(CODER_MAX_DB_CONNECTIONS) (Coder's default is 30).
    type: int
    default: 30
  surge_percent:
    description:
      - Extra pods a rolling update runs besides the old ones, in percent of O(replicas), rounded up
        to whole pods (the Coder v1 chart uses C(maxSurge) 25%).
      - A pod's migrations init container runs before its coderd container, so a pod holds at most
        one pool at a time.
      - Between 0 and 100.
    type: int
    default: 25
  reserve_connections:
    description:
      - Connections to keep free for other applications of the same server, on top of the ones
        other users hold right now.
    type: int
    default: 0
  extra_connections_per_replica:
    description:
      - Connections each replica (and each surge pod) holds besides its pool of
        O(max_db_connections); they count in the budget.
      - V(0) for the Coder v1 chart, whose pool is all coderd holds. Coder v2 holds a pub/sub
        listener and internal pools besides its C(CODER_PG_CONN_MAX_OPEN) pool;
        M(coderops.deploy.coder_values) assumes 5 for the v2 chart, pass the same number here.
      - Between 0 and 1000.
    type: int
    default: 0
    version_added: 0.2.0
notes:
  - "The budget: RV(ignore:budget.available) = C(max_connections) - C(superuser_reserved_connections)
    - C(reserved_connections) (PostgreSQL 16 and later, else 0) - connections held by other users
    - O(reserve_connections). RV(ignore:budget.needed_peak) = (O(replicas) + surge pods)
    x (O(max_db_connections) + O(extra_connections_per_replica)).
    The plan fits (RV(ignore:budget.ok)) when RV(ignore:budget.needed_peak) <= RV(ignore:budget.available)."
"""
