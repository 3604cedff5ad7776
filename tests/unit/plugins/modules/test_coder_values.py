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


def test_built_from_comes_back_unchanged(capsys):
    # The helm_release role builds the values again only when this differs from what it is now.
    assert run(capsys, built_from="3f78")["built_from"] == "3f78"
    assert "built_from" not in run(capsys)


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
    result = run(capsys, chart_generation="v3")
    assert result["failed"] is True and "chart_generation" in result["msg"]


V2 = {"chart_generation": "v2", "password_secret": None, "url_secret": "coder-db-url"}


def test_v2_values_and_url_options(capsys, tmp_path):
    dest = tmp_path / "values.yaml"
    result = run(capsys, dest=str(dest), ssl_mode="verify-full",
                 ssl_root_cert_secret={"name": "coder-db-ca", "key": "ca.crt"}, **V2)
    assert result["changed"] is True
    env = {e["name"]: e for e in result["values"]["coder"]["env"]}
    assert env["CODER_PG_CONNECTION_URL"]["valueFrom"]["secretKeyRef"] == {"name": "coder-db-url",
                                                                           "key": "url"}
    # The module's own defaults for v2: a pool of 10, idle auto.
    assert env["CODER_PG_CONN_MAX_OPEN"]["value"] == "10"
    assert env["CODER_PG_CONN_MAX_IDLE"]["value"] == "auto"
    assert result["connection_url_options"]["params"] == {
        "sslrootcert": "/etc/ssl/certs/coder-db-ca.crt"}
    assert "postgres" not in dest.read_text() and "coder-db-url" in dest.read_text()


def test_v1_result_has_no_url_options_and_v1_pool_default(capsys):
    result = run(capsys)
    assert result["connection_url_options"] is None
    assert result["values"]["coderd"]["extraEnvs"][0] == {"name": "CODER_MAX_DB_CONNECTIONS",
                                                          "value": "30"}


def test_v2_refuses_password_secret(capsys):
    args = {**V2, "password_secret": "coder-db"}
    result = run(capsys, **args)
    assert result["failed"] is True and result["field"] == "password_secret"
    assert "url_secret" in result["msg"]


def test_v1_refuses_url_secret(capsys):
    result = run(capsys, url_secret="coder-db-url")
    assert result["failed"] is True and result["field"] == "url_secret"
    assert "Coder v2 chart only" in result["msg"]
