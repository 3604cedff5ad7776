# Copyright (c) 2025, coderops maintainers
# GNU General Public License v3.0+ (see LICENSE or https://www.gnu.org/licenses/gpl-3.0.txt)
# SPDX-License-Identifier: GPL-3.0-or-later

# Note that this module util is **PRIVATE** to the collection. It can have breaking changes at any time.
# Do not use this from other collections or standalone plugins/modules!

"""The connection budget of Coder (v1 and v2 charts) on one PostgreSQL server.

One function, used by the coder_pg_facts and coder_values modules and by the
coder_connection_budget filter, so that all three always agree.

The rules (from the Coder deployment guide and the chart contract):

* every coderd replica holds a pool of up to CODER_MAX_DB_CONNECTIONS (v1) or
  CODER_PG_CONN_MAX_OPEN (v2) connections (max_db_connections), plus
  extra_connections_per_replica connections besides its pool (0 for v1; Coder v2 keeps a
  pub/sub listener and internal pools);
* during a rolling update the surge pods (surge_percent of the replicas, rounded UP to whole
  pods) exist besides the old ones; a pod's migrations init container runs before its coderd
  container, so a pod holds at most one pool at a time;
* what Coder may use is max_connections - superuser_reserved_connections - reserved_connections
  (PostgreSQL 16 and later; 0 before) - connections held by other users - reserve_connections
  (kept free for other applications).
"""

from __future__ import annotations

import copy

from ansible_collections.coderops.deploy.plugins.module_utils._inputs import InputError, type_name

# Defaults of the budget options; shared by the argument spec, the filter and the docs.
BUDGET_DEFAULTS = {
    "replicas": 1,
    "max_db_connections": 30,
    "surge_percent": 25,
    "reserve_connections": 0,
    "extra_connections_per_replica": 0,
}

# The per-replica overhead coder_values assumes for the Coder v2 chart when the option is not
# given: connections Coder v2 holds besides its CODER_PG_CONN_MAX_OPEN pool (see the
# extra_connections_per_replica option of coder_values for the reasoning).
V2_EXTRA_CONNECTIONS_PER_REPLICA = 5

# Lower and upper bounds of every budget input (None: unbounded).
_BOUNDS = {
    "replicas": (1, 1000),
    "max_db_connections": (1, 100000),
    "surge_percent": (0, 100),
    "max_surge_pods": (0, 1000),
    "reserve_connections": (0, None),
    "extra_connections_per_replica": (0, 1000),
    "max_connections": (1, None),
    "superuser_reserved_connections": (0, None),
    "reserved_connections": (0, None),
    "held_by_others": (0, None),
}

_BUDGET_SPEC = {
    "replicas": {"type": "int", "default": BUDGET_DEFAULTS["replicas"]},
    "max_db_connections": {"type": "int", "default": BUDGET_DEFAULTS["max_db_connections"]},
    "surge_percent": {"type": "int", "default": BUDGET_DEFAULTS["surge_percent"]},
    "reserve_connections": {"type": "int", "default": BUDGET_DEFAULTS["reserve_connections"]},
    "extra_connections_per_replica": {"type": "int",
                                      "default": BUDGET_DEFAULTS["extra_connections_per_replica"]},
}


def budget_argument_spec():
    """A fresh copy of the budget options (paired with the doc fragment coderops.deploy._budget)."""
    return copy.deepcopy(_BUDGET_SPEC)


class BudgetError(InputError):
    """Bad budget input; `field` names the option or fact at fault."""


def _as_int(field, value):
    low, high = _BOUNDS[field]
    if isinstance(value, bool):
        raise BudgetError(field, f"{field} must be a whole number, not a boolean")
    if isinstance(value, str) and value.strip().lstrip("-").isdigit():
        value = int(value.strip())
    if isinstance(value, float) and value.is_integer():
        value = int(value)
    if not isinstance(value, int):
        raise BudgetError(field, f"{field} must be a whole number; got {type_name(value)}")
    if value < low or (high is not None and value > high):
        span = f"{low} or more" if high is None else f"between {low} and {high}"
        raise BudgetError(field, f"{field} must be {span}; got {value}")
    return value


def check_plan(params):
    """Check the budget options of a module's params (raises BudgetError naming the option)."""
    for field in BUDGET_DEFAULTS:
        value = params.get(field)
        if value is None and field == "extra_connections_per_replica":
            continue  # optional: callers that predate it leave it out (0)
        _as_int(field, value)


def surge_pods(replicas, surge_percent):
    """Pods a rolling update adds: surge_percent of replicas, rounded up (Kubernetes maxSurge)."""
    return -(-replicas * surge_percent // 100)


def _largest_fitting_replicas(available, pool, surge_of):
    """The most replicas whose peak (with surge_of(replicas) surge pods) still fits `available`."""
    best = 0
    replicas = 1
    while (replicas + surge_of(replicas)) * pool <= available:
        best = replicas
        replicas += 1
    return best


def connection_budget(max_connections, superuser_reserved_connections, reserved_connections=0,
                      held_by_others=0, replicas=BUDGET_DEFAULTS["replicas"],
                      max_db_connections=BUDGET_DEFAULTS["max_db_connections"],
                      surge_percent=BUDGET_DEFAULTS["surge_percent"],
                      reserve_connections=BUDGET_DEFAULTS["reserve_connections"],
                      extra_connections_per_replica=BUDGET_DEFAULTS[
                          "extra_connections_per_replica"],
                      max_surge_pods=None):
    """Compute the budget; raises BudgetError naming the field for bad input.

    `max_surge_pods`, when given, is a fixed number of surge pods (a Deployment strategy whose
    maxSurge is a whole number, or 0 for Recreate) and replaces surge_percent.

    Returns a dict with available, needed_steady, needed_peak, headroom, ok,
    suggested_max_db_connections, plus the inputs and a human message.
    """
    n = {
        "max_connections": _as_int("max_connections", max_connections),
        "superuser_reserved_connections": _as_int("superuser_reserved_connections",
                                                  superuser_reserved_connections),
        "reserved_connections": _as_int("reserved_connections", reserved_connections or 0),
        "held_by_others": _as_int("held_by_others", held_by_others or 0),
        "replicas": _as_int("replicas", replicas),
        "max_db_connections": _as_int("max_db_connections", max_db_connections),
        "surge_percent": _as_int("surge_percent", surge_percent),
        "reserve_connections": _as_int("reserve_connections", reserve_connections),
    }
    extra = _as_int("extra_connections_per_replica", extra_connections_per_replica or 0)
    if extra:
        # Only when set, so that the v1 results (extra 0) stay exactly what they were.
        n["extra_connections_per_replica"] = extra
    pool = n["max_db_connections"]
    per_pod = pool + extra
    if max_surge_pods is None:
        def surge_of(replicas):
            return surge_pods(replicas, n["surge_percent"])
    else:
        fixed = _as_int("max_surge_pods", max_surge_pods)
        n["max_surge_pods"] = fixed

        def surge_of(replicas):
            return fixed
    surge = surge_of(n["replicas"])
    pods_at_peak = n["replicas"] + surge
    available = (n["max_connections"] - n["superuser_reserved_connections"]
                 - n["reserved_connections"] - n["held_by_others"] - n["reserve_connections"])
    needed_steady = n["replicas"] * per_pod
    needed_peak = pods_at_peak * per_pod
    headroom = available - needed_peak
    ok = headroom >= 0
    suggested = max(max(available, 0) // pods_at_peak - extra, 0)
    # max_connections the server would need for this plan to fit as it is.
    max_connections_needed = n["max_connections"] - headroom if not ok else n["max_connections"]

    breakdown = (
        f"{available} available = max_connections {n['max_connections']}"
        f" - superuser_reserved_connections {n['superuser_reserved_connections']}"
        f" - reserved_connections {n['reserved_connections']}"
        f" - {n['held_by_others']} held by other users"
        f" - reserve_connections {n['reserve_connections']}"
    )
    plan = (
        f"{n['replicas']} replica(s) + {surge} surge pod(s) during a rolling update"
        + (f" x max_db_connections {pool}" if not extra else
           f" x (max_db_connections {pool} + extra_connections_per_replica {extra})")
        + f" = {needed_peak} connections at peak"
    )
    if ok:
        message = f"fits: {plan}; {breakdown}; headroom {headroom}"
    elif suggested >= 1:
        message = (
            f"does not fit: {plan}, but only {breakdown}. Fix: set max_db_connections to"
            f" {suggested} or less, or lower replicas, or raise max_connections on the server"
            f" to at least {max_connections_needed}"
        )
    else:
        fit = _largest_fitting_replicas(max(available, 0), 1 + extra, surge_of)
        message = (
            f"does not fit: {plan}, but only {breakdown}; not even a pool of 1 fits. Fix: raise"
            f" max_connections on the server to at least {max_connections_needed}, or free"
            f" connections held by other users"
            + (f", or lower replicas to {fit}" if fit else "")
        )

    return {
        "available": available,
        "needed_steady": needed_steady,
        "needed_peak": needed_peak,
        "headroom": headroom,
        "ok": ok,
        "suggested_max_db_connections": suggested,
        "surge_pods": surge,
        "pods_at_peak": pods_at_peak,
        "max_connections_needed": max_connections_needed,
        "inputs": n,
        "message": message,
    }


def budget_inputs_from_facts(facts, field="pg_facts"):
    """Pick the server numbers out of a coder_pg_facts result (or a dict shaped like one).

    `field` names the input in error messages (an option name or a filter name).
    """
    if not isinstance(facts, dict):
        raise BudgetError(field, f"{field} must be a dictionary (the result of"
                                 f" coderops.deploy.coder_pg_facts); got {type_name(facts)}")
    if facts.get("failed"):
        raise BudgetError(field, f"{field} is the result of a failed coder_pg_facts run"
                                 f" (reason: {facts.get('reason', 'unknown')}); fix that first")
    missing = [k for k in ("max_connections", "superuser_reserved_connections") if k not in facts]
    if missing:
        raise BudgetError(field, f"{field} lacks {', '.join(missing)}: pass the registered result"
                                 f" of coderops.deploy.coder_pg_facts")
    in_use = facts.get("connections_in_use") or {}
    if not isinstance(in_use, dict):
        raise BudgetError(field, f"{field}.connections_in_use must be a dictionary")
    if "others" in in_use:
        others = in_use["others"]
    elif "total" in in_use and "coder_user" in in_use:
        try:
            others = int(in_use["total"]) - int(in_use["coder_user"])
        except (TypeError, ValueError):
            raise BudgetError(field, f"{field}.connections_in_use.total and .coder_user must be"
                                     f" whole numbers") from None
    else:
        others = 0
    return {
        "max_connections": facts["max_connections"],
        "superuser_reserved_connections": facts["superuser_reserved_connections"],
        "reserved_connections": facts.get("reserved_connections", 0),
        "held_by_others": others,
    }
