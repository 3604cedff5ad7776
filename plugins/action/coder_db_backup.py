# Copyright (c) 2026, coderops maintainers
# GNU General Public License v3.0+ (see LICENSE or https://www.gnu.org/licenses/gpl-3.0.txt)
# SPDX-License-Identifier: GPL-3.0-or-later

"""Action plugin of coderops.deploy.coder_db_backup: progress while pg_dump writes.

A module prints nothing until it returns, and a dump of a large Coder database takes minutes.
When the module runs on this machine (the ``local`` connection, as the roles run it: the backup
goes to the controller), this plugin runs the module (in the worker where it can:
plugin_utils/_module_here.py) and, meanwhile, prints every few seconds how far the new backup file
in ``dest`` has grown. It reads only file names and sizes,
never the file. On any other connection, or with ``command``, a restore or check mode, it only
runs the module.
"""

from __future__ import annotations

import os
import threading
import time

from ansible.utils.display import Display
from ansible_collections.coderops.deploy.plugins.module_utils._db_backup import SUFFIX
from ansible_collections.coderops.deploy.plugins.plugin_utils._module_here import ModuleHereAction, on_controller

display = Display()
PROGRESS_SECONDS = 5.0


def _mib(size):
    return f"{size / 1048576:.1f} MiB"


class DumpWatch:
    """Reports the size of the newest backup of `name` in `dest` that was not there at the start."""

    def __init__(self, dest, name, report, every=PROGRESS_SECONDS):
        self.dest, self.name, self.report, self.every = dest, name, report, every
        self.before = set(self._files())
        self.done = threading.Event()
        self.thread = threading.Thread(target=self._run, daemon=True)

    def _files(self):
        try:
            return [f for f in os.listdir(self.dest) if f.startswith(f"{self.name}-r") and f.endswith(SUFFIX)]
        except OSError:
            return []

    def progress(self, elapsed):
        """One progress line, or None while the new file is not there yet."""
        new = [f for f in self._files() if f not in self.before]
        if not new:
            return None
        try:
            size = os.path.getsize(os.path.join(self.dest, sorted(new)[-1]))
        except OSError:
            return None
        return f"pg_dump: {_mib(size)} written after {int(elapsed)} s"

    def _run(self):
        start = time.monotonic()
        while not self.done.wait(self.every):
            line = self.progress(time.monotonic() - start)
            if line:
                self.report(line)

    def __enter__(self):
        self.thread.start()
        return self

    def __exit__(self, *exc):
        self.done.set()
        self.thread.join(timeout=self.every + 1)


class ActionModule(ModuleHereAction):
    MODULE = "coderops.deploy.coder_db_backup"

    def _watches(self):
        args = self._task.args
        return (on_controller(self) and not self._task.check_mode and args.get("state", "backup") == "backup"
                and not args.get("command") and bool(args.get("dest")) and bool(args.get("name")))

    def run_module(self, task_vars):
        if not self._watches():
            return super().run_module(task_vars)
        dest = os.path.expanduser(str(self._task.args["dest"]))
        display.display(f"coder_db_backup: backing up {self._task.args.get('login_db', 'the database')}"
                        f" into {dest} (pg_dump -Fc)")
        with DumpWatch(dest, str(self._task.args["name"]), lambda line: display.display(f"coder_db_backup: {line}")):
            return super().run_module(task_vars)
