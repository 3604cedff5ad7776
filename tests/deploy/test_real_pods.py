# Copyright (c) 2026, coderops maintainers
# GNU General Public License v3.0+ (see LICENSE or https://www.gnu.org/licenses/gpl-3.0.txt)
# SPDX-License-Identifier: GPL-3.0-or-later
"""Real pods (issue 14): playbooks/deploy_coder.yml with helm 3 and helm 4 puts the Coder stand-in
(tests/images/coder-standin, which parses the database settings with Coder's own driver) on the
test bed's real node, and the pods become Ready only because they logged in to PostgreSQL and
migrated: the test finds the migrations in the database, the pods' connections in
pg_stat_activity (no more per pod than the pool the values give it) and the version at
/api/v2/buildinfo through the API server's service proxy.

Each case gets a namespace whose pods go to the real node (its annotations) and a database of its
own, so that cases of both Coder generations run side by side. The pods reach PostgreSQL at the
pod bridge's address on this machine (CODER_TEST_POD_DB_HOST), which the server certificate names.
A wrong password in the Secret leaves the new pods crash looping: the run fails fast, quotes the
stand-in's log line, and the rollback brings back a revision whose pods are Ready for real.
"""

from __future__ import annotations

import uuid

import pytest
from conftest import HELMS
from helpers import history, playbook
from realnode import MTLS, MTLS_USER, NO_CA, SKIP, V2, check_running_for_real, places, wait_ready

pytestmark = SKIP


@pytest.fixture
def place():
    with places() as make:
        yield make


CASES = {
    # v1: the password as env (sslmode require, no CA), as a file (verify-full), a client certificate.
    "v1-password-env": ({**NO_CA}, {}),
    "v1-password-file-verify-full": ({"coder_db_no_password_env": True, "coder_replicas": 2}, {}),
    "v1-client-certificate": ({**MTLS}, {"owner": MTLS_USER}),
    # v2: a URL whose password holds URL-special characters, a CA, a client certificate (the key
    # must be readable by uid 1000: lib/pq refuses it otherwise).
    "v2-url-special-password": ({**V2, **NO_CA}, {"password_role": True}),
    "v2-ca-verify-full": ({**V2}, {}),
    "v2-client-certificate": ({**V2, **MTLS}, {"owner": MTLS_USER}),
}


@pytest.mark.parametrize("binary", HELMS)
@pytest.mark.parametrize("case", list(CASES))
def test_pods_log_in_and_migrate_for_real(case, binary, place):
    extra, how = CASES[case]
    p = place(**how)
    res = playbook("deploy_coder", binary, p.namespace, {**extra, **p.vars()}, tag=f"real-{case}-{binary}")
    assert res.rc == 0, res.output[-4000:]
    generation = extra.get("coder_chart_generation", "v1")
    version = "2.31.0" if generation == "v2" else "1.44.0"
    assert "health check passed" in res.output, res.output[-4000:]
    check_running_for_real(p, generation, version, replicas=extra.get("coder_replicas", 1))
    if p.password:
        assert p.password not in res.output


@pytest.mark.reliability(
    section="Faults", case="wrong password in the Secret ({binary}, real pods)",
    done="upgrade whose URL Secret holds a wrong password (preflight's database check off)",
    expected="FAILED (fail_fast) quoting the stand-in's 'password authentication failed' log line, the"
             " password nowhere in the output; rolled back to revision 1 whose pod is Ready and connected")
@pytest.mark.parametrize("binary", HELMS)
def test_a_wrong_password_fails_fast_quotes_the_log_and_rolls_back_to_pods_that_run(binary, place):
    p = place()
    base = {**V2, **p.vars()}
    res = playbook("deploy_coder", binary, p.namespace, base, tag=f"real-wrong-pw-install-{binary}")
    assert res.rc == 0, res.output[-4000:]
    # A new Secret with a wrong password (the controller does not check it: preflight off), so
    # that revision 1 still names the good one.
    wrong = f"wrong-{uuid.uuid4().hex}"
    res = playbook("deploy_coder", binary, p.namespace,
                   {**base, "coder_db_password": wrong, "coder_db_url_secret": "coder-db-url-new",
                    "preflight_check_database": False, "helm_release_fail_fast_grace": 5},
                   tag=f"real-wrong-pw-upgrade-{binary}")
    assert res.rc != 0
    assert "FAILED (fail_fast)" in res.output, res.output[-4000:]
    assert 'log: "' in res.output and "password authentication failed" in res.output, res.output[-4000:]
    assert wrong not in res.output
    revisions = history(binary, p.namespace)
    assert [r["status"] for r in revisions][-2:] == ["failed", "deployed"], revisions
    assert "Rollback to 1" in revisions[-1]["description"], revisions
    wait_ready(p.namespace)
    check_running_for_real(p, "v2", "2.31.0")


@pytest.mark.reliability(
    section="Faults", case="helm ready, Coder not at the version ({binary}, real pods)",
    done="upgrade with coder_health_check_version 9.9.9 (buildinfo says 2.31.0)",
    expected="FAILED (health_gate) with what buildinfo said, rolled back to revision 1, and the gate"
             " confirms 2.31.0 after the rollback")
@pytest.mark.parametrize("binary", HELMS)
def test_the_health_gate_fails_an_upgrade_coder_does_not_confirm(binary, place):
    # helm says ready, but Coder reports another version than the one asked for: a failed upgrade,
    # rolled back, and the gate then confirms the old revision.
    p = place()
    base = {**V2, **p.vars()}
    res = playbook("deploy_coder", binary, p.namespace, base, tag=f"real-gate-install-{binary}")
    assert res.rc == 0, res.output[-4000:]
    res = playbook("deploy_coder", binary, p.namespace,
                   {**base, "coder_replicas": 2, "coder_health_check_version": "9.9.9",
                    "coder_health_check_timeout": 6}, tag=f"real-gate-upgrade-{binary}")
    assert res.rc != 0
    assert "FAILED (health_gate)" in res.output, res.output[-4000:]
    assert "/api/v2/buildinfo reports v2.31.0, not v9.9.9" in res.output
    assert "after the rollback Coder answers v2.31.0 at coder:80" in res.output, res.output[-4000:]
    revisions = history(binary, p.namespace)
    # helm itself saw revision 2 succeed (superseded now); revision 3 is the rollback to 1.
    assert [r["status"] for r in revisions] == ["superseded", "superseded", "deployed"], revisions
    assert "Rollback to 1" in revisions[-1]["description"], revisions
    wait_ready(p.namespace)  # the surge pod gone
    check_running_for_real(p, "v2", "2.31.0")
