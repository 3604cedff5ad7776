# Copyright (c) 2025, coderops maintainers
# GNU General Public License v3.0+ (see LICENSE or https://www.gnu.org/licenses/gpl-3.0.txt)
# SPDX-License-Identifier: GPL-3.0-or-later
"""The disruptive faults stop PostgreSQL and restart the API server: they run only on a private
test bed (CODER_TESTBED_STATE names one that is not the checkout's shared .testbed), never on the
bed other suites and other people use. scripts/test-reliability.sh brings one up and down."""

from __future__ import annotations

import os
import sys
from pathlib import Path

import pytest

HERE = Path(__file__).resolve().parent
REPO = HERE.parents[1]
sys.path.insert(0, str(HERE))
sys.path.insert(0, str(REPO / "tests" / "deploy"))
sys.path.insert(0, str(REPO / "tests" / "integration" / "targets" / "setup_coder_testbed" / "files"))

import reliability_plugin  # noqa: E402

STATE = Path(os.environ.get("CODER_TESTBED_STATE") or REPO / ".testbed").resolve()
SHARED = (REPO / ".testbed").resolve()


def pytest_configure(config):
    config.addinivalue_line("markers", "disruptive: stops or restarts a part of the test bed")
    if not config.pluginmanager.has_plugin("coderops_reliability"):
        config.pluginmanager.register(reliability_plugin, "coderops_reliability")


def pytest_collection_modifyitems(config, items):
    if STATE == SHARED:
        skip = pytest.mark.skip(reason="disruptive: needs a private test bed (CODER_TESTBED_STATE), "
                                       "run scripts/test-reliability.sh")
        for item in items:
            if item.get_closest_marker("disruptive"):
                item.add_marker(skip)
