# Copyright (c) 2026, coderops maintainers
# GNU General Public License v3.0+ (see LICENSE or https://www.gnu.org/licenses/gpl-3.0.txt)
# SPDX-License-Identifier: GPL-3.0-or-later
"""_release_text: the log line a failure summary quotes, and what it blanks first. The summary
of a real crash-looping pod is the deploy suite's (tests/deploy/test_real_pods.py)."""

from __future__ import annotations

import pytest
from ansible_collections.coderops.deploy.plugins.module_utils._release_text import (
    LOG_LINE_LIMIT,
    format_pods,
    scrub,
    telling_line,
)

PASSWORD = "Cy7 \" ' = @ % \\ : ü€ z"


@pytest.mark.parametrize("line", [
    # lib/pq's answer to a URL it cannot parse quotes the URL whole.
    'parse "postgres://coder:Cy7%20%22%27%20%3D%20%40@10.213.43.1:15432/coder?sslmode=verify-full": invalid',
    f"parse postgres://coder:{PASSWORD}@10.213.43.1:15432/coder: invalid port",
    f"dial: host=10.213.43.1 password='{PASSWORD.replace(chr(39), '')}' user=coder",
    'DB_PASSWORD="Cy7 \\" x" is set',
    "token: Cy7secret",
])
def test_credentials_are_blanked(line):
    out = scrub(line)
    assert "***" in out
    for piece in ("Cy7", "ü€", "%20%22"):
        assert piece not in out, out


def test_lines_without_credentials_stay_as_they_are():
    line = 'fata connect to postgres error="pq: password authentication failed for user \\"coder\\""'
    assert scrub(line) == line
    assert scrub("see postgres://coder@db:5432/coder") == "see postgres://coder@db:5432/coder"


def test_the_telling_line_is_the_last_error_else_the_last_line():
    log = ("2026-12-01 info coder-standin starting\n"
           "2026-12-01 fata connect to postgres error=x\n"
           "2026-12-01 info shutting down\n")
    assert telling_line(log) == "2026-12-01 fata connect to postgres error=x"
    assert telling_line("a\nb\n\n") == "b"
    assert telling_line("") is None and telling_line(None) is None
    assert len(telling_line("error " + "x" * 1000)) == LOG_LINE_LIMIT


def test_format_pods_quotes_the_log_line():
    problems = [{"pod": "coder-1", "reason": "CrashLoopBackOff", "message": "container coder: back-off",
                 "log": "fata refusing to start"},
                {"pod": "coder-2", "reason": "Pending", "message": "not ready yet"}]
    assert format_pods(problems, 5) == ('coder-1: CrashLoopBackOff (container coder: back-off) log: '
                                        '"fata refusing to start"; coder-2: Pending (not ready yet)')
