# Copyright (c) 2025, coderops maintainers
# GNU General Public License v3.0+ (see LICENSE or https://www.gnu.org/licenses/gpl-3.0.txt)
# SPDX-License-Identifier: GPL-3.0-or-later
"""Fixtures of the deploy_coder integration tests: the test bed's environment, namespaces the
tests create (and delete), a local chart repository with both stand-in chart versions, and the
name of the running test in a file that scripts/test-deploy.sh prints every 20 s."""

from __future__ import annotations

import functools
import http.server
import os
import shutil
import subprocess
import sys
import tempfile
import threading
import time
import uuid
from pathlib import Path

import pytest

HERE = Path(__file__).resolve().parent
sys.path.insert(0, str(HERE))

from helpers import ENV, LOG_DIR, REPO, helm, kubectl  # noqa: E402

# The suites' one leak scanner (also the ansible-test no-leak target's).
sys.path.insert(0, str(REPO / "tests" / "integration" / "targets" / "setup_coder_testbed" / "files"))

# The `reliability` marker and `observe` fixture (docs/reliability.md is written from the JUnit XML).
sys.path.insert(0, str(REPO / "tests" / "reliability"))
import reliability_plugin  # noqa: E402

HELMS = ["helm3", "helm4"]
# Namespaces carry this session's id: the clean-up at the end deletes only its own, never those of
# another pytest session using the same test bed at the same time.
SESSION = uuid.uuid4().hex[:12]
OWNER = os.environ.get("CODER_IT_NAMESPACE_OWNER", "deploy_coder")


def pytest_configure(config):
    config.addinivalue_line("markers", "helm: runs once with helm 3 and once with helm 4")
    if not config.pluginmanager.has_plugin("coderops_reliability"):
        config.pluginmanager.register(reliability_plugin, "coderops_reliability")


# Tests that take minutes: they start first, so that the suite does not end waiting on one of them
# (measured: the leak tests 84 to 231 s, the immutable Secret 150 s, the real pods' wrong password
# 95 s, the safe-upgrade cases 50 to 100 s; the rest mostly under 60 s).
LONG = ("test_no_run_shows_the_password", "test_no_entry_point_shows_the_password",
        "test_v2_no_run_shows_the_password_or_the_url", "test_immutable_password_secret",
        "test_a_wrong_password_fails_fast_quotes_the_log_and_rolls_back_to_pods_that_run",
        "test_a_failed_upgrade_that_migrated_is_restored_then_rolled_back",
        "test_a_failure_before_migrating_is_a_plain_rollback",
        "test_without_a_backup_the_release_is_left_with_the_steps")


def pytest_collection_modifyitems(items):
    # A stable sort, the same on every worker (xdist checks that the workers collected alike).
    items.sort(key=lambda item: item.originalname not in LONG)


def pytest_xdist_make_scheduler(config, log):
    """--dist loadscope, split finer: a lifecycle class runs in order on one worker, once per
    helm; every other test is a unit of its own. (The fixtures that tests share are session-scoped
    and built once per worker, so that a worker switching between modules does not rebuild them.)"""
    if config.getvalue("dist") != "loadscope":
        return None
    from xdist.scheduler import LoadScopeScheduling

    class LifecycleScheduling(LoadScopeScheduling):
        def _split_scope(self, nodeid):
            parts = nodeid.split("::")
            if len(parts) < 3:
                return nodeid
            param = parts[-1][parts[-1].find("["):] if "[" in parts[-1] else ""
            return "::".join(parts[:-1]) + param

    return LifecycleScheduling(config, log)


def _current_test_file():
    return Path(os.environ.get("CODER_IT_CURRENT_TEST_FILE") or (LOG_DIR / "current-test"))


@pytest.hookimpl(hookwrapper=True)
def pytest_runtest_protocol(item, nextitem):
    """Record the running test and its start time; scripts/test-deploy.sh prints it every 20 s
    (pytest captures the output of a running test, so a thread here could not)."""
    path = _current_test_file()
    path.parent.mkdir(parents=True, exist_ok=True)
    path.write_text(f"{item.nodeid}\t{int(time.time())}\n")
    yield
    path.write_text("")


def new_namespace(prefix="coderops-it"):
    name = f"{prefix}-{uuid.uuid4().hex[:6]}"
    kubectl("create", "namespace", name)
    kubectl("label", "namespace", name, f"coderops.test/owner={OWNER}", f"coderops.test/session={SESSION}")
    return name


def delete_namespace(name):
    for binary in ("helm3", "helm4"):
        helm(binary, "uninstall", "coder", "-n", name, "--wait", "--timeout", "60s", check=False)
    kubectl("delete", "namespace", name, "--wait=false", check=False)


@pytest.fixture
def namespace():
    name = new_namespace()
    yield name
    delete_namespace(name)


@pytest.fixture
def older_chart():
    """The stand-in v2 chart packaged as 2.30.0 (the chart as it is deploys 2.31.0; its image is
    the stand-in playing that version)."""
    with tempfile.TemporaryDirectory(prefix="coderops-it-older-") as tmp:
        subprocess.run(["helm3", "package", str(REPO / "tests" / "charts" / "coder-v2"), "--version", "2.30.0",
                        "--app-version", "2.30.0", "-d", tmp], env=ENV, check=True, capture_output=True)
        yield f"{tmp}/coder-2.30.0.tgz"


@pytest.fixture(scope="session")
def chart_repo():
    """A chart repository on loopback with coder 1.44.0 and 1.45.0 (whose selector differs)."""
    root = Path(tempfile.mkdtemp(prefix="coderops-charts-"))
    chart = REPO / "tests" / "charts" / "coder-v1"
    for version in ("1.44.0", "1.45.0"):
        subprocess.run(["helm3", "package", str(chart), "--version", version, "--app-version", version,
                        "-d", str(root)], env=ENV, check=True, capture_output=True)
    handler = functools.partial(_QuietHandler, directory=str(root))
    server = http.server.ThreadingHTTPServer(("127.0.0.1", 0), handler)
    url = f"http://127.0.0.1:{server.server_address[1]}"
    subprocess.run(["helm3", "repo", "index", str(root), "--url", url], env=ENV, check=True,
                   capture_output=True)
    thread = threading.Thread(target=server.serve_forever, daemon=True)
    thread.start()
    yield {"url": url, "dir": root}
    server.shutdown()
    shutil.rmtree(root, ignore_errors=True)


class _QuietHandler(http.server.SimpleHTTPRequestHandler):
    def log_message(self, *args):
        pass


def pytest_sessionfinish(session, exitstatus):
    # Namespaces a killed test of this session left behind (only ours, by label).
    if os.environ.get("CODER_IT_KEEP_NAMESPACES"):
        return
    out = kubectl("get", "namespaces", "-l", f"coderops.test/owner={OWNER},coderops.test/session={SESSION}",
                  "-o", "name", check=False)
    for line in (out.stdout or "").split():
        kubectl("delete", line, "--wait=false", check=False)
