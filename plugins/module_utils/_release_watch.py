# Copyright (c) 2025, coderops maintainers
# GNU General Public License v3.0+ (see LICENSE or https://www.gnu.org/licenses/gpl-3.0.txt)
# SPDX-License-Identifier: GPL-3.0-or-later

# Note that this module util is **PRIVATE** to the collection. It can have breaking changes at any time.
# Do not use this from other collections or standalone plugins/modules!

"""A helm process watched while it runs, and the API server going away meanwhile.

Watcher is the half of ReleaseManager (_helm_release.py) that runs helm: progress lines, pods
checked every few seconds, fail-fast on a pod that will not heal, the Lease renewed, a cancelled
run stopped; and when the API server goes away, keep waiting for helm, then wait (bounded) for
the server before anything reads the history or rolls back. It uses the manager's ``p`` (the
module's parameters), ``helm``, ``kube``, ``lock``, ``cancel``, ``report`` and ``progress``.
"""

from __future__ import annotations

import datetime
import os
import time

from ansible_collections.coderops.deploy.plugins.module_utils._helm_cli import HelmError, error_text
from ansible_collections.coderops.deploy.plugins.module_utils._kube import (
    KubeError,
    describe_unreachable,
    unreachable,
    unreachable_text,
)
from ansible_collections.coderops.deploy.plugins.module_utils._release_text import progress_line

POLL_SECONDS = 1.0
POD_CHECK_SECONDS = 3.0
# How long to wait for an API server that went away before rolling back: the rest of helm's
# timeout, but at least API_WAIT_MIN (a kube-apiserver restart takes 30-60 s) and at most
# API_WAIT_MAX (a run must end; the operator is told what to run then).
API_WAIT_MIN = 120
API_WAIT_MAX = 600
API_POLL_SECONDS = 2.0


class Cancel:
    """Set by a signal handler; also trips when the process that started us went away."""

    def __init__(self, parent_pid=None):
        self.reason = None
        self.parent_pid = parent_pid

    def request(self, reason):
        if not self.reason:
            self.reason = reason

    def check(self):
        if not self.reason and self.parent_pid and os.getppid() != self.parent_pid:
            self.reason = "the Ansible process that started this run went away (killed)"
        return self.reason


class Failure(Exception):
    """Ends a run with a failed result: msg, plus the result fields to return."""

    def __init__(self, msg, **fields):
        super().__init__(msg)
        self.msg = msg
        self.fields = fields


class FailFast:
    """Which pod has been failing past the grace period, from the pods reports of the watcher.

    A pod's clock starts when a report first shows it fatal (CrashLoopBackOff, ...) and keeps
    running while the pod stays unready, also through the seconds it runs between two crashes:
    a crash loop flips between CrashLoopBackOff and running, and a clock that restarted at each
    flip would wait for a back-off as long as the grace itself (about a minute for 20 s). It
    stops when the pod is ready or gone. The run fails only on a report that shows the pod fatal
    now, so a pod that crashed once and then starts for good is given its chance.
    """

    def __init__(self, grace):
        self.grace = grace
        self.since = {}

    def update(self, report, now):
        """The problem of a pod failing past the grace (with `for_s`), or None."""
        unready = {p["pod"]: p for p in report["problems"]}
        for pod in list(self.since):
            if pod not in unready:
                del self.since[pod]
        for pod, problem in unready.items():
            if problem["fatal"]:
                self.since.setdefault(pod, now)
        for pod, started in self.since.items():
            if unready[pod]["fatal"] and now - started >= self.grace:
                return {**unready[pod], "for_s": int(now - started)}
        return None


class Watcher:
    """Runs and watches helm for a ReleaseManager (see the module docstring)."""

    def _say(self, line):
        self.progress.append(line)
        self.report(line)

    def _label(self):
        return f"release {self.p['name']} in namespace {self.p['namespace']}"

    def _history(self):
        return self.helm.history(self.p["name"], self.p["namespace"])

    # -- the API server going away ---------------------------------------------------------

    def _api_budget(self, elapsed):
        """Seconds to wait for the API server after an operation that ran `elapsed` s."""
        remaining = self.p["timeout"] - (elapsed or 0)
        return int(min(max(API_WAIT_MIN, remaining), API_WAIT_MAX))

    def _wait_for_api(self, budget):
        """Poll the API server until it answers or `budget` s pass: (answered, waited_s, last error).

        The Lease is renewed as soon as it answers: it may have run out meanwhile."""
        start = time.monotonic()
        last = None
        next_say = start
        while True:
            err = self.kube.ping()
            now = time.monotonic()
            if err is None:
                if self.lock is not None:
                    self.lock.renew()
                waited = round(now - start, 1)
                if last is not None:
                    self._say(f"the API server at {self.kube.server_url} answers again after {waited} s")
                return True, waited, last
            last = err
            if now - start >= budget:
                return False, round(now - start, 1), last
            if now >= next_say:
                self._say(f"the API server at {self.kube.server_url} does not answer ({err}); waiting"
                          f" up to {budget} s for it to come back ({int(now - start)} s so far)")
                next_say = now + self.p["progress_interval"]
            if self.lock is not None:
                self.lock.renew()
            time.sleep(API_POLL_SECONDS)

    def _api_trouble(self, outcome):
        """What the API server did during a failed operation: None when it answered throughout.

        Either the watcher saw it go away (outcome["api_outage"]) or helm's own error says it
        could not reach it. In both cases wait for it to answer before reading the history and
        rolling back: helm can do neither without it."""
        outage = outcome.get("api_outage")
        helm_says = unreachable_text(outcome.get("helm_error") or "")
        if not outage and not helm_says:
            return None
        error = (outage or {}).get("error") or describe_unreachable(outcome.get("helm_error"))
        budget = self._api_budget(outcome.get("elapsed_s"))
        back, waited, last = self._wait_for_api(budget)
        return {"url": self.kube.server_url, "error": error,
                "away_s": (outage or {}).get("away_s"), "back_during_helm": bool(outage and outage.get("back")),
                "waited_s": waited, "budget_s": budget, "back": back, "last_error": last}

    def _api_gone_failure(self, operation, target, api, good, helm_error=None):
        """The API server did not come back: fail naming what is probably left and the fix."""
        p = self.p
        self.api_gone = True
        if good:
            fix = (f"run ansible-playbook playbooks/rollback_coder.yml -e coder_namespace={p['namespace']}"
                   f" -e coder_release_name={p['name']} -e coder_rollback_revision={good} (with your"
                   f" inventory and connection variables), or: helm rollback {p['name']} {good}"
                   f" -n {p['namespace']}")
            left = (f"revision {target} (this {operation}) is most likely left pending-{operation} or"
                    f" failed, and revision {good} is the last good one")
        else:
            fix = (f"run ansible-playbook playbooks/uninstall_coder.yml -e coder_namespace={p['namespace']}"
                   f" -e coder_release_name={p['name']}, then deploy again (or: helm uninstall"
                   f" {p['name']} -n {p['namespace']})")
            left = f"revision {target} (this {operation}) is most likely left pending-{operation} or failed"
        msg = (f"{self._label()}: helm {operation} to revision {target} FAILED (api_unreachable): the"
               f" API server at {api['url']} went away during the {operation} ({api['error']}) and did"
               f" not answer again within {api['budget_s']} s (last: {api['last_error']}), so the"
               f" release could not be rolled back and its state could not be read: {left}."
               + (f" helm said: {helm_error}." if helm_error else "")
               + f" Once the API server answers, {fix}; wait"
               f" for the Lease {self.kube.lock_name(p['name'])} to expire first ({p['lock_ttl']} s"
               f" after its last renewal) if the run says another operation is in progress.")
        raise Failure(msg, reason="api_unreachable", failed_revision=target, rolled_back_to=None,
                      api_server={k: api[k] for k in ("url", "error", "waited_s", "back")})

    def _history_after_change(self):
        """helm history once the release was changed: waits for the API server if it went away."""
        try:
            return self._history()
        except HelmError as exc:
            if not unreachable_text(exc.message):
                raise
            back, dummy, last = self._wait_for_api(self._api_budget(self.p["timeout"]))
            if not back:
                self.api_gone = True
                raise Failure(f"{self._label()}: the API server at {self.kube.server_url} went away"
                              f" right after helm changed the release ({describe_unreachable(exc.message)})"
                              f" and did not answer again (last: {last}); check the release with"
                              f" helm history {self.p['name']} -n {self.p['namespace']} once it does,"
                              f" and run playbooks/rollback_coder.yml if its newest revision is not"
                              f" deployed.", reason="api_unreachable") from None
            return self._history()

    # -- the watched helm process ----------------------------------------------------------

    def _watched(self, cmd, label, timeout, fail_fast=True, cancellable=False):
        """Run helm, watching pods, printing progress, failing fast, renewing the Lease.

        Only installs and upgrades are `cancellable`: a rollback or an uninstall is the way back
        to a known state and runs to its end even when the run is being cancelled.
        """
        started_at = datetime.datetime.now(datetime.UTC)
        start = time.monotonic()
        interval = self.p["progress_interval"]
        grace = self.p["fail_fast_grace"]
        self._say(f"{label}: started (timeout {timeout} s)")
        running = self.helm.start(cmd)
        next_progress = start + interval
        next_pods = start + 1.0
        next_renew = start + max(5, self.p["lock_ttl"] // 4)
        failing = FailFast(grace)
        report = None
        stopped = None
        outage = None  # {"since", "error", "away_s", "back"} while/after the API server went away
        while running.wait_up_to(POLL_SECONDS) is None:
            now = time.monotonic()
            reason = self.cancel.check() if cancellable else None
            if reason:
                stopped = {"cause": "cancelled", "detail": reason}
                self._say(f"{label}: cancelled ({reason}); stopping helm")
                running.stop()
                break
            if self.lock is not None and now >= next_renew:
                self.lock.renew()
                next_renew = now + max(5, self.p["lock_ttl"] // 4)
            if now >= next_pods:
                next_pods = now + POD_CHECK_SECONDS
                try:
                    report = self.kube.pods_report(self.p["namespace"], self.p["name"])
                except KubeError:
                    pass
                except Exception as exc:  # pylint: disable=broad-exception-caught
                    # The API server went away (restarted, upgraded): helm may still finish (or
                    # fail on it); keep waiting for helm rather than failing on the client's error.
                    if not unreachable(exc):
                        raise
                    if outage is None or outage.get("back"):
                        outage = {"since": now, "error": describe_unreachable(exc), "away_s": None,
                                  "back": False}
                        self._say(f"{label}: the API server at {self.kube.server_url} does not answer"
                                  f" ({outage['error']}); still waiting for helm")
                    report = None
                else:
                    if outage is not None and not outage["back"]:
                        outage.update(back=True, away_s=round(now - outage["since"], 1))
                        self._say(f"{label}: the API server at {self.kube.server_url} answers again"
                                  f" after {outage['away_s']} s")
                p = failing.update(report, now) if fail_fast and report is not None and self.p["fail_fast"] else None
                if p:
                    stopped = {"cause": "fail_fast",
                               "detail": f"pod {p['pod']} is in {p['reason']} ({p['message']}), failing"
                                         f" for {p['for_s']} s, past the fail-fast grace of {grace} s;"
                                         f" it will not become ready by waiting"}
                    self._say(f"{label}: failing fast: {stopped['detail']}")
                    running.stop()
                    break
            if now >= next_progress:
                self._say(progress_line(label, now - start, timeout, report))
                next_progress = now + interval
        rc, out, err = running.finish()
        elapsed = round(time.monotonic() - start, 1)
        ok = stopped is None and rc == 0
        if outage is not None and not outage["back"]:
            outage["away_s"] = round(time.monotonic() - outage["since"], 1)
        outcome = {"ok": ok, "rc": rc, "stdout": out, "stderr": err, "elapsed_s": elapsed,
                   "started_at": started_at, "stopped": stopped, "last_report": report,
                   "error": None, "api_outage": outage}
        if not ok:
            helm_said = error_text(err) if err.strip() else f"helm exited with {rc}"
            outcome["helm_error"] = helm_said
            if stopped:
                outcome["error"] = f"{stopped['detail']} (helm then said: {helm_said})"
            else:
                outcome["error"] = helm_said
        self._say(f"{label}: {'done' if ok else 'failed'} after {elapsed} s")
        return outcome
