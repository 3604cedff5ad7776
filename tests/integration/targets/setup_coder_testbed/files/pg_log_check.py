#!/usr/bin/env python
# Copyright (c) 2025, coderops maintainers
# GNU General Public License v3.0+ (see LICENSE or https://www.gnu.org/licenses/gpl-3.0.txt)
# SPDX-License-Identifier: GPL-3.0-or-later
"""What one coder_pg_facts run did on the server, read from the server's log (tests only).

    pg_log_check.py LOGFILE OFFSET MARKER

The role the module logged in as has log_statement = all, so from OFFSET on the log holds its
statements, each line tagged with the backend's [pid] (log_line_prefix '%m [%p] '). Prints JSON:
the backends that ran a statement with MARKER and, per backend, its statements in order.
"""

from __future__ import annotations

import json
import re
import sys

LINE = re.compile(r"^\S+ \S+ \S+ \[(\d+)\] (?:\S+ )?LOG:  statement: (.*)$")


def main():
    path, offset, marker = sys.argv[1], int(sys.argv[2]), sys.argv[3]
    with open(path, "rb") as fh:
        fh.seek(offset)
        text = fh.read().decode("utf-8", "replace")
    statements = {}
    current_pid = None
    for raw in text.splitlines():
        m = LINE.match(raw)
        if m:
            current_pid = m.group(1)
            statements.setdefault(current_pid, []).append(m.group(2))
        elif current_pid is not None and raw.startswith(("\t", " ")):
            # A statement that spans several lines continues with indented lines.
            statements[current_pid][-1] += "\n" + raw.strip()
        else:
            current_pid = None
    ours = sorted(pid for pid, stmts in statements.items() if any(marker in s for s in stmts))
    print(json.dumps({
        "backends": ours,
        "statements": {pid: statements[pid] for pid in ours},
    }))


if __name__ == "__main__":
    main()
