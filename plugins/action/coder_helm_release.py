# Copyright (c) 2025, coderops maintainers
# GNU General Public License v3.0+ (see LICENSE or https://www.gnu.org/licenses/gpl-3.0.txt)
# SPDX-License-Identifier: GPL-3.0-or-later

"""Action plugin of coderops.deploy.coder_helm_release: live progress while helm waits.

A module cannot print anything until it returns, but a helm install or upgrade can wait for
minutes. When the task runs with the ``local`` connection and without ``become`` (the usual way
to drive helm, as with kubernetes.core), this plugin runs the module's backend in the worker
process itself and prints each progress line as it comes. It also catches SIGTERM (what AWX
sends to cancel a job) so that the backend can stop helm and put the release back on the last
good revision before the process ends.

On any other connection the module runs on the target as usual; its progress lines are printed
when it returns.
"""

from __future__ import annotations

import os
import signal

from ansible.module_utils.common.arg_spec import ArgumentSpecValidator
from ansible.plugins.action import ActionBase
from ansible.utils.display import Display
from ansible_collections.coderops.deploy.plugins.module_utils._helm_release import Cancel, ReleaseManager
from ansible_collections.coderops.deploy.plugins.module_utils._kube import AUTH_ENV
from ansible_collections.coderops.deploy.plugins.module_utils._release_params import release_argument_spec

display = Display()
MODULE = "coderops.deploy.coder_helm_release"


class ActionModule(ActionBase):
    TRANSFERS_FILES = False
    # The options and their aliases (verify_ssl, ssl_ca_cert).
    _VALID_ARGS = frozenset(name for option, spec in release_argument_spec().items()
                            for name in (option, *spec.get("aliases", ())))

    def _runs_here(self):
        transport = getattr(self._connection, "transport", "") or ""
        return transport in ("local", "ansible.builtin.local") and not self._play_context.become

    @staticmethod
    def _print(line):
        display.display(f"coder_helm_release: {line}")

    def run(self, tmp=None, task_vars=None):
        result = super().run(tmp, task_vars)
        del tmp

        if not self._runs_here():
            module_result = self._execute_module(module_name=MODULE, module_args=self._task.args,
                                                 task_vars=task_vars)
            for line in module_result.get("progress") or []:
                self._print(line)
            result.update(module_result)
            return result

        # The task's environment counts too: an option left unset takes its K8S_AUTH_* variable
        # (kubeconfig, host, api_key ...) from it first, as the module would on a target (the
        # validator's fallbacks only see this process's environment).
        env_overrides = {}
        self._compute_environment_string(env_overrides)
        env = dict(os.environ)
        env.update({k: str(v) for k, v in env_overrides.items()})
        spec = release_argument_spec()
        args = dict(self._task.args)
        for option, var in AUTH_ENV.items():
            names = (option, *spec[option].get("aliases", ()))
            if var in env_overrides and not any(args.get(n) is not None for n in names):
                args[option] = str(env_overrides[var])

        validated = ArgumentSpecValidator(spec).validate(args)
        if validated.error_messages:
            result.update(failed=True, reason="invalid_options",
                          msg="coder_helm_release: " + "; ".join(validated.error_messages))
            return result

        cancel = Cancel(parent_pid=os.getppid())
        received = []

        def _on_signal(signum, frame):
            received.append(signum)
            cancel.request(f"received {signal.Signals(signum).name}")

        previous = {sig: signal.signal(sig, _on_signal) for sig in (signal.SIGTERM, signal.SIGINT)}
        try:
            outcome = ReleaseManager(validated.validated_parameters, report=self._print,
                                     cancel=cancel, check_mode=self._task.check_mode,
                                     diff=self._task.diff, env=env).run()
        finally:
            for sig, handler in previous.items():
                signal.signal(sig, handler)
        if received:
            # The run was cancelled and the release is back on its last good revision: now end
            # the way the worker would have ended on that signal.
            handler = previous.get(received[0])
            if callable(handler):
                handler(received[0], None)
        result.update(outcome)
        result.setdefault("failed", False)
        return result
