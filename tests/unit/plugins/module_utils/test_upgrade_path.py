# Copyright (c) 2026, coderops maintainers
# GNU General Public License v3.0+ (see LICENSE or https://www.gnu.org/licenses/gpl-3.0.txt)
# SPDX-License-Identifier: GPL-3.0-or-later
"""_upgrade_path: the running Coder's version from its image, and which upgrades are refused,
with the collection's own stepping stones (roles/preflight/vars/stepping_stones.yml) read as the
preflight reads them."""

from __future__ import annotations

from pathlib import Path

import pytest
import yaml
from ansible_collections.coderops.deploy.plugins.module_utils._upgrade_path import (
    StoneError,
    refusal,
    running_coder_version,
)

STONES = yaml.safe_load((Path(__file__).resolve().parents[4] / "roles" / "preflight" / "vars"
                         / "stepping_stones.yml").read_text())["preflight_stepping_stones"]


@pytest.mark.parametrize("images,app_version,expected", [
    ({"coder": "ghcr.io/coder/coder:v2.31.0"}, "2.30.0", "2.31.0"),  # the image wins over appVersion
    ({"coderd": "registry.example:5000/coder/coder-service:1.44.1"}, None, "1.44.1"),  # a port is no tag
    ({"coder": "ghcr.io/coder/coder:latest"}, "2.30.0", None),  # a tag that is no version: unknown
    ({"coder": "ghcr.io/coder/coder@sha256:" + "a" * 64}, "2.30.0", None),
    ({"coder": "ghcr.io/coder/coder"}, "2.30.0", None),
    ({"sidecar": "busybox:1.36"}, "v2.30.0", "2.30.0"),  # no Coder container: the deployed appVersion
    ({}, None, None),
])
def test_running_version(images, app_version, expected):
    assert running_coder_version(images, app_version) == expected


@pytest.mark.parametrize("running,target", [
    ("", "2.31.0"),  # a fresh install
    ("2.30.0", ""),  # a target that is no version
    ("2.30.0", "2.30.0"),
    ("2.30.0", "v2.31.0"),
    ("2.26.6", "2.27.8"),  # through the stone already
    ("2.26.2", "2.26.6"),  # to the stone itself
    ("1.30.2", "1.31.0"),
    ("1.30.2", "1.30.9"),
])
def test_allowed(running, target):
    assert refusal(running, target, "v2" if target.lstrip("v").startswith("2") else "v1", STONES) == ""


def test_a_downgrade_is_refused_naming_the_variables():
    msg = refusal("2.31.0", "2.30.0", "v2", STONES)
    assert "deploy Coder 2.30.0, older than the Coder 2.31.0 that runs now" in msg
    assert "coder_chart_version" in msg and "coder_values_overrides" in msg and "rollback_coder.yml" in msg


def test_coders_published_stone_is_refused():
    msg = refusal("2.26.0", "2.27.8", "v2", STONES)
    assert "upgrade to 2.26.6 first" in msg and "set coder_chart_version to 2.26.6" in msg
    assert "api_keys" in msg and "https://coder.com/docs/install/upgrade-best-practices" in msg
    # A v1 chart is not held to a v2 stone.
    assert refusal("2.26.0", "2.27.8", "v1", [s for s in STONES if s.get("generation") == "v2"]) == ""


def test_v1_goes_one_release_at_a_time():
    msg = refusal("1.30.2", "1.32.0", "v1", STONES)
    assert "upgrade to the newest 1.31.x first" in msg


def test_a_users_stone():
    mine = [{"from": ">=2.30.0,<2.30.5", "to": ">=2.31.0", "via": "2.30.5"}]
    assert "upgrade to 2.30.5 first" in refusal("2.30.1", "2.31.0", "v2", mine)
    assert refusal("2.30.5", "2.31.0", "v2", mine) == ""


@pytest.mark.parametrize("stone,words", [
    ({"from": ">=2.30", "to": "2.31"}, "no 'via'"),
    ({"from": "about 2.30", "to": ">=2.31.0", "via": "2.30.5"}, "is not a version range"),
    ({"from": ">=2.30.0", "to": ">=2.31.0", "via": "soon"}, "is not a version"),
])
def test_a_stone_that_cannot_be_read_is_named(stone, words):
    with pytest.raises(StoneError, match=words):
        refusal("2.30.1", "2.31.0", "v2", [stone])
