# Copyright (c) 2025, coderops maintainers
# GNU General Public License v3.0+ (see LICENSE or https://www.gnu.org/licenses/gpl-3.0.txt)
# SPDX-License-Identifier: GPL-3.0-or-later
"""coder_helm_release when the API server goes away mid-operation (issue 7): which errors mean
"not reachable", keeping on watching helm, waiting (bounded) for the server, then rolling back, or
failing with the state and the rollback_coder.yml command; the Lease released with retries.

Helm, the kubernetes client and the clock are fakes here; the real thing (a kube-apiserver
restarted while helm waits) is tests/reliability/test_disruptive_faults.py."""

from __future__ import annotations

import http.client
import ssl

import pytest
from ansible_collections.coderops.deploy.plugins.module_utils import _helm_release as rel
from ansible_collections.coderops.deploy.plugins.module_utils import _kube as kube_mod
from ansible_collections.coderops.deploy.plugins.module_utils import _release_params as params_mod
from ansible_collections.coderops.deploy.plugins.module_utils import _release_watch as watch
from ansible_collections.coderops.deploy.plugins.module_utils._helm_cli import HelmError
from ansible_collections.coderops.deploy.plugins.module_utils._kube_rest import ApiException

URL = "https://127.0.0.1:6443"
REFUSED = "[Errno 111] Connection refused"


def conn_refused():
    """What the client (_kube_rest, http.client) raises while kube-apiserver is down."""
    return ConnectionRefusedError(111, "Connection refused")


class Clock:
    """time.monotonic and time.sleep: sleeping only moves the clock."""

    def __init__(self):
        self.now = 1000.0

    def monotonic(self):
        return self.now

    def sleep(self, seconds):
        self.now += seconds


@pytest.fixture
def clock(monkeypatch):
    c = Clock()
    monkeypatch.setattr(rel.time, "monotonic", c.monotonic)
    monkeypatch.setattr(rel.time, "sleep", c.sleep)
    return c


class FakeKube:
    server_url = URL

    def __init__(self, clock, down_until=None, pods_down=()):
        self.clock = clock
        self.down_until = down_until  # the API server answers from this time on (None: always)
        self.pods_down = list(pods_down)  # pods_report calls that raise the connection error
        self.pings = 0

    def _down(self):
        return self.down_until is not None and self.clock.now < self.down_until

    def ping(self):
        self.pings += 1
        return REFUSED if self._down() else None

    def pods_report(self, namespace, release):
        if self.pods_down and self.pods_down.pop(0):
            raise conn_refused()
        return {"desired": 2, "ready": 1, "workloads": [], "problems": []}

    def recent_events(self, namespace, since):
        if self._down():
            raise conn_refused()
        return []

    def failed_jobs_summary(self, namespace, names):
        return []

    def lock_name(self, release):
        return f"{release}-coderops-lock"


class FakeRunning:
    def __init__(self, polls, rc, err):
        self.polls, self.rc, self.err = polls, rc, err

    def poll(self):
        if self.polls > 0:
            self.polls -= 1
            return None
        return self.rc

    def wait_up_to(self, seconds):
        rc = self.poll()
        if rc is None:
            rel.time.sleep(seconds)  # the test's clock
        return rc

    def stop(self):
        self.polls = 0

    def finish(self):
        return self.rc, "", self.err


class FakeHelm:
    """helm history follows what was run: revision 1 deployed, 2 the failed upgrade, 3 the rollback."""

    def __init__(self, kube, rollback_results=(0,)):
        self.kube = kube
        self.history_entries = [
            {"revision": 1, "status": "deployed", "description": "Install complete", "chart": "coder-1.44.0"},
            {"revision": 2, "status": "pending-upgrade", "description": "Preparing upgrade", "chart": "coder-1.44.0"},
        ]
        self.rollback_results = list(rollback_results)
        self.commands = []

    def history(self, name, namespace):
        if self.kube._down():
            raise HelmError('helm history coder failed: Kubernetes cluster unreachable: Get "https://127.0.0.1:6443'
                            '/version": dial tcp 127.0.0.1:6443: connect: connection refused')
        return [dict(e) for e in self.history_entries]

    def hooks(self, name, namespace, revision):
        return []

    def rollback_command(self, name, namespace, revision, timeout, **kwargs):
        return ["helm", "rollback", name, str(revision)]

    def start(self, cmd):
        self.commands.append(cmd)
        rc = self.rollback_results.pop(0) if self.rollback_results else 0
        if cmd[1] == "rollback":
            if rc == 0:
                self.history_entries[-1].update(status="failed", description='Upgrade "coder" failed: x')
                self.history_entries[0]["status"] = "superseded"
                self.history_entries.append({"revision": len(self.history_entries) + 1, "status": "deployed",
                                             "description": f"Rollback to {cmd[3]}", "chart": "coder-1.44.0"})
                return FakeRunning(1, 0, "")
            return FakeRunning(1, 1, "Error: dial tcp 127.0.0.1:6443: connect: connection refused\n")
        return FakeRunning(1, 0, "")


def manager(kube, helm, **params):
    p = {k: v.get("default") for k, v in params_mod.release_argument_spec().items()}
    p.update(name="coder", namespace="ns", chart_ref="coder/coder", timeout=120, progress_interval=15)
    p.update(params)
    mgr = rel.ReleaseManager(p)
    mgr.kube, mgr.helm = kube, helm
    return mgr


def failed_outcome(error, outage=None, elapsed=40.0):
    import datetime

    return {"ok": False, "rc": 1, "stdout": "", "stderr": f"Error: {error}\n", "elapsed_s": elapsed,
            "started_at": datetime.datetime.now(datetime.UTC), "stopped": None, "last_report": None,
            "error": error, "helm_error": error, "api_outage": outage}


# -- what counts as "the API server did not answer" --------------------------------------------

def test_connection_errors_are_unreachable_and_answers_are_not():
    assert kube_mod.unreachable(conn_refused())
    assert kube_mod.unreachable(ConnectionRefusedError(111, "Connection refused"))
    assert kube_mod.unreachable(http.client.RemoteDisconnected("Remote end closed connection"))
    assert kube_mod.unreachable(ssl.SSLError(1, "record layer failure"))
    assert kube_mod.unreachable(ApiException(status=503, reason="Service Unavailable"))
    assert not kube_mod.unreachable(ApiException(status=404, reason="Not Found"))
    assert not kube_mod.unreachable(ApiException(status=403, reason="Forbidden"))
    assert not kube_mod.unreachable(KeyError("spec"))


@pytest.mark.parametrize("text,expected", [
    ('UPGRADE FAILED: Get "https://127.0.0.1:6443/apis/apps/v1": dial tcp 127.0.0.1:6443: connect: '
     "connection refused", True),
    ("Kubernetes cluster unreachable: Get \"https://x/version\": EOF", True),
    ("UPGRADE FAILED: http2: client connection lost", True),
    ("the server is currently unable to handle the request (get deployments.apps coderd)", True),
    ("UPGRADE FAILED: context deadline exceeded", False),
    ("timed out waiting for the condition", False),
    ('cannot patch "coderd" with kind Deployment: field is immutable', False),
])
def test_unreachable_text(text, expected):
    assert kube_mod.unreachable_text(text) is expected


def test_the_reason_is_short():
    assert kube_mod.describe_unreachable(conn_refused()) == REFUSED
    assert kube_mod.describe_unreachable("x" * 500).endswith(" ...")


def test_cause_of_a_helm_error_from_an_unreachable_server():
    err = ('UPGRADE FAILED: Get "https://127.0.0.1:6443/api/v1/pods": dial tcp 127.0.0.1:6443: connect:'
           ' connection refused')
    assert rel.cause({"stopped": None, "error": err}) == "api_unreachable"


# -- watching helm while the server is away ------------------------------------------------------

def test_watching_helm_survives_the_server_going_away_and_records_the_outage(clock):
    # Pod checks 1-3 fail with a refused connection (what crashed the module before), then it answers.
    kube = FakeKube(clock, pods_down=[True, True, True, False, False])
    helm = FakeHelm(kube)
    helm.start = lambda cmd: FakeRunning(16, 1, "Error: UPGRADE FAILED: context deadline exceeded\n")
    mgr = manager(kube, helm)
    outcome = mgr._watched(["helm", "upgrade"], "helm upgrade of coder", 120, cancellable=True)
    assert outcome["ok"] is False and outcome["helm_error"] == "UPGRADE FAILED: context deadline exceeded"
    outage = outcome["api_outage"]
    assert outage["error"] == REFUSED and outage["back"] is True and outage["away_s"] > 0
    said = "\n".join(mgr.progress)
    assert f"the API server at {URL} does not answer ({REFUSED}); still waiting for helm" in said
    assert "answers again after" in said


def test_an_error_that_is_not_a_connection_error_is_not_swallowed(clock):
    kube = FakeKube(clock)

    def broken(namespace, release):
        raise KeyError("spec")

    kube.pods_report = broken
    helm = FakeHelm(kube)
    helm.start = lambda cmd: FakeRunning(5, 0, "")
    with pytest.raises(KeyError):
        manager(kube, helm)._watched(["helm", "upgrade"], "helm upgrade", 120)


# -- after a failed upgrade: wait, then roll back --------------------------------------------

def test_helm_failed_because_the_server_went_away_waits_for_it_then_rolls_back(clock):
    kube = FakeKube(clock, down_until=clock.now + 30)  # back 30 s after helm failed
    helm = FakeHelm(kube)
    mgr = manager(kube, helm)
    err = ('UPGRADE FAILED: Get "https://127.0.0.1:6443/apis/apps/v1": dial tcp 127.0.0.1:6443: connect:'
           ' connection refused')
    mgr._handle_failure("upgrade", 2, "coder-1.44.0", failed_outcome(err), had_good=1)
    res = mgr.result
    assert res["failed"] is True and res["reason"] == "api_unreachable"
    assert res["rolled_back_to"] == 1 and res["revision"] == 3 and res["status"] == "deployed"
    assert [c[1] for c in helm.commands] == ["rollback"] and helm.commands[0][3] == "1"
    api = res["failure"]["api_server"]
    assert api["back"] is True and 30 <= api["waited_s"] <= 35
    msg = res["msg"]
    assert "FAILED (api_unreachable)" in msg
    assert (f"the API server at {URL} went away during the upgrade (connection refused" in msg
            or f"the API server at {URL} went away during the upgrade (" in msg)
    assert "waited 3" in msg and "s for it to come back; rolled back to revision 1." in msg
    assert "rolled back to revision 1, the last good one: the release is now revision 3 (deployed)" in msg


def test_server_back_while_helm_still_ran_then_timeout_rolls_back_at_once(clock):
    kube = FakeKube(clock)
    helm = FakeHelm(kube)
    mgr = manager(kube, helm)
    outage = {"since": clock.now - 80, "error": REFUSED, "away_s": 34.8, "back": True}
    mgr._handle_failure("upgrade", 2, "coder-1.44.0",
                        failed_outcome("UPGRADE FAILED: context deadline exceeded", outage, 120.0), had_good=1)
    res = mgr.result
    assert res["reason"] == "timeout" and res["rolled_back_to"] == 1
    assert kube.pings == 1  # answered at once: no waiting
    assert (f"the API server at {URL} went away during the upgrade ({REFUSED}) for 34.8 s and came back while"
            f" helm was still running; rolled back to revision 1.") in res["msg"]


def test_no_outage_no_waiting(clock):
    kube = FakeKube(clock)
    helm = FakeHelm(kube)
    mgr = manager(kube, helm)
    mgr._handle_failure("upgrade", 2, "coder-1.44.0", failed_outcome("UPGRADE FAILED: context deadline exceeded"),
                        had_good=1)
    assert kube.pings == 0 and mgr.result["failure"]["api_server"] is None
    assert "API server" not in mgr.result["msg"]


def test_rollback_interrupted_by_the_server_going_away_again_is_tried_once_more(clock):
    kube = FakeKube(clock)
    helm = FakeHelm(kube, rollback_results=[1, 0])
    mgr = manager(kube, helm)
    outage = {"since": clock.now - 50, "error": REFUSED, "away_s": 20.0, "back": True}
    mgr._handle_failure("upgrade", 2, "coder-1.44.0",
                        failed_outcome("UPGRADE FAILED: context deadline exceeded", outage), had_good=1)
    assert [c[1] for c in helm.commands] == ["rollback", "rollback"]
    assert mgr.result["rolled_back_to"] == 1 and mgr.result["status"] == "deployed"


def test_server_gone_for_good_during_the_rollback_fails_with_the_command(clock):
    kube = FakeKube(clock)
    helm = FakeHelm(kube, rollback_results=[1])
    start = helm.start

    def start_and_go_away(cmd):
        kube.down_until = clock.now + 10_000  # the API server goes away as the rollback starts
        return start(cmd)

    helm.start = start_and_go_away
    mgr = manager(kube, helm)
    with pytest.raises(rel.Failure) as exc:
        mgr._handle_failure("upgrade", 2, "coder-1.44.0",
                            failed_outcome("UPGRADE FAILED: context deadline exceeded"), had_good=1)
    assert len(helm.commands) == 1  # not retried against a server that is not there
    assert exc.value.fields["reason"] == "api_unreachable"
    assert "-e coder_rollback_revision=1" in exc.value.msg and "did not answer again within 120 s" in exc.value.msg


def test_server_never_back_fails_with_the_state_and_the_command(clock, monkeypatch):
    monkeypatch.setattr(watch, "API_WAIT_MIN", 120)
    kube = FakeKube(clock, down_until=clock.now + 10_000)
    helm = FakeHelm(kube)
    mgr = manager(kube, helm, timeout=120)
    start = clock.now
    with pytest.raises(rel.Failure) as exc:
        mgr._handle_failure("upgrade", 2, "coder-1.44.0",
                            failed_outcome("UPGRADE FAILED: dial tcp 127.0.0.1:6443: connect: connection refused"),
                            had_good=1)
    waited = clock.now - start
    assert 120 <= waited <= 125  # bounded: max(API_WAIT_MIN, rest of the timeout)
    assert helm.commands == []  # no rollback against a server that is not there
    f = exc.value
    assert f.fields["reason"] == "api_unreachable" and f.fields["failed_revision"] == 2
    assert f"the API server at {URL} went away during the upgrade" in f.msg
    assert "did not answer again within 120 s" in f.msg
    assert "helm said: UPGRADE FAILED: dial tcp 127.0.0.1:6443: connect: connection refused." in f.msg
    assert "revision 2 (this upgrade) is most likely left pending-upgrade or failed" in f.msg
    assert ("ansible-playbook playbooks/rollback_coder.yml -e coder_namespace=ns -e coder_release_name=coder"
            " -e coder_rollback_revision=1") in f.msg
    assert "coder-coderops-lock" in f.msg
    assert mgr.api_gone is True
    assert any("waiting up to 120 s for it to come back" in line for line in mgr.progress)


def test_the_wait_is_bounded_by_the_rest_of_the_timeout_and_a_cap():
    mgr = manager(None, None, timeout=300)
    assert mgr._api_budget(20) == 280
    assert mgr._api_budget(290) == watch.API_WAIT_MIN
    assert manager(None, None, timeout=86400)._api_budget(10) == watch.API_WAIT_MAX


def test_history_after_a_successful_change_waits_for_the_server(clock):
    kube = FakeKube(clock, down_until=clock.now + 12)
    mgr = manager(kube, FakeHelm(kube))
    assert [r["revision"] for r in mgr._history_after_change()] == [1, 2]
    assert clock.now >= 1012


def test_an_escaped_connection_error_is_reported_not_raised(clock, monkeypatch):
    kube = FakeKube(clock)
    mgr = manager(kube, FakeHelm(kube))

    def boom():
        raise conn_refused()

    monkeypatch.setattr(rel, "KubeAuth", lambda p, e: None)
    monkeypatch.setattr(rel, "Helm", lambda *a, **k: mgr.helm)
    monkeypatch.setattr(rel, "Kube", lambda auth: kube)
    mgr.helm.version, mgr.helm.major = "3.17.0", 3
    monkeypatch.setattr(mgr, "_present", boom)
    res = mgr.run()
    assert res["failed"] is True and res["reason"] == "api_unreachable"
    assert f"the API server at {URL} cannot be reached ({REFUSED}). Nothing was changed." in res["msg"]


# -- the Lease -----------------------------------------------------------------------------------

class FakeCoord:
    def __init__(self, lock, failures):
        self.lock, self.failures, self.deleted = lock, failures, 0

    def read_namespaced_lease(self, name, namespace, **kw):
        if self.failures > 0:
            self.failures -= 1
            raise conn_refused()

        class L:
            class spec:
                holder_identity = self.lock.holder

            class metadata:
                resource_version = "7"
        return L

    def delete_namespaced_lease(self, name, namespace, **kw):
        self.deleted += 1


def _lock(failures, monkeypatch):
    kube = type("K", (), {"lock_name": lambda self, r: f"{r}-coderops-lock"})()
    lock = kube_mod.Lock(kube, "ns", "coder", 60, "upgrade")
    lock.held = True
    kube.coord = FakeCoord(lock, failures)
    clock = Clock()
    monkeypatch.setattr(kube_mod.time, "monotonic", clock.monotonic)
    monkeypatch.setattr(kube_mod.time, "sleep", clock.sleep)
    return lock, kube.coord, clock


def test_the_lease_is_released_once_the_server_answers_again(monkeypatch):
    lock, coord, clock = _lock(5, monkeypatch)
    assert lock.release(wait=60, poll=2) is True
    assert coord.deleted == 1 and lock.held is False and clock.now == 1010


def test_the_lease_release_gives_up_after_its_wait(monkeypatch):
    lock, coord, clock = _lock(1000, monkeypatch)
    assert lock.release(wait=20, poll=2) is False
    assert coord.deleted == 0 and 20 <= clock.now - 1000 <= 22


def test_a_lease_left_behind_is_named_in_the_message(clock, monkeypatch):
    kube = FakeKube(clock)
    mgr = manager(kube, FakeHelm(kube))
    mgr.result["msg"] = "upgrade FAILED"

    class Stuck:
        name = "coder-coderops-lock"

        def release(self, wait, poll):
            return False
    mgr.lock = Stuck()
    mgr._release_lock()
    assert mgr.result["lock_left"] == "coder-coderops-lock"
    assert "could not be deleted" in mgr.result["msg"] and "expires by itself 60 s" in mgr.result["msg"]
