# Copyright (c) 2025, coderops maintainers
# GNU General Public License v3.0+ (see LICENSE or https://www.gnu.org/licenses/gpl-3.0.txt)
# SPDX-License-Identifier: GPL-3.0-or-later

# Note that this module util is **PRIVATE** to the collection. It can have breaking changes at any time.
# Do not use this from other collections or standalone plugins/modules!

"""The options of coder_helm_release and coder_helm_release_info, and the input checks that need
neither helm nor the cluster."""

from __future__ import annotations

import copy

from ansible_collections.coderops.deploy.plugins.module_utils._helm_cli import WAIT_STRATEGIES
from ansible_collections.coderops.deploy.plugins.module_utils._inputs import InputError
from ansible_collections.coderops.deploy.plugins.module_utils._kube import auth_argument_spec

MAX_PROGRESS_INTERVAL = 30
# The bounds of the numeric options, in seconds (history_max: revisions); the roles' preflight
# checks their variables against the same bounds (_deploy_inputs).
RANGES = {
    "timeout": (10, 86400),
    "rollback_timeout": (10, 86400),
    "fail_fast_grace": (0, 3600),
    "progress_interval": (1, MAX_PROGRESS_INTERVAL),
    "history_max": (0, 1000),
    "lock_ttl": (15, 3600),
    "health_check_timeout": (1, 3600),
}

_CONNECTION_SPEC = {
    "name": {"type": "str", "required": True},
    "namespace": {"type": "str", "required": True},
    "helm_binary": {"type": "str", "default": "helm"},
}

_RELEASE_SPEC = {
    "state": {"type": "str", "default": "present", "choices": ["present", "absent", "rolled_back"]},
    "chart_ref": {"type": "str"},
    "chart_repo_url": {"type": "str"},
    "chart_version": {"type": "str"},
    "values": {"type": "dict", "default": {}},
    "revision": {"type": "int"},
    "timeout": {"type": "int", "default": 300},
    "rollback_timeout": {"type": "int", "default": 300},
    "wait_strategy": {"type": "str", "default": "watcher", "choices": list(WAIT_STRATEGIES)},
    "fail_fast": {"type": "bool", "default": True},
    "fail_fast_grace": {"type": "int", "default": 20},
    "progress_interval": {"type": "int", "default": 15},
    "recover_pending": {"type": "bool", "default": False},
    "keep_failed_install": {"type": "bool", "default": False},
    "create_namespace": {"type": "bool", "default": False},
    "history_max": {"type": "int", "default": 10},
    "lock": {"type": "bool", "default": True},
    "lock_ttl": {"type": "int", "default": 60},
    "cleanup_failed_hooks": {"type": "bool", "default": True},
    "rollback": {"type": "bool", "default": True},
    "health_check_service": {"type": "str"},
    "health_check_version": {"type": "str"},
    "health_check_timeout": {"type": "int", "default": 120},
}


def connection_argument_spec():
    """A fresh copy of the options shared by coder_helm_release and coder_helm_release_info
    (doc fragments coderops.deploy._helm and coderops.deploy._k8s_auth)."""
    spec = copy.deepcopy(_CONNECTION_SPEC)
    spec.update(auth_argument_spec())
    return spec


def release_argument_spec():
    """A fresh copy of coder_helm_release's full argument spec."""
    spec = connection_argument_spec()
    spec.update(copy.deepcopy(_RELEASE_SPEC))
    return spec


def check_params(params):
    """Input checks that need neither helm nor the cluster (raise InputError)."""
    def _range(field, low, high):
        value = params.get(field)
        if value is None or not low <= value <= high:
            raise InputError(field, f"{field} must be between {low} and {high}; got {value}")

    for field in ("name", "namespace"):
        value = params.get(field) or ""
        if not value.strip():
            raise InputError(field, f"{field} is empty; set it")
    if len(params["name"]) > 53:
        raise InputError("name", f"name {params['name']!r} is longer than helm's 53 characters")
    for field, (low, high) in RANGES.items():
        _range(field, low, high)
    state = params.get("state", "present")
    if state == "present":
        if not (params.get("chart_ref") or "").strip():
            raise InputError("chart_ref", "chart_ref is empty; set it to a repository chart (such"
                                          " as coder/coder with chart_repo_url) or a local chart path")
        if not isinstance(params.get("values") or {}, dict):
            raise InputError("values", "values must be a dictionary of Helm values")
    if params.get("revision") is not None:
        if state != "rolled_back":
            raise InputError("revision", "revision is only used with state rolled_back")
        if params["revision"] < 1:
            raise InputError("revision", f"revision must be 1 or more; got {params['revision']}")
