# Copyright (c) 2026, coderops maintainers
# GNU General Public License v3.0+ (see LICENSE or https://www.gnu.org/licenses/gpl-3.0.txt)
# SPDX-License-Identifier: GPL-3.0-or-later
"""Upgrades that respect Coder's database (issue 15), the guards: playbooks/deploy_coder.yml
refuses, before anything changes and naming the variable, a dirty schema, a v2 chart onto a
database that holds Coder v1's tables and the reverse, a downgrade of Coder (by the chart or by an
image tag in the values), an upgrade that skips a stepping stone, and a pg_dump older than the
server.

Each case has a database of its own on server `main`, with Coder's migration tables made the way
Coder (and the stand-in, tests/images/coder-standin) makes them: golang-migrate's
`schema_migrations (version, dirty)` for v2, `migration_cursor` for v1. The pods are kwok's:
nothing here needs a pod to run.
"""

from __future__ import annotations

import os
import uuid
from pathlib import Path

import pytest
from conftest import HELMS
from helpers import ENV, REPO, history, pg_superuser, playbook, secret_hash

V2_CHART = REPO / "tests" / "charts" / "coder-v2"
V2 = {"coder_chart_generation": "v2", "coder_chart_ref": str(V2_CHART)}
V2_TABLE = "CREATE TABLE schema_migrations (version bigint NOT NULL PRIMARY KEY, dirty boolean NOT NULL)"
V1_TABLE = ("CREATE TABLE migration_cursor (id smallint PRIMARY KEY DEFAULT 1 CHECK (id = 1),"
            " version bigint NOT NULL, dirty boolean NOT NULL DEFAULT false,"
            " updated_at timestamptz NOT NULL DEFAULT now())")


@pytest.fixture
def database():
    """A database of the test's own, owned by the Coder user; `tables` SQL run in it."""
    made = []

    def make(*statements):
        name = f"coderops_guard_{uuid.uuid4().hex[:8]}"
        conn = pg_superuser()
        with conn.cursor() as cur:
            cur.execute(f'CREATE DATABASE "{name}" OWNER "{ENV["CODER_TEST_PG_MAIN_USER"]}"')
        conn.close()
        made.append(name)
        conn = pg_superuser(name)
        with conn.cursor() as cur:
            # As Coder makes them: its own tables (information_schema shows a user only those).
            cur.execute(f'SET ROLE "{ENV["CODER_TEST_PG_MAIN_USER"]}"')
            for sql in statements:
                cur.execute(sql)
        conn.close()
        return name

    yield make
    conn = pg_superuser()
    with conn.cursor() as cur:
        for name in made:
            cur.execute(f'DROP DATABASE IF EXISTS "{name}" WITH (FORCE)')
    conn.close()


def refused(res, *words):
    assert res.rc != 0, res.output[-3000:]
    assert "Nothing was changed" in res.output, res.output[-3000:]
    for word in words:
        assert word in res.output, (word, res.output[-3000:])


@pytest.mark.reliability(
    section="Bad input", case="database Coder cannot use: {case}",
    done="deploy_coder.yml against a database whose schema is {case} (v2-onto-v1: v2 chart, Coder v1's"
         " migration_cursor; v1-onto-v2: the reverse; dirty: schema_migrations dirty)",
    expected="refused before anything changes, naming coder_chart_generation / coder_db_name or the dirty"
             " migration; no release, no Secret")
@pytest.mark.parametrize("case,extra,tables,words", [
    ("v2-onto-v1", V2, [V1_TABLE, "INSERT INTO migration_cursor (version) VALUES (3)"],
     ["coder_chart_generation is v2", "Coder v1 tables (migration_cursor)", "coder_db_name"]),
    ("v1-onto-v2", {}, [V2_TABLE, "INSERT INTO schema_migrations VALUES (4, false)"],
     ["coder_chart_generation is v1", "Coder v2 tables (schema_migrations)", "coder_db_name"]),
    ("dirty", V2, [V2_TABLE, "INSERT INTO schema_migrations VALUES (4, true)"],
     ["is dirty", "migration 4 stopped halfway"]),
])
def test_refused_before_anything_changes(case, extra, tables, words, database, namespace):
    name = database(*tables)
    res = playbook("deploy_coder", "helm3", namespace, {**extra, "coder_db_name": name}, tag=f"guard-{case}")
    refused(res, *words)
    assert history("helm3", namespace) == []
    assert secret_hash(namespace, "coder-db-password") is None and secret_hash(namespace, "coder-db-url") is None


def test_the_search_path_decides_which_schema_is_read(database, namespace):
    # Coder v1's tables in schema legacy, a clean public: with coder_db_search_path legacy the
    # v2 chart is refused; on public (the default) it installs.
    name = database("CREATE SCHEMA legacy", V1_TABLE.replace("migration_cursor", "legacy.migration_cursor"))
    res = playbook("deploy_coder", "helm3", namespace,
                   {**V2, "coder_db_name": name, "coder_db_search_path": "legacy"}, tag="guard-search-path")
    refused(res, "schema legacy")
    res = playbook("deploy_coder", "helm3", namespace, {**V2, "coder_db_name": name}, tag="guard-search-path-public")
    assert res.rc == 0, res.output[-3000:]


def installed(binary, namespace, name, chart):
    res = playbook("deploy_coder", binary, namespace, {**V2, "coder_db_name": name, "coder_chart_ref": chart},
                   tag=f"guard-install-{binary}-{namespace}")
    assert res.rc == 0, res.output[-3000:]
    return {**V2, "coder_db_name": name}


def one_revision(binary, namespace):
    assert [r["status"] for r in history(binary, namespace)] == ["deployed"]


@pytest.mark.reliability(
    section="Bad input", case="Coder downgrade ({binary})",
    done="chart 2.31.0 deployed, then the chart as 2.30.0",
    expected="refused before anything changes, naming coder_chart_version and rollback_coder.yml; one revision")
@pytest.mark.parametrize("binary", HELMS)
def test_a_downgrade_is_refused(binary, namespace, database, older_chart):
    base = installed(binary, namespace, database(), str(V2_CHART))
    res = playbook("deploy_coder", binary, namespace, {**base, "coder_chart_ref": older_chart},
                   tag=f"guard-downgrade-{binary}")
    refused(res, "deploy Coder 2.30.0, older than the Coder 2.31.0 that runs now", "coder_chart_version",
            "playbooks/rollback_coder.yml")
    one_revision(binary, namespace)


@pytest.mark.reliability(
    section="Bad input", case="Coder downgrade by an image tag in coder_values_overrides",
    done="chart 2.31.0 deployed, then the same chart with coder.image.tag v2.30.0",
    expected="refused before anything changes (the image tag counts, not the chart's appVersion); one revision")
def test_a_downgrade_by_image_tag_is_refused(namespace, database):
    base = installed("helm3", namespace, database(), str(V2_CHART))
    res = playbook("deploy_coder", "helm3", namespace,
                   {**base, "coder_values_overrides": {"coder": {"image": {"tag": "v2.30.0"}}}},
                   tag="guard-downgrade-image-tag")
    refused(res, "deploy Coder 2.30.0, older than the Coder 2.31.0 that runs now", "coder_values_overrides")
    one_revision("helm3", namespace)


@pytest.mark.reliability(
    section="Bad input", case="upgrade that skips a stepping stone",
    done="Coder 2.30.0 deployed, then 2.31.0 with a stepping stone 2.30.5 in coder_extra_stepping_stones",
    expected="refused before anything changes, naming the stone, coder_chart_version and where the stones are;"
             " one revision")
def test_a_skipped_stepping_stone_is_refused(namespace, database, older_chart):
    base = installed("helm3", namespace, database(), older_chart)
    stone = {"generation": "v2", "from": ">=2.30.0,<2.30.5", "to": ">=2.31.0", "via": "2.30.5",
             "reason": "the test's own stone", "source": "tests/deploy/test_upgrade_guard.py"}
    res = playbook("deploy_coder", "helm3", namespace, {**base, "coder_extra_stepping_stones": [stone]},
                   tag="guard-stepping-stone")
    refused(res, "Coder 2.30.0 to 2.31.0 skips a stepping stone: upgrade to 2.30.5 first (the test's own stone)",
            "set coder_chart_version to 2.30.5", "roles/preflight/vars/stepping_stones.yml")
    one_revision("helm3", namespace)


@pytest.mark.reliability(
    section="Bad input", case="pg_dump older than the server",
    done="Coder 2.30.0 deployed, then 2.31.0 with a pg_dump that says it is PostgreSQL 12 first on PATH",
    expected="refused before helm runs, naming both versions and the fix; one revision, no backup file")
def test_a_pg_dump_older_than_the_server_is_refused(namespace, database, older_chart, tmp_path):
    # Only PostgreSQL 15's client exists on this machine, as old as the test bed's servers: the old
    # pg_dump is a script that answers --version as PostgreSQL 12's does (and fails otherwise).
    bin_dir = tmp_path / "bin"
    bin_dir.mkdir()
    fake = bin_dir / "pg_dump"
    fake.write_text('#!/bin/sh\n[ "$1" = --version ] && echo "pg_dump (PostgreSQL) 12.22" && exit 0\nexit 3\n')
    fake.chmod(0o755)
    base = installed("helm3", namespace, database(), older_chart)
    backups = Path(ENV["CODER_TESTBED_DIR"]) / "backups" / namespace
    res = playbook("deploy_coder", "helm3", namespace, base, tag="guard-old-pg-dump",
                   extra_env={"PATH": f"{bin_dir}:{ENV.get('PATH', os.environ['PATH'])}"})
    assert res.rc != 0, res.output[-3000:]
    assert "pg_dump is PostgreSQL 12, older than the server's 15" in res.output, res.output[-3000:]
    assert "client tools (or newer) on the controller and put them first on PATH" in res.output
    one_revision("helm3", namespace)
    assert not backups.exists() or not list(backups.iterdir())
