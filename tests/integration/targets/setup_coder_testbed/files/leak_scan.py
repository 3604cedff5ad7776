#!/usr/bin/env python
# Copyright (c) 2025, coderops maintainers
# GNU General Public License v3.0+ (see LICENSE or https://www.gnu.org/licenses/gpl-3.0.txt)
# SPDX-License-Identifier: GPL-3.0-or-later
"""Look for a canary password in every form (integration tests only).

    leak_scan.py --make-canary                       print a new awkward random canary
    leak_scan.py --scan DIR...                       search the files under DIR
    leak_scan.py --watch-cmdlines OUT --until FILE   sample /proc/*/cmdline until FILE exists,
                                                     write one "PID FORM" line per hit to OUT

The canary is read from $CODER_TEST_LEAK_CANARY, never from the command line. Hits are reported
by file and form, never by printing the canary.
"""

from __future__ import annotations

import base64
import json
import os
import secrets
import string
import sys
import time
from urllib.parse import quote, quote_plus

ENV = "CODER_TEST_LEAK_CANARY"


def forms(secret):
    variants = {
        "plain": secret,
        "url-encoded": quote(secret, safe=""),
        "form-encoded": quote_plus(secret),
        "json-escaped": json.dumps(secret)[1:-1],
        "json-ascii-escaped": json.dumps(secret, ensure_ascii=True)[1:-1],
        "yaml-single-quoted": secret.replace("'", "''"),
        "base64": base64.b64encode(secret.encode()).decode(),
        # A long enough inner piece catches a secret cut by line wrapping or shell quoting.
        "core": secret[3:19],
    }
    return {name: value.encode() for name, value in variants.items()}


def make_canary():
    core = "".join(secrets.choice(string.ascii_letters + string.digits) for _index in range(16))
    return f"Cn{core} \" ' = @ % \\ : é€ z"


def _context(data, at, needle, needles):
    """The text around a hit, with every form of the canary masked, so the report is safe."""
    window = data[max(0, at - 80):at + len(needle) + 80]
    for name, other in sorted(needles.items(), key=lambda kv: -len(kv[1])):
        window = window.replace(other, f"<canary:{name}>".encode())
    return window.decode("utf-8", "replace").replace("\n", " ")


def scan(paths, secret):
    hits = []
    needles = forms(secret)
    for top in paths:
        for root, _dirs, names in os.walk(top):
            for name in names:
                path = os.path.join(root, name)
                try:
                    with open(path, "rb") as fh:
                        data = fh.read()
                except OSError:
                    continue
                for form, needle in needles.items():
                    at = data.find(needle)
                    if at >= 0:
                        hits.append(f"{path}: {form}: ...{_context(data, at, needle, needles)}...")
    return hits


def watch(out, until, secret):
    needles = forms(secret)
    hits = set()
    me = str(os.getpid())
    while not os.path.exists(until):
        for pid in os.listdir("/proc"):
            if not pid.isdigit() or pid == me:
                continue
            try:
                with open(f"/proc/{pid}/cmdline", "rb") as fh:
                    cmdline = fh.read()
            except OSError:
                continue
            for form, needle in needles.items():
                if needle in cmdline:
                    hits.add(f"{pid} {form}")
        time.sleep(0.02)
    with open(out, "w") as fh:
        fh.write("".join(f"{hit}\n" for hit in sorted(hits)))


def main():
    if sys.argv[1:] == ["--make-canary"]:
        print(make_canary())
        return
    secret = os.environ.get(ENV)
    if not secret:
        sys.exit(f"{ENV} is not set")
    if len(sys.argv) == 5 and sys.argv[1] == "--watch-cmdlines" and sys.argv[3] == "--until":
        watch(sys.argv[2], sys.argv[4], secret)
        return
    if len(sys.argv) >= 3 and sys.argv[1] == "--scan":
        hits = scan(sys.argv[2:], secret)
        if hits:
            print("the canary password leaked:\n" + "\n".join(hits))
            sys.exit(1)
        return
    sys.exit(__doc__)


if __name__ == "__main__":
    main()
