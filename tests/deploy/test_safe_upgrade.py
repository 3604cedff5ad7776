# Copyright (c) 2026, coderops maintainers
# GNU General Public License v3.0+ (see LICENSE or https://www.gnu.org/licenses/gpl-3.0.txt)
# SPDX-License-Identifier: GPL-3.0-or-later
"""Upgrades that respect Coder's database (issue 15), on the real node: Coder 2.30.0 (the stand-in,
which knows 4 migrations) upgraded to 2.31.0 (5 migrations) whose pods fail.

- after-migrate: the new pods migrate to 5 and exit. The run backs the database up first, then
  scales Coder to zero, restores the backup, checks the schema is the recorded one and rolls
  back: a row written before the upgrade is there, 2.31's table is gone, 2.30 is Ready and says
  so at /api/v2/buildinfo.
- the same with coder_backup: false: nothing is rolled back onto the newer schema; the release
  stays on the failed revision and the message gives the steps.
- before-migrate: the schema did not change, so a plain rollback, no restore.
- playbooks/rollback_coder.yml after an upgrade that succeeded (2.31 migrated the database):
  back to 2.30 it restores the backup recorded for revision 1 first (Coder scaled to zero), by
  the schema recorded beside it; without a backup it refuses and changes nothing, until the
  operator says the database was put back (coder_rollback_database_restored).
"""

from __future__ import annotations

import json
import os
import stat
from pathlib import Path

import pytest
from conftest import HELMS
from helpers import ENV, history, playbook
from leak_scan import ProcWatcher, find, forms, scan_tree
from realnode import SKIP, V2, check_running_for_real, places, query, wait_ready

pytestmark = SKIP
CHART = Path(V2["coder_chart_ref"])


@pytest.fixture
def place():
    with places() as make:
        yield make


def install_older(binary, p, older_chart, backups):
    base = {**V2, **p.vars(), "coder_chart_ref": older_chart, "coder_backup_dir": str(backups),
            "helm_release_fail_fast_grace": 5}
    res = playbook("deploy_coder", binary, p.namespace, base, tag=f"safe-install-{binary}-{p.namespace}")
    assert res.rc == 0, res.output[-4000:]
    check_running_for_real(p, "v2", "2.30.0")
    assert query(p.database, "SELECT version, dirty FROM schema_migrations") == [(4, False)]
    role = p.role or ENV["CODER_TEST_PG_MAIN_USER"]
    query(p.database, f'SET ROLE "{role}"; CREATE TABLE before_upgrade (note text);'
                      " INSERT INTO before_upgrade VALUES ('written by 2.30'); SELECT 1")
    return base


def upgrade(binary, p, base, fail, **extra):
    newer = {**base, "coder_chart_ref": str(CHART),
             "coder_extra_envs": [{"name": "STANDIN_FAIL", "value": fail}], **extra}
    return playbook("deploy_coder", binary, p.namespace, newer, tag=f"safe-upgrade-{fail}-{binary}-{p.namespace}")


def one_backup(backups):
    """The one backup of revision 1 and its metadata file, 0600 in a 0700 directory."""
    files = sorted(backups.iterdir())
    assert [f.suffix for f in files] == [".dump", ".json"] and files[0].name.startswith("coder-r1-"), files
    assert files[1].name == files[0].name + ".json"
    assert stat.S_IMODE(os.stat(backups).st_mode) == 0o700
    assert all(stat.S_IMODE(os.stat(f).st_mode) == 0o600 for f in files)
    return files


def as_2_30_left_it(p):
    """The database as 2.30 left it: its row, not 2.31's table, schema version 4."""
    assert query(p.database, "SELECT note FROM before_upgrade") == [("written by 2.30",)]
    assert query(p.database, "SELECT to_regclass('standin_audit_logs') IS NULL") == [(True,)]
    assert query(p.database, "SELECT version, dirty FROM schema_migrations") == [(4, False)]


def back_on_2_30(binary, p):
    revisions = history(binary, p.namespace)
    assert [r["status"] for r in revisions] == ["superseded", "failed", "deployed"], revisions
    assert "Rollback to 1" in revisions[-1]["description"], revisions
    wait_ready(p.namespace, timeout=90)
    check_running_for_real(p, "v2", "2.30.0")


@pytest.mark.reliability(
    section="Faults", case="upgrade that migrates the database, then fails ({binary}, real pods)",
    done="Coder 2.30.0 to 2.31.0 whose pods migrate and exit (STANDIN_FAIL=after-migrate)",
    expected="backed up first; FAILED (fail_fast), Coder scaled to zero, the backup restored (the row written"
             " before is there, 2.31's table gone, schema version 4), rolled back; 2.30.0 Ready and at buildinfo;"
             " backup file 0600 in a 0700 directory")
@pytest.mark.parametrize("binary", HELMS)
def test_a_failed_upgrade_that_migrated_is_restored_then_rolled_back(binary, place, older_chart, tmp_path):
    # A login role whose password is a canary: pg_dump, pg_restore and psql get it in a memfd
    # password file, so no process's command line or environment, no output and no file holds it.
    p = place(password_role=True)
    backups = tmp_path / "backups"
    base = install_older(binary, p, older_chart, backups)
    with ProcWatcher(forms(p.password)) as watcher:
        res = upgrade(binary, p, base, "after-migrate")
    assert not watcher.hits, watcher.hits
    assert not find(res.output, forms(p.password))
    assert not scan_tree(backups, forms(p.password))
    assert res.rc != 0
    out = res.output
    assert "FAILED (fail_fast)" in out and "STANDIN_FAIL=after-migrate" in out, out[-5000:]
    assert "backed up" in out and "restored " in out, out[-5000:]
    assert "coder_db_backup: backing up" in out, out[-5000:]  # said before pg_dump runs
    assert "so Coder was scaled to zero and the database restored from" in out, out[-5000:]
    back_on_2_30(binary, p)
    as_2_30_left_it(p)
    # One backup file and its metadata, both 0600 in a 0700 directory.
    dump, meta = one_backup(backups)
    assert json.loads(meta.read_text())["schema"]["version"] == 4, meta.read_text()


@pytest.mark.reliability(
    section="Faults", case="upgrade that migrates, then fails, with coder_backup false ({binary}, real pods)",
    done="Coder 2.30.0 to 2.31.0, STANDIN_FAIL=after-migrate, coder_backup: false",
    expected="not rolled back onto the newer schema: the release left on the failed revision, the message"
             " gives both schema states and the steps (restore, then rollback_coder.yml)")
@pytest.mark.parametrize("binary", HELMS)
def test_without_a_backup_the_release_is_left_with_the_steps(binary, place, older_chart, tmp_path):
    p = place()
    base = install_older(binary, p, older_chart, tmp_path / "backups")
    res = upgrade(binary, p, base, "after-migrate", coder_backup=False)
    assert res.rc != 0
    out = res.output
    assert "coder_backup is false" in out and "was NOT rolled back" in out, out[-5000:]
    assert "restore your snapshot" in out and "coder_rollback_revision: 1" in out, out[-5000:]
    assert [r["status"] for r in history(binary, p.namespace)] == ["deployed", "failed"]  # left as it failed
    assert query(p.database, "SELECT version FROM schema_migrations") == [(5,)]


@pytest.mark.reliability(
    section="Faults", case="upgrade that fails before migrating ({binary}, real pods)",
    done="Coder 2.30.0 to 2.31.0, STANDIN_FAIL=before-migrate",
    expected="schema unchanged: rolled back to revision 1 without a restore; 2.30.0 Ready")
@pytest.mark.parametrize("binary", HELMS)
def test_a_failure_before_migrating_is_a_plain_rollback(binary, place, older_chart, tmp_path):
    p = place()
    base = install_older(binary, p, older_chart, tmp_path / "backups")
    res = upgrade(binary, p, base, "before-migrate")
    assert res.rc != 0
    out = res.output
    assert "had not changed the database schema, so the release was rolled back to revision 1" in out, out[-5000:]
    assert "restored " not in out
    back_on_2_30(binary, p)


def upgraded_to_2_31(binary, p, base, **extra):
    """2.30 upgraded to 2.31 for good: 2.31 migrated the database to 5 and runs."""
    res = playbook("deploy_coder", binary, p.namespace, {**base, "coder_chart_ref": str(CHART), **extra},
                   tag=f"safe-upgrade-ok-{binary}-{p.namespace}")
    assert res.rc == 0, res.output[-4000:]
    check_running_for_real(p, "v2", "2.31.0")
    assert query(p.database, "SELECT version FROM schema_migrations") == [(5,)]


def rollback(binary, p, base, **extra):
    return playbook("rollback_coder", binary, p.namespace,
                    {**base, "coder_chart_ref": str(CHART), "coder_rollback_revision": 1, **extra},
                    tag=f"safe-rollback-{binary}-{p.namespace}")


@pytest.mark.reliability(
    section="Faults", case="rollback_coder.yml back to an older Coder ({binary}, real pods)",
    done="Coder 2.30.0 upgraded to 2.31.0 (which migrated the database), then rollback_coder.yml to revision 1",
    expected="the backup of revision 1 found by its metadata, Coder scaled to zero, the backup restored (schema 4,"
             " the row written before there, 2.31's table gone), rolled back; 2.30.0 Ready and at buildinfo")
@pytest.mark.parametrize("binary", HELMS)
def test_rollback_coder_to_an_older_coder_restores_its_database(binary, place, older_chart, tmp_path):
    p = place()
    backups = tmp_path / "backups"
    base = install_older(binary, p, older_chart, backups)
    upgraded_to_2_31(binary, p, base)
    one_backup(backups)
    res = rollback(binary, p, base)
    assert res.rc == 0, res.output[-5000:]
    assert "had migrated the database since the backup, so Coder was scaled to zero and the database restored" \
        in res.output, res.output[-5000:]
    revisions = history(binary, p.namespace)
    assert [r["status"] for r in revisions] == ["superseded", "superseded", "deployed"], revisions
    wait_ready(p.namespace, timeout=90)
    check_running_for_real(p, "v2", "2.30.0")
    as_2_30_left_it(p)


@pytest.mark.reliability(
    section="Bad input", case="rollback_coder.yml back to an older Coder without a backup (real pods)",
    done="Coder 2.30.0 upgraded to 2.31.0 with coder_backup false, then rollback_coder.yml to revision 1; then"
         " the database put back by hand and coder_rollback_database_restored: true",
    expected="refused before anything changes (no backup; the steps named); after the database is put back and"
             " coder_rollback_database_restored is set, rolled back and 2.30.0 Ready")
def test_rollback_coder_without_a_backup_refuses_until_the_database_is_back(place, older_chart, tmp_path):
    p = place()
    base = install_older("helm3", p, older_chart, tmp_path / "backups")
    upgraded_to_2_31("helm3", p, base, coder_backup=False)
    res = rollback("helm3", p, base)
    assert res.rc != 0, res.output[-5000:]
    out = res.output
    assert "There is no backup to restore" in out and "Nothing was changed" in out, out[-5000:]
    assert "coder_rollback_backup_file" in out and "coder_rollback_database_restored: true" in out, out[-5000:]
    assert [r["status"] for r in history("helm3", p.namespace)] == ["superseded", "deployed"]
    check_running_for_real(p, "v2", "2.31.0")
    # The operator's own snapshot, put back: 2.31's migration undone (the stand-in's 5th adds one table).
    role = p.role or ENV["CODER_TEST_PG_MAIN_USER"]
    query(p.database, f'SET ROLE "{role}"; DROP TABLE standin_audit_logs;'
                      " UPDATE schema_migrations SET version = 4; SELECT 1")
    res = rollback("helm3", p, base, coder_rollback_database_restored=True)
    assert res.rc == 0, res.output[-5000:]
    assert "taken as restored by hand" in res.output, res.output[-5000:]
    wait_ready(p.namespace, timeout=90)
    check_running_for_real(p, "v2", "2.30.0")
