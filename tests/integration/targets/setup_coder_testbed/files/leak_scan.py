#!/usr/bin/env python
# Copyright (c) 2025, coderops maintainers
# GNU General Public License v3.0+ (see LICENSE or https://www.gnu.org/licenses/gpl-3.0.txt)
# SPDX-License-Identifier: GPL-3.0-or-later
"""The one leak scanner of the test suites: a canary password, every form it could take, and the
places where it must never appear (tests only).

Used as a library by the deploy suite (tests/deploy) and the AWX suite (tests/awx), and as a
command by the ansible-test target coder_pg_facts_no_leak:

    leak_scan.py --make-canary                       print a new awkward random canary
    leak_scan.py --scan DIR...                       search the files under DIR
    leak_scan.py --watch-cmdlines OUT --until FILE   sample /proc/*/cmdline until FILE exists,
                                                     write one "PID FORM" line per hit to OUT

The command reads the canary from $CODER_TEST_LEAK_CANARY, never from its command line. Hits are
reported by place and form, never with the canary itself.
"""

from __future__ import annotations

import base64
import json
import os
import secrets
import string
import sys
import threading
import time
from pathlib import Path
from urllib.parse import quote, quote_plus

import yaml

ENV = "CODER_TEST_LEAK_CANARY"


def make_canary():
    core = "".join(secrets.choice(string.ascii_letters + string.digits) for dummy in range(18))
    # Spaces, quotes, = @ % \ : and non-ASCII, inside (leading and trailing white space is refused).
    return f"Cy{core} \" ' = @ % \\ : ü€ {core[:6]}z"


def _b64_fragments(data):
    """The base64 characters fully determined by `data` at each byte offset modulo 3, so that
    the secret is found inside a longer base64 blob (a Secret's data, a Helm release) too."""
    out = []
    for offset in range(3):
        enc = base64.b64encode(b"\0" * offset + data + b"\0" * 3).decode()
        start, end = offset, offset + len(data)
        keep = [i for i in range(len(enc)) if start <= (6 * i) // 8 and (6 * i + 5) // 8 < end]
        if keep:
            out.append(enc[keep[0]:keep[-1] + 1])
    return out


def forms(secret):
    """{form name: bytes} for every form the secret could take in output, files or processes."""
    raw = secret.encode()
    variants = {
        "plain": secret,
        "base64": base64.b64encode(raw).decode(),
        "base64-urlsafe": base64.urlsafe_b64encode(raw).decode(),
        "url-encoded": quote(secret, safe=""),
        "form-encoded": quote_plus(secret),
        "json-escaped": json.dumps(secret)[1:-1],
        "json-escaped-utf8": json.dumps(secret, ensure_ascii=False)[1:-1],
        # A job event is JSON whose stdout holds JSON.
        "json-escaped-twice": json.dumps(json.dumps(secret)[1:-1])[1:-1],
        "yaml-single-quoted": secret.replace("'", "''"),
        "yaml-double-quoted": yaml.safe_dump(secret, default_style='"', allow_unicode=True).strip()[1:-1],
        "yaml-dumped": yaml.safe_dump(secret, width=10000).strip().removesuffix("...").strip(),
        "python-repr": repr(secret)[1:-1],
        # A piece of the random core catches a canary cut by wrapping, quoting or encoding.
        "core": secret[2:20],
    }
    for index, fragment in enumerate(_b64_fragments(raw)):
        variants[f"base64-fragment-{index}"] = fragment
    # Forms equal to the plain text add nothing; short ones would match by chance.
    return {name: value.encode() for name, value in variants.items()
            if len(value) >= 8 and (name == "plain" or value != secret)}


def find(data, needles):
    """The names of the needles in `data` (bytes or text)."""
    if isinstance(data, str):
        data = data.encode("utf-8", "surrogateescape")
    return sorted({name for name, needle in needles.items() if needle in data})


def _strings(node):
    if isinstance(node, str):
        yield node
    elif isinstance(node, dict):
        for key, value in node.items():
            yield from _strings(key)
            yield from _strings(value)
    elif isinstance(node, list):
        for value in node:
            yield from _strings(value)


def find_in_file(data, needles, name=""):
    """Like find(); a JSON file's strings are decoded and searched too, which undoes any number of
    escaping layers."""
    found = set(find(data, needles))
    if str(name).endswith(".json"):
        try:
            doc = json.loads(data)
        except ValueError:
            doc = None
        for text in _strings(doc):
            found.update(f"decoded:{form}" for form in find(text, needles))
    return sorted(found)


def scan_text(text, needles, where):
    """[(where, form)] for every needle in the text (a JSON document when `where` ends in .json)."""
    return [(where, form) for form in find_in_file(text, needles, where)]


def scan_files(paths, needles):
    """[(path, form)] for every needle in the files."""
    hits = []
    for path in paths:
        hits += scan_text(Path(path).read_bytes(), needles, str(path))
    return hits


def scan_tree(root, needles, skip=()):
    """{path: [forms]} for every file under `root` (except those in `skip`) holding a needle."""
    hits = {}
    for path in Path(root).rglob("*"):
        if not path.is_file() or path in skip or any(str(path).startswith(str(s)) for s in skip):
            continue
        try:
            data = path.read_bytes()
        except OSError:
            continue
        found = find_in_file(data, needles, path.name)
        if found:
            hits[str(path)] = found
    return hits


class ProcWatcher:
    """Samples every process's command line (and, with `environ`, the environment of ansible,
    helm and kubectl processes) while a run goes on; records only which form was found where:
    `hits` maps a description of the process to the forms, `pid_forms` holds (pid, form)."""

    def __init__(self, needles, interval=0.02, environ=True):
        self.needles = needles
        self.interval = interval
        self.environ = environ
        self.hits = {}
        self.pid_forms = set()
        self.samples = 0
        self._stop = threading.Event()
        self._thread = threading.Thread(target=self._loop, daemon=True)

    def __enter__(self):
        self._thread.start()
        return self

    def __exit__(self, *exc):
        self._stop.set()
        self._thread.join(5)

    def sample(self):
        me = os.getpid()
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
                self.pid_forms.update((int(entry.name), form) for form in found)
            if self.environ and any(w in cmdline for w in (b"ansible", b"helm", b"kubectl", b"pg_dump", b"pg_restore",
                                                           b"psql")):
                try:
                    environ = Path(entry.path, "environ").read_bytes()
                except OSError:
                    continue
                found = find(environ, self.needles)
                if found:
                    self.hits[f"pid {entry.name} environ of {cmdline[:60]!r}"] = found
        self.samples += 1

    def _loop(self):
        while not self._stop.is_set():
            self.sample()
            time.sleep(self.interval)


def main():
    if sys.argv[1:] == ["--make-canary"]:
        print(make_canary())
        return
    secret = os.environ.get(ENV)
    if not secret:
        sys.exit(f"{ENV} is not set")
    needles = forms(secret)
    if len(sys.argv) == 5 and sys.argv[1] == "--watch-cmdlines" and sys.argv[3] == "--until":
        # Command lines only: the calling script hands the canary down in the environment.
        watcher = ProcWatcher(needles, environ=False)
        while not os.path.exists(sys.argv[4]):
            watcher.sample()
            time.sleep(watcher.interval)
        Path(sys.argv[2]).write_text("".join(f"{pid} {form}\n"
                                             for pid, form in sorted(watcher.pid_forms)))
        return
    if len(sys.argv) >= 3 and sys.argv[1] == "--scan":
        hits = {}
        for top in sys.argv[2:]:
            hits.update(scan_tree(top, needles))
        if hits:
            print("the canary password leaked:\n"
                  + "\n".join(f"{path}: {', '.join(found)}" for path, found in sorted(hits.items())))
            sys.exit(1)
        return
    sys.exit(__doc__)


if __name__ == "__main__":
    main()
