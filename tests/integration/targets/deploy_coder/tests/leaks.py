# Copyright (c) 2025, coderops maintainers
# GNU General Public License v3.0+ (see LICENSE or https://www.gnu.org/licenses/gpl-3.0.txt)
# SPDX-License-Identifier: GPL-3.0-or-later
"""A canary password, its every form, and the places where it must never appear.

Hits are reported by place and form, never with the canary itself.
"""

from __future__ import annotations

import base64
import json
import os
import secrets
import string
import threading
import time
from pathlib import Path
from urllib.parse import quote, quote_plus

import yaml


def make_canary():
    core = "".join(secrets.choice(string.ascii_letters + string.digits) for dummy in range(18))
    # Spaces, quotes, = @ % \ : and non-ASCII, inside (leading and trailing white space is refused).
    return f"Cy{core} \" ' = @ % \\ : ü€ {core[:6]}z"


def forms(secret):
    raw = secret.encode()
    variants = {
        "plain": secret,
        "base64": base64.b64encode(raw).decode(),
        "base64-urlsafe": base64.urlsafe_b64encode(raw).decode(),
        "url-encoded": quote(secret, safe=""),
        "form-encoded": quote_plus(secret),
        "json-escaped": json.dumps(secret)[1:-1],
        "json-escaped-utf8": json.dumps(secret, ensure_ascii=False)[1:-1],
        "yaml-single-quoted": secret.replace("'", "''"),
        "yaml-dumped": yaml.safe_dump(secret, width=10000).strip().removesuffix("...").strip(),
        "python-repr": repr(secret)[1:-1],
        # A piece of the random core catches a canary cut by wrapping, quoting or encoding.
        "core": secret[2:20],
    }
    return {name: value.encode() for name, value in variants.items() if value}


def find(data, needles):
    if isinstance(data, str):
        data = data.encode("utf-8", "surrogateescape")
    return sorted({name for name, needle in needles.items() if needle in data})


def scan_tree(root, needles, skip=()):
    """{path: [forms]} for every file under `root` (except those in `skip`) holding a form."""
    hits = {}
    for path in Path(root).rglob("*"):
        if not path.is_file() or path in skip or any(str(path).startswith(str(s)) for s in skip):
            continue
        try:
            data = path.read_bytes()
        except OSError:
            continue
        found = find(data, needles)
        if found:
            hits[str(path)] = found
    return hits


class ProcWatcher:
    """Samples every process's command line (and the environment of ansible, helm and kubectl
    processes) while a run goes on; records only which form was found where."""

    def __init__(self, needles, interval=0.02):
        self.needles = needles
        self.interval = interval
        self.hits = {}
        self.samples = 0
        self._stop = threading.Event()
        self._thread = threading.Thread(target=self._loop, daemon=True)

    def __enter__(self):
        self._thread.start()
        return self

    def __exit__(self, *exc):
        self._stop.set()
        self._thread.join(5)

    def _loop(self):
        me = os.getpid()
        while not self._stop.is_set():
            for entry in os.scandir("/proc"):
                if not entry.name.isdigit() or int(entry.name) == me:
                    continue
                try:
                    cmdline = Path(entry.path, "cmdline").read_bytes()
                except OSError:
                    continue
                found = find(cmdline, self.needles)
                if found:
                    self.hits[f"pid {entry.name} cmdline {cmdline[:60]!r}"] = found
                if any(w in cmdline for w in (b"ansible", b"helm", b"kubectl")):
                    try:
                        environ = Path(entry.path, "environ").read_bytes()
                    except OSError:
                        continue
                    found = find(environ, self.needles)
                    if found:
                        self.hits[f"pid {entry.name} environ of {cmdline[:60]!r}"] = found
            self.samples += 1
            time.sleep(self.interval)
