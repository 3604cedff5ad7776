# Copyright (c) 2026, coderops maintainers
# GNU General Public License v3.0+ (see LICENSE or https://www.gnu.org/licenses/gpl-3.0.txt)
# SPDX-License-Identifier: GPL-3.0-or-later
"""Upgrades that respect Coder's database (issue 15), the guards: playbooks/deploy_coder.yml
refuses, before anything changes and naming the variable, a dirty schema, a v2 chart onto a
database that holds Coder v1's tables and the reverse, and a downgrade of Coder.

Each case has a database of its own on server `main`, with Coder's migration tables made the way
Coder (and the stand-in, tests/images/coder-standin) makes them: golang-migrate's
`schema_migrations (version, dirty)` for v2, `migration_cursor` for v1. The pods are kwok's:
nothing here needs a pod to run.
"""

from __future__ import annotations

import subprocess
import tempfile
import uuid

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


@pytest.mark.reliability(
    section="Bad input", case="Coder downgrade ({binary})",
    done="chart 2.31.0 deployed, then the chart as 2.30.0",
    expected="refused before anything changes, naming coder_chart_version and rollback_coder.yml; one revision")
@pytest.mark.parametrize("binary", HELMS)
def test_a_downgrade_is_refused(binary, namespace, database):
    name = database()
    res = playbook("deploy_coder", binary, namespace, {**V2, "coder_db_name": name},
                   tag=f"guard-downgrade-install-{binary}")
    assert res.rc == 0, res.output[-3000:]
    with tempfile.TemporaryDirectory(prefix="coderops-it-guard-") as tmp:
        subprocess.run([binary, "package", str(V2_CHART), "--version", "2.30.0", "--app-version", "2.30.0", "-d", tmp],
                       env=ENV, check=True, capture_output=True)
        older = {**V2, "coder_db_name": name, "coder_chart_ref": f"{tmp}/coder-2.30.0.tgz"}
        res = playbook("deploy_coder", binary, namespace, older, tag=f"guard-downgrade-{binary}")
    refused(res, "deploys Coder 2.30.0, older than the Coder 2.31.0", "coder_chart_version",
            "playbooks/rollback_coder.yml")
    assert [r["status"] for r in history(binary, namespace)] == ["deployed"]
