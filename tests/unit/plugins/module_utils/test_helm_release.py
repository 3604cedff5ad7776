# Copyright (c) 2025, coderops maintainers
# GNU General Public License v3.0+ (see LICENSE or https://www.gnu.org/licenses/gpl-3.0.txt)
# SPDX-License-Identifier: GPL-3.0-or-later
"""The pure parts of coder_helm_release: history analysis, the last good revision, helm 3/4
flags, error text, input checks. (The behaviour against real helm and a real cluster is in
tests/deploy.)"""

from __future__ import annotations

import pytest
from ansible_collections.coderops.deploy.plugins.module_utils import _helm_cli as cli
from ansible_collections.coderops.deploy.plugins.module_utils import _helm_release as rel
from ansible_collections.coderops.deploy.plugins.module_utils import _release_history as history_mod
from ansible_collections.coderops.deploy.plugins.module_utils import _release_params as params_mod
from ansible_collections.coderops.deploy.plugins.module_utils._kube import KubeAuth
from ansible_collections.coderops.deploy.plugins.module_utils._release_text import progress_line


def h(*entries):
    return [{"revision": i + 1, "status": s, "description": d, "chart": "coder-1.44.0"}
            for i, (s, d) in enumerate(entries)]


def test_absent_release():
    st = history_mod.analyse([])
    assert st["exists"] is False and st["last_good_revision"] is None and st["pending"] is False


def test_last_good_after_a_failed_upgrade_and_rollback():
    hist = h(("superseded", "Install complete"), ("failed", 'Upgrade "coder" failed: x'),
             ("deployed", "Rollback to 1"))
    st = history_mod.analyse(hist)
    assert st["last_good_revision"] == 3 and st["deployed_revision"] == 3 and st["status"] == "deployed"


def test_last_good_is_not_the_failed_revision_a_failed_rollback_relabelled():
    # What helm 3 leaves when the rollback itself fails: the failed upgrade (2) is now
    # "superseded", the good one (1) still "deployed". Never go to 2.
    hist = h(("deployed", "Install complete"), ("superseded", 'Upgrade "coder" failed: deadline'),
             ("failed", 'Rollback "coder" failed: forbidden'))
    assert history_mod.last_good(hist) == 1
    assert history_mod.needs_force(hist) is True


def test_no_force_after_an_ordinary_failed_upgrade():
    hist = h(("deployed", "Install complete"), ("failed", 'Upgrade "coder" failed: x'))
    assert history_mod.last_good(hist) == 1
    assert history_mod.needs_force(hist) is False


def test_pending_states_and_no_good_revision():
    for status in cli.PENDING_STATUSES:
        st = history_mod.analyse(h(("superseded", "Install complete"), ("deployed", "Upgrade complete"),
                                   (status, "Preparing upgrade")))
        assert st["pending"] is True and st["last_good_revision"] == 2
    st = history_mod.analyse(h(("failed", 'Release "coder" failed: x')))
    assert st["last_good_revision"] is None and st["deployed_revision"] is None


def test_superseded_only_history_falls_back_to_the_newest_good_superseded():
    hist = h(("superseded", "Install complete"), ("superseded", "Upgrade complete"),
             ("failed", 'Upgrade "coder" failed: x'))
    assert history_mod.last_good(hist) == 2


@pytest.mark.parametrize("text,cause", [
    ("UPGRADE FAILED: context deadline exceeded", "timeout"),
    ("UPGRADE FAILED: resource Deployment/ns/coderd not ready. status: InProgress, message: Updated: 1/2", "timeout"),
    ("UPGRADE FAILED: pre-upgrade hooks failed: resource Job/ns/x not ready. status: Failed", "hook_failed"),
    ('cannot patch "coderd" with kind Deployment: spec.selector: Invalid value: field is immutable',
     "immutable_field"),
    ('failed to create resource: ConfigMap "coderd-Invalid_Name" is invalid: metadata.name', "rejected"),
    ("UPGRADE FAILED: another operation (install/upgrade/rollback) is in progress", "in_progress"),
    ("something else", "helm_error"),
])
def test_cause(text, cause):
    assert rel.cause({"stopped": None, "error": text}) == cause


def test_cause_of_an_early_stop():
    assert rel.cause({"stopped": {"cause": "fail_fast"}, "error": "x"}) == "fail_fast"


def test_error_text_drops_helm4_log_lines_and_shortens():
    err = 'level=WARN msg="upgrade failed" name=coder error="x"\nError: UPGRADE FAILED: boom\n'
    assert cli.error_text(err) == "UPGRADE FAILED: boom"
    long = "Error: " + "y" * 3000
    out = cli.error_text(long)
    assert len(out) < 1600 and out.endswith("more characters)")


def test_chart_args(tmp_path):
    assert cli.chart_args("coder/coder", "https://helm.coder.com") == ("coder", "https://helm.coder.com")
    assert cli.chart_args("coder/coder") == ("coder/coder", None)
    assert cli.chart_args(str(tmp_path), "https://x") == (str(tmp_path), None)
    assert cli.chart_args("oci://registry/coder", "https://x") == ("oci://registry/coder", None)


def _helm(major):
    helm = object.__new__(cli.Helm)
    helm.binary, helm.kubeconfig, helm.context, helm.env = "/bin/helm", "/kc", "ctx", {}
    helm.auth = KubeAuth({"kubeconfig": "/kc", "context": "ctx"}, {})
    helm.wait_strategy, helm.major, helm.version = "watcher", major, f"{major}.0.0"
    return helm


@pytest.mark.parametrize("major,wait", [(3, "--wait"), (4, "--wait=watcher")])
def test_flags_per_major(major, wait):
    helm = _helm(major)
    cmd = helm.deploy_command("upgrade", "coder", "ns", "coder/coder", "/v.json", 300,
                              repo_url="https://r", version="1.44.0", history_max=5)
    assert wait in cmd and "--atomic" not in cmd and "--rollback-on-failure" not in cmd
    assert cmd[cmd.index("--timeout") + 1] == "300s" and "--reset-values" in cmd
    assert cmd[cmd.index("--repo") + 1] == "https://r" and cmd[2:4] == ["coder", "coder"]
    assert cmd[cmd.index("--kubeconfig") + 1] == "/kc" and cmd[cmd.index("--kube-context") + 1] == "ctx"
    rb = helm.rollback_command("coder", "ns", 3, 60, force=True)
    assert wait in rb
    assert ("--force" in rb) == (major == 3) and "--force-replace" not in rb
    assert wait not in helm.rollback_command("coder", "ns", 3, 60, wait=False)


@pytest.mark.parametrize("field,value", [
    ("name", ""), ("name", "x" * 54), ("timeout", 5), ("progress_interval", 31), ("progress_interval", 0),
    ("lock_ttl", 5), ("chart_ref", ""), ("revision", 3),
])
def test_check_params(field, value):
    params = {k: v.get("default") for k, v in params_mod.release_argument_spec().items()}
    params.update(name="coder", namespace="ns", chart_ref="coder/coder")
    params[field] = value
    with pytest.raises(rel.InputError) as exc:
        params_mod.check_params(params)
    assert exc.value.field == field


def test_argument_specs_are_fresh_copies():
    a = params_mod.release_argument_spec()
    a["timeout"]["default"] = 1
    assert params_mod.release_argument_spec()["timeout"]["default"] == 300
    assert set(params_mod.connection_argument_spec()) <= set(params_mod.release_argument_spec())


def test_progress_line_says_why_not_ready():
    line = progress_line("helm upgrade", 31, 300, {
        "desired": 2, "ready": 1, "workloads": [{"kind": "Deployment", "name": "coderd", "ready": 1, "desired": 2}],
        "problems": [{"pod": "coderd-x", "reason": "CrashLoopBackOff", "message": "back-off", "fatal": True}]})
    assert "31 s of 300 s" in line and "pods ready 1/2" in line and "coderd-x: CrashLoopBackOff" in line


def test_doc_fragment_matches_the_connection_spec():
    import yaml
    from ansible_collections.coderops.deploy.plugins.doc_fragments._helm import ModuleDocFragment
    from ansible_collections.coderops.deploy.plugins.doc_fragments._k8s_auth import ModuleDocFragment as Auth

    documented = yaml.safe_load(ModuleDocFragment.DOCUMENTATION)["options"]
    documented.update(yaml.safe_load(Auth.DOCUMENTATION)["options"])
    spec = params_mod.connection_argument_spec()
    assert set(documented) == set(spec)
    for name, option in spec.items():
        assert documented[name]["type"] == option["type"], name
        assert documented[name].get("default") == option.get("default"), name
        assert bool(documented[name].get("required")) == bool(option.get("required")), name


def _pods(*problems):
    return {"desired": 1, "ready": 0, "workloads": [], "problems": [
        {"pod": pod, "reason": reason, "message": reason.lower(), "fatal": fatal} for pod, reason, fatal in problems]}


def test_fail_fast_keeps_a_crash_loops_clock_through_its_runs():
    # Coder's crash loop: CrashLoopBackOff, a few seconds running (unready), CrashLoopBackOff...
    from ansible_collections.coderops.deploy.plugins.module_utils._release_watch import FailFast
    ff = FailFast(20)
    assert ff.update(_pods(("c-1", "CrashLoopBackOff", True)), 0) is None
    assert ff.update(_pods(("c-1", "NotReady", False)), 12) is None  # running between crashes
    stuck = ff.update(_pods(("c-1", "CrashLoopBackOff", True)), 21)
    assert stuck["pod"] == "c-1" and stuck["for_s"] == 21


def test_fail_fast_gives_a_pod_that_starts_its_chance_and_forgets_a_ready_one():
    from ansible_collections.coderops.deploy.plugins.module_utils._release_watch import FailFast
    ff = FailFast(20)
    ff.update(_pods(("c-1", "CrashLoopBackOff", True)), 0)
    assert ff.update(_pods(("c-1", "NotReady", False)), 30) is None  # past the grace, but starting now
    assert ff.update(_pods(), 31) is None  # ready: its clock is gone
    assert ff.update(_pods(("c-1", "CrashLoopBackOff", True)), 40) is None  # a new clock
    assert ff.update(_pods(("c-1", "CrashLoopBackOff", True)), 59) is None
    assert ff.update(_pods(("c-1", "CrashLoopBackOff", True)), 60)["for_s"] == 20
