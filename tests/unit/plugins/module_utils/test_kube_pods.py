# Copyright (c) 2026, coderops maintainers
# GNU General Public License v3.0+ (see LICENSE or https://www.gnu.org/licenses/gpl-3.0.txt)
# SPDX-License-Identifier: GPL-3.0-or-later
"""_kube._pod_problems: why a pod is not ready, and whether waiting can still help. Pods as the
API server sends them (JSON read through _kube_rest.wrap); the real ones are the deploy suite's."""

from __future__ import annotations

from ansible_collections.coderops.deploy.plugins.module_utils._kube import _pod_problems
from ansible_collections.coderops.deploy.plugins.module_utils._kube_rest import wrap


def pod(container, init=None, phase="Running"):
    return wrap({"metadata": {"name": "coder-1"},
                 "status": {"phase": phase, "containerStatuses": [container],
                            "initContainerStatuses": [init] if init else [],
                            "conditions": [{"type": "Ready", "status": "False", "reason": "ContainersNotReady"}]}})


def test_crash_loop_back_off_is_fatal_and_its_log_is_the_previous_instance():
    [p] = _pod_problems(pod({"name": "coder", "ready": False, "restartCount": 1,
                             "state": {"waiting": {"reason": "CrashLoopBackOff", "message": "back-off 10s"}}}))
    assert p["fatal"] and p["reason"] == "CrashLoopBackOff"
    assert p["container"] == "coder" and p["previous_log"] is True


def test_running_again_after_crashes_is_fatal():
    # Coder retries PostgreSQL for 30 s before it exits: most of the time it is running, unready.
    status = {"name": "coder", "ready": False, "restartCount": 2, "state": {"running": {}},
              "lastState": {"terminated": {"exitCode": 1, "reason": "Error"}}}
    [p] = _pod_problems(pod(status))
    assert p["fatal"] and p["reason"] == "Restarting"
    assert p["message"] == "container coder restarted 2 times, last exit code 1 (Error)"
    assert p["previous_log"] is True


def test_one_crash_or_a_clean_exit_is_not_fatal_yet():
    once = {"name": "coder", "ready": False, "restartCount": 1, "state": {"running": {}},
            "lastState": {"terminated": {"exitCode": 1}}}
    clean = {"name": "coder", "ready": False, "restartCount": 3, "state": {"running": {}},
             "lastState": {"terminated": {"exitCode": 0}}}
    for status in (once, clean):
        [p] = _pod_problems(pod(status))
        assert not p["fatal"] and p["reason"] == "ContainersNotReady"


def test_a_crashing_init_container_counts_too():
    init = {"name": "migrations", "ready": False, "restartCount": 3, "state": {"running": {}},
            "lastState": {"terminated": {"exitCode": 1, "reason": "Error"}}}
    main = {"name": "coderd", "ready": False, "restartCount": 0, "state": {"waiting": {"reason": "PodInitializing"}}}
    [p] = _pod_problems(pod(main, init=init, phase="Pending"))
    assert p["fatal"] and p["container"] == "migrations"
    assert p["message"].startswith("init container migrations restarted 3 times")
