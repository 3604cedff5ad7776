# Copyright (c) 2026, coderops maintainers
# GNU General Public License v3.0+ (see LICENSE or https://www.gnu.org/licenses/gpl-3.0.txt)
# SPDX-License-Identifier: GPL-3.0-or-later
"""When a module runs in the worker: only on the local connection, without become or async, and
with the controller's own Python as the task's interpreter. (tests/deploy/test_module_here.py
compares the results of both ways on a real server.)"""

from __future__ import annotations

import sys
from types import SimpleNamespace

import pytest
from ansible_collections.coderops.deploy.plugins.plugin_utils._module_here import ModuleHereAction


class _Templar:
    def template(self, value):
        if value == "{{ broken":
            raise ValueError("does not template")
        return sys.executable if value == "{{ ansible_playbook_python }}" else value


def _action(transport="local", become=False, async_val=0):
    action = ModuleHereAction.__new__(ModuleHereAction)
    action._connection = SimpleNamespace(transport=transport)
    action._play_context = SimpleNamespace(become=become)
    action._task = SimpleNamespace(async_val=async_val)
    action._templar = _Templar()
    return action


@pytest.mark.parametrize("transport", ["local", "ansible.builtin.local"])
@pytest.mark.parametrize("interpreter", [sys.executable, "{{ ansible_playbook_python }}"])
def test_runs_here_on_the_local_connection_with_this_python(transport, interpreter):
    assert _action(transport).runs_here({"ansible_python_interpreter": interpreter}) is True


@pytest.mark.parametrize("action, task_vars", [
    (_action("ssh"), {"ansible_python_interpreter": sys.executable}),
    (_action(become=True), {"ansible_python_interpreter": sys.executable}),
    (_action(async_val=60), {"ansible_python_interpreter": sys.executable}),
    (_action(), {"ansible_python_interpreter": "/usr/bin/python3-other"}),
    (_action(), {"ansible_python_interpreter": "{{ broken"}),
    (_action(), {}),  # discovery would pick one: run the usual way
    (_action(), None),
], ids=["ssh", "become", "async", "other-python", "untemplatable", "unset", "no-vars"])
def test_runs_the_usual_way_otherwise(action, task_vars):
    assert action.runs_here(task_vars) is False
