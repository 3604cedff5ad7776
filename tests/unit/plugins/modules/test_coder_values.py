# Copyright (c) 2025, coderops maintainers
# GNU General Public License v3.0+ (see LICENSE or https://www.gnu.org/licenses/gpl-3.0.txt)
# SPDX-License-Identifier: GPL-3.0-or-later
"""coder_values as a module: dest file (atomic, 0600, changed/check/diff) and failures."""

from __future__ import annotations

import json
import os
import stat

import pytest
from ansible.module_utils.testing import patch_module_args
from ansible_collections.coderops.deploy.plugins.modules import coder_values

BASE = {"host": "db.example.internal", "port": 5432, "user": "coder", "database": "coder",
        "password_secret": "coder-db"}


def run(capsys, check_mode=False, diff=False, **args):
    module_args = dict(BASE, **args)
    if check_mode:
        module_args["_ansible_check_mode"] = True
    if diff:
        module_args["_ansible_diff"] = True
    with patch_module_args(module_args):
        with pytest.raises(SystemExit):
            coder_values.main()
    return json.loads(capsys.readouterr().out)


def test_values_without_dest_change_nothing(capsys):
    result = run(capsys)
    assert result["changed"] is False
    assert result["values"]["postgres"]["default"]["enable"] is False
    assert result["budget"] is None


def test_dest_check_then_write_then_idempotent(capsys, tmp_path):
    dest = tmp_path / "values.yaml"
    checked = run(capsys, check_mode=True, diff=True, dest=str(dest))
    assert checked["changed"] is True and not dest.exists()
    assert checked["diff"]["before"] == "" and "passwordSecret: coder-db" in checked["diff"]["after"]

    written = run(capsys, diff=True, dest=str(dest))
    assert written["changed"] is True
    assert stat.S_IMODE(os.stat(dest).st_mode) == 0o600
    assert dest.read_text() == written["diff"]["after"]
    assert [p.name for p in tmp_path.iterdir()] == ["values.yaml"]  # no temp file left

    assert run(capsys, check_mode=True, dest=str(dest))["changed"] is False
    assert run(capsys, dest=str(dest))["changed"] is False


def test_dest_mode_is_fixed(capsys, tmp_path):
    dest = tmp_path / "values.yaml"
    run(capsys, dest=str(dest))
    os.chmod(dest, 0o644)
    result = run(capsys, diff=True, dest=str(dest))
    assert result["changed"] is True
    assert "mode 0644" in result["diff"]["before_header"]
    assert stat.S_IMODE(os.stat(dest).st_mode) == 0o600


def test_dest_content_change_is_reported(capsys, tmp_path):
    dest = tmp_path / "values.yaml"
    run(capsys, dest=str(dest))
    result = run(capsys, diff=True, dest=str(dest), replicas=3)
    assert result["changed"] is True
    assert "replicas: 1" in result["diff"]["before"] and "replicas: 3" in result["diff"]["after"]


def test_refusal_writes_nothing(capsys, tmp_path):
    dest = tmp_path / "values.yaml"
    result = run(capsys, dest=str(dest), host="")
    assert result["failed"] is True and result["field"] == "host"
    assert "host is empty" in result["msg"]
    assert not dest.exists()


def test_missing_directory(capsys, tmp_path):
    result = run(capsys, dest=str(tmp_path / "nope" / "values.yaml"))
    assert result["failed"] is True and "does not exist; create it first" in result["msg"]


def test_unsupported_generation(capsys):
    result = run(capsys, chart_generation="v2")
    assert result["failed"] is True and "chart_generation" in result["msg"]
