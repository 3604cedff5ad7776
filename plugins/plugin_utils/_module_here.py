# Copyright (c) 2026, coderops maintainers
# GNU General Public License v3.0+ (see LICENSE or https://www.gnu.org/licenses/gpl-3.0.txt)
# SPDX-License-Identifier: GPL-3.0-or-later

"""Run one of this collection's modules inside the task's worker process when it would run on the
controller anyway, with the very interpreter the worker runs.

Why: a module normally runs as AnsiballZ: the controller walks and zips every module_utils file the
module imports (``ansible.module_utils.basic`` alone is some 60 files), and a new interpreter then
compiles all of them from source, because Python caches no bytecode for a zip. On the 2-core build
machine that is about 1.5 s of CPU per module call, most of a no-op deploy's time (docs/performance.md).
When the task runs with the ``local`` connection, without ``become`` or ``async``, and its
``ansible_python_interpreter`` is the controller's own Python (as ``ansible_playbook_python`` is, and
as kubernetes.core recommends for local API clients), the worker imports the module from the
installed collection instead (with cached bytecode) and runs its ``main()`` with the same arguments,
environment and check/diff flags. The module itself is unchanged: it parses its arguments with
``AnsibleModule``, scrubs its ``no_log`` values and prints its result, which is read back the way
``_execute_module`` reads a module's output. The worker is a fork used for this one task and then
discarded, so what the module changes in the process (environment, ``__main__``) goes with it.

On any other connection, interpreter, ``become`` or ``async``, the module runs the usual way.
"""

from __future__ import annotations

import contextlib
import io
import json
import os
import runpy
import sys
import traceback
import warnings

from ansible.module_utils import basic
from ansible.module_utils.common.json import Direction, get_module_encoder
from ansible.plugins.action import ActionBase
from ansible.utils.display import Display

# Our modules declare no serialization profile, so AnsiballZ uses this one for them too.
_PROFILE = "legacy"
_LOCAL = ("local", "ansible.builtin.local")
display = Display()


def _python_path(fqcn):
    namespace, collection, name = fqcn.split(".")
    return f"ansible_collections.{namespace}.{collection}.plugins.modules.{name}"


def on_controller(action):
    """Whether the task of `action` (an ActionBase) runs on the controller as the controller's user."""
    transport = getattr(action._connection, "transport", "") or ""
    return transport in _LOCAL and not action._play_context.become


class ModuleHereAction(ActionBase):
    """Base of an action plugin that only runs its module, in the worker where it can."""

    TRANSFERS_FILES = False
    MODULE = ""  # the module's FQCN, set by each action plugin

    def runs_here(self, task_vars):
        if not on_controller(self) or self._task.async_val:
            return False
        interpreter = (task_vars or {}).get("ansible_python_interpreter")
        if not interpreter:
            return False
        try:
            interpreter = self._templar.template(interpreter)
        except Exception:  # an interpreter that does not template runs the usual way, and fails there
            return False
        return isinstance(interpreter, str) and os.path.abspath(interpreter) == sys.executable

    def run(self, tmp=None, task_vars=None):
        result = super().run(tmp, task_vars)
        del tmp
        result.update(self.run_module(task_vars))
        return result

    def run_module(self, task_vars):
        """The module's result with the task's arguments, run here or the usual way."""
        if self.runs_here(task_vars):
            return self.run_module_here(self._task.args, task_vars)
        return self._execute_module(module_name=self.MODULE, module_args=self._task.args, task_vars=task_vars)

    def run_module_here(self, module_args, task_vars):
        """The module's result, as `_execute_module` would return it, from a run in this process."""
        display.vvv(f"{self.MODULE}: runs in this worker process with {sys.executable}, not as AnsiballZ")
        module_args = dict(module_args)
        self._update_module_args(self.MODULE, module_args, task_vars)
        # The task's `environment:` applies to the module, as it would on a target.
        env_overrides = {}
        self._compute_environment_string(env_overrides)
        os.environ.update({str(k): str(v) for k, v in env_overrides.items()})

        encoder = get_module_encoder(_PROFILE, Direction.CONTROLLER_TO_MODULE)
        basic._ANSIBLE_ARGS = json.dumps({"ANSIBLE_MODULE_ARGS": module_args}, cls=encoder).encode()
        basic._ANSIBLE_PROFILE = _PROFILE
        out = io.StringIO()
        rc = 0
        try:
            with contextlib.redirect_stdout(out), warnings.catch_warnings():
                # The action plugin imported the module already (so that forked workers find it
                # compiled); runpy warns about that on stderr, which ansible shows as a warning of
                # every task. Running it again as __main__ is what is meant.
                warnings.filterwarnings("ignore", message=".*found in sys.modules after import of package",
                                        category=RuntimeWarning)
                runpy.run_module(_python_path(self.MODULE), run_name="__main__", alter_sys=True)
            rc = 1
            out = io.StringIO(json.dumps({"failed": True, "msg": f"{self.MODULE} did not exit"}))
        except SystemExit as exc:
            rc = exc.code if isinstance(exc.code, int) else 1
        except Exception as exc:  # what AnsiballZ's loader reports for a module that raised
            return {"failed": True, "msg": f"{self.MODULE} raised {type(exc).__name__}: {exc}",
                    "exception": traceback.format_exc()}
        finally:
            basic._ANSIBLE_ARGS = None
        parsed = self._parse_returned_data({"rc": rc, "stdout": out.getvalue(), "stderr": "",
                                            "stdout_lines": [], "stderr_lines": []}, _PROFILE)
        if hasattr(parsed, "remove_internal_keys"):  # ansible-core 2.21: a UnifiedTaskResult
            parsed.remove_internal_keys()
            return parsed.as_result_dict(for_round_trip=True)
        from ansible.vars.clean import remove_internal_keys  # ansible-core 2.19 and 2.20: a dict

        parsed.pop("_ansible_suppress_tmpdir_delete", None)
        remove_internal_keys(parsed)
        return parsed
