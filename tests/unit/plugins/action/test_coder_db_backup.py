# Copyright (c) 2026, coderops maintainers
# GNU General Public License v3.0+ (see LICENSE or https://www.gnu.org/licenses/gpl-3.0.txt)
# SPDX-License-Identifier: GPL-3.0-or-later
"""The action plugin of coder_db_backup reports the new backup file's size while pg_dump writes
it; the real pg_dump is the deploy suite's (tests/deploy/test_safe_upgrade.py)."""

from __future__ import annotations

import time

from ansible_collections.coderops.deploy.plugins.action.coder_db_backup import DumpWatch


def test_only_the_new_backup_of_the_release_counts(tmp_path):
    (tmp_path / "coder-r1-20261201T101500Z.dump").write_bytes(b"x" * 4096)  # an older backup
    watch = DumpWatch(str(tmp_path), "coder", report=None)
    assert watch.progress(1) is None
    (tmp_path / "other-r1-20261202T101500Z.dump").write_bytes(b"x")  # another release's
    assert watch.progress(2) is None
    (tmp_path / "coder-r2-20261202T101500Z.dump").write_bytes(b"x" * 3 * 1048576)
    assert watch.progress(7.9) == "pg_dump: 3.0 MiB written after 7 s"


def test_it_reports_while_the_dump_grows_and_stops_after(tmp_path):
    lines = []
    with DumpWatch(str(tmp_path), "coder", report=lines.append, every=0.05):
        (tmp_path / "coder-r2-20261202T101500Z.dump").write_bytes(b"x" * 1048576)
        time.sleep(0.3)
    count = len(lines)
    time.sleep(0.2)
    assert count >= 1 and len(lines) == count, lines
    assert lines[0].startswith("pg_dump: 1.0 MiB written after 0 s")


def test_a_missing_directory_is_no_error(tmp_path):
    assert DumpWatch(str(tmp_path / "missing"), "coder", report=None).progress(1) is None
