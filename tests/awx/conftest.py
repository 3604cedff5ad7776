# Copyright (c) 2025, coderops maintainers
# GNU General Public License v3.0+ (see LICENSE or https://www.gnu.org/licenses/gpl-3.0.txt)
# SPDX-License-Identifier: GPL-3.0-or-later
"""Shared fixtures of the AWX tests (tests/awx)."""

from __future__ import annotations

import os
import subprocess
import sys
from pathlib import Path

import pytest

HERE = Path(__file__).resolve().parent
sys.path.insert(0, str(HERE))

from awx_surveys import REPO  # noqa: E402

# The collection's own Python (module_utils) is imported as ansible_collections.coderops.deploy
# through the checkout's link playbooks/collections/ansible_collections/coderops/deploy -> the
# checkout, never through whatever copy an earlier run installed under ~/.ansible.
sys.path.insert(0, str(REPO / "playbooks" / "collections"))

# The suites' one leak scanner (also the ansible-test no-leak target's).
sys.path.insert(0, str(REPO / "tests" / "integration" / "targets" / "setup_coder_testbed" / "files"))

# The `reliability` marker and `observe` fixture: the AWX job tests are rows of docs/reliability.md.
sys.path.insert(0, str(REPO / "tests" / "reliability"))
import reliability_plugin  # noqa: E402


def pytest_configure(config):
    if not config.pluginmanager.has_plugin("coderops_reliability"):
        config.pluginmanager.register(reliability_plugin, "coderops_reliability")

VENV_BIN = Path(os.environ.get("CODER_VENV", REPO / ".venv")) / "bin"
STATE = Path(os.environ.get("CODER_TESTBED_STATE", REPO / ".testbed"))


def load_testbed_env():
    """The test bed's environment (from .testbed/env.sh); fails, never skips, when the bed is down."""
    env_sh = STATE / "env.sh"
    if not env_sh.exists():
        pytest.fail(f"{env_sh} is missing: bring the test bed up with `make testbed` first", pytrace=False)
    out = subprocess.run(["bash", "-c", f". {env_sh} && env -0"], capture_output=True, check=True)
    return dict(item.split("=", 1) for item in out.stdout.decode().split("\0") if "=" in item)


@pytest.fixture(scope="session")
def bed():
    return load_testbed_env()
