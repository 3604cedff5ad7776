# Copyright (c) 2025, coderops maintainers
# GNU General Public License v3.0+ (see LICENSE or https://www.gnu.org/licenses/gpl-3.0.txt)
# SPDX-License-Identifier: GPL-3.0-or-later
"""coder_pg_facts as a module, with the backend mocked: result shape, no password anywhere."""

from __future__ import annotations

import json
from unittest import mock

import pytest
from ansible.module_utils.testing import patch_module_args
from ansible_collections.coderops.deploy.plugins.module_utils._pg_connection import (
    ConnectionFailure,
)
from ansible_collections.coderops.deploy.plugins.modules import coder_pg_facts

CANARY = "p w'\"=@%\\:é€"


def run(capsys, gather_result, **args):
    module_args = {"login_host": "db", "login_password": CANARY}
    module_args.update(args)
    with patch_module_args(module_args), \
            mock.patch.object(coder_pg_facts, "gather", return_value=gather_result) as gather, \
            mock.patch.object(coder_pg_facts.AnsibleModule, "warn") as warn:
        with pytest.raises(SystemExit):
            coder_pg_facts.main()
    out = capsys.readouterr().out
    gather.warn = warn
    return json.loads(out), out, gather


def test_failure_has_reason_and_changed_false(capsys):
    failure = ConnectionFailure("timeout", f"no answer {CANARY}")
    result, out = run(capsys, (None, failure))[:2]
    assert result["failed"] is True and result["reason"] == "timeout"
    assert result["changed"] is False
    assert CANARY not in out  # AnsibleModule masks no_log values even where we forgot to


def test_success_changed_false_and_budget_warning(capsys):
    facts = {"port": 5432, "budget": {"ok": False, "message": "does not fit: x"}}
    result, out, gather = run(capsys, (facts, None), _ansible_check_mode=True)
    assert result["changed"] is False and result["port"] == 5432
    gather.warn.assert_called_once_with("connection budget does not fit: x")
    assert CANARY not in out
    params = gather.call_args.args[0]
    assert params["connect_timeout"] == 10 and params["ssl_mode"] == "require"
    assert params["latency_samples"] == 5 and params["require_primary"] is True
    assert (params["replicas"], params["max_db_connections"], params["surge_percent"],
            params["reserve_connections"]) == (1, 30, 25, 0)
