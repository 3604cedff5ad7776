# Copyright (c) 2025, coderops maintainers
# GNU General Public License v3.0+ (see LICENSE or https://www.gnu.org/licenses/gpl-3.0.txt)
# SPDX-License-Identifier: GPL-3.0-or-later

# Note that this module util is **PRIVATE** to the collection. It can have breaking changes at any time.
# Do not use this from other collections or standalone plugins/modules!

"""Install, upgrade, roll back and uninstall one Helm release, safely (backend of coder_helm_release).

Why not kubernetes.core.helm: it runs helm with ``--atomic`` or ``--wait`` and sits out the whole
timeout while the new pods crash loop; it rolls back (with ``--atomic``) to whatever helm picks
and cannot keep a failed first install; it does not see a release stuck ``pending-*`` nor tell
it from a run that is still going; it prints nothing while it waits and, on failure, only helm's
last line; and it knows helm 3's flags only. This backend:

* compares the chart version and the values with the *deployed* revision and makes no new
  revision when both are unchanged (and the newest revision is that deployed one);
* holds a Lease in the namespace while it changes the release, so a second run reports that
  another operation is in progress, and a ``pending-*`` release without a live Lease is known to
  be stuck: reported with guidance, or recovered when asked;
* runs helm (``--wait``, never ``--atomic``) in its own session and, while it waits, watches the
  pods of the new template: progress every ``progress_interval`` seconds, and when a pod stays in
  CrashLoopBackOff, ImagePullBackOff, Failed ... past ``fail_fast_grace`` seconds it stops helm
  at once instead of waiting for the timeout;
* on any failure rolls back to the newest ``deployed`` or ``superseded`` revision of
  ``helm history -o json`` (never blindly "previous"), or uninstalls a failed first install
  (unless it is to be kept), and returns one summary: helm's error, the pods that were not ready
  and why, recent Events, and the revision it rolled back to (or why the rollback failed too);
* on cancellation (SIGTERM, or the controller process gone) stops helm and puts the release back
  on the last good revision before it exits;
* when the API server goes away while helm runs (restarted, upgraded, the network to it down),
  keeps watching instead of failing on the client's connection error; if the operation then
  fails, waits (bounded) for the API server to answer again, rolls back as for any failure and
  says how long it was away; if it does not come back in time, fails saying what state the
  release is probably left in and the exact rollback_coder.yml command. The Lease is released
  with retries too, so that the next run does not have to wait for its TTL.
"""

from __future__ import annotations

import copy
import datetime
import json
import os
import re
import time

from ansible_collections.coderops.deploy.plugins.module_utils._helm_cli import (
    GOOD_STATUSES,
    PENDING_STATUSES,
    WAIT_STRATEGIES,
    Helm,
    HelmError,
    error_text,
    remove_values_file,
    write_values_file,
)
from ansible_collections.coderops.deploy.plugins.module_utils._inputs import InputError
from ansible_collections.coderops.deploy.plugins.module_utils._kube import (
    Kube,
    KubeAuth,
    KubeError,
    Lock,
    LockBusy,
    auth_argument_spec,
    describe_unreachable,
    unreachable,
    unreachable_text,
)

POLL_SECONDS = 1.0
POD_CHECK_SECONDS = 3.0
MAX_PROGRESS_INTERVAL = 30
# How long to wait for an API server that went away before rolling back: the rest of helm's
# timeout, but at least API_WAIT_MIN (a kube-apiserver restart takes 30-60 s) and at most
# API_WAIT_MAX (a run must end; the operator is told what to run then).
API_WAIT_MIN = 120
API_WAIT_MAX = 600
API_POLL_SECONDS = 2.0
# Deleting the Lease at the end is retried this long while the API server does not answer.
LOCK_RELEASE_WAIT = 60

_CONNECTION_SPEC = {
    "name": {"type": "str", "required": True},
    "namespace": {"type": "str", "required": True},
    "helm_binary": {"type": "str", "default": "helm"},
}

_RELEASE_SPEC = {
    "state": {"type": "str", "default": "present", "choices": ["present", "absent", "rolled_back"]},
    "chart_ref": {"type": "str"},
    "chart_repo_url": {"type": "str"},
    "chart_version": {"type": "str"},
    "values": {"type": "dict", "default": {}},
    "revision": {"type": "int"},
    "timeout": {"type": "int", "default": 300},
    "rollback_timeout": {"type": "int", "default": 300},
    "wait_strategy": {"type": "str", "default": "watcher", "choices": list(WAIT_STRATEGIES)},
    "fail_fast": {"type": "bool", "default": True},
    "fail_fast_grace": {"type": "int", "default": 20},
    "progress_interval": {"type": "int", "default": 15},
    "recover_pending": {"type": "bool", "default": False},
    "keep_failed_install": {"type": "bool", "default": False},
    "create_namespace": {"type": "bool", "default": False},
    "history_max": {"type": "int", "default": 10},
    "lock": {"type": "bool", "default": True},
    "lock_ttl": {"type": "int", "default": 60},
    "cleanup_failed_hooks": {"type": "bool", "default": True},
}


def connection_argument_spec():
    """A fresh copy of the options shared by coder_helm_release and coder_helm_release_info
    (doc fragments coderops.deploy._helm and coderops.deploy._k8s_auth)."""
    spec = copy.deepcopy(_CONNECTION_SPEC)
    spec.update(auth_argument_spec())
    return spec


def release_argument_spec():
    """A fresh copy of coder_helm_release's full argument spec."""
    spec = connection_argument_spec()
    spec.update(copy.deepcopy(_RELEASE_SPEC))
    return spec


def check_params(params):
    """Input checks that need neither helm nor the cluster (raise InputError)."""
    def _range(field, low, high):
        value = params.get(field)
        if value is None or not low <= value <= high:
            raise InputError(field, f"{field} must be between {low} and {high}; got {value}")

    for field in ("name", "namespace"):
        value = params.get(field) or ""
        if not value.strip():
            raise InputError(field, f"{field} is empty; set it")
    if len(params["name"]) > 53:
        raise InputError("name", f"name {params['name']!r} is longer than helm's 53 characters")
    _range("timeout", 10, 86400)
    _range("rollback_timeout", 10, 86400)
    _range("fail_fast_grace", 0, 3600)
    _range("progress_interval", 1, MAX_PROGRESS_INTERVAL)
    _range("history_max", 0, 1000)
    _range("lock_ttl", 15, 3600)
    state = params.get("state", "present")
    if state == "present":
        if not (params.get("chart_ref") or "").strip():
            raise InputError("chart_ref", "chart_ref is empty; set it to a repository chart (such"
                                          " as coder/coder with chart_repo_url) or a local chart path")
        if not isinstance(params.get("values") or {}, dict):
            raise InputError("values", "values must be a dictionary of Helm values")
    if params.get("revision") is not None:
        if state != "rolled_back":
            raise InputError("revision", "revision is only used with state rolled_back")
        if params["revision"] < 1:
            raise InputError("revision", f"revision must be 1 or more; got {params['revision']}")


def _canonical(values):
    """Values as helm stores them (JSON types), for comparing."""
    return json.loads(json.dumps(values or {}, sort_keys=True))


def _dump(obj):
    return json.dumps(obj, indent=2, sort_keys=True) + "\n"


# helm writes "Upgrade "x" failed: ...", "Release "x" failed: ..." or "Rollback "x" failed: ..."
# into the description of a revision that failed; that text stays when a later (failed) rollback
# relabels the revision "superseded".
_FAILED_DESCRIPTION = re.compile(r"\bfailed\b", re.IGNORECASE)


def is_good(entry):
    return (entry.get("status") in GOOD_STATUSES
            and not _FAILED_DESCRIPTION.search(entry.get("description") or ""))


def last_good(history):
    """The revision to go back to: the newest good `deployed` one, else the newest good `superseded`.

    "Newest deployed or superseded" alone is not enough: a rollback that fails has already
    relabelled the failed revision it started from "superseded" (while the last good one stays
    "deployed"), so that revision would look like the newest good one.
    """
    good = [r for r in history if is_good(r)]
    deployed = [r for r in good if r.get("status") == "deployed"]
    pick = deployed[-1] if deployed else (good[-1] if good else None)
    return int(pick["revision"]) if pick else None


def needs_force(history):
    """Whether a rollback must replace the objects rather than patch them.

    helm 3 patches with a three-way merge whose "original" is the newest revision's manifest.
    After a rollback that failed (the API server refused it), the newest revision records the
    good manifest while the live objects are still the failed upgrade's: the merge then sees no
    change and fields the failed upgrade added stay. A replace sets the objects exactly.
    """
    good = last_good(history)
    return any(int(r["revision"]) > (good or 0)
               and (r.get("description") or "").lower().startswith("rollback")
               and r.get("status") == "failed" for r in history)


def analyse(history):
    """What the history says: status, pending, deployed and last good revisions."""
    if not history:
        return {"exists": False, "status": None, "revision": None, "chart": None, "pending": False,
                "deployed_revision": None, "last_good_revision": None}
    latest = history[-1]
    deployed = [r for r in history if r.get("status") == "deployed"]
    return {
        "exists": True,
        "status": latest.get("status"),
        "revision": int(latest["revision"]),
        "chart": latest.get("chart"),
        "pending": latest.get("status") in PENDING_STATUSES,
        "deployed_revision": int(deployed[-1]["revision"]) if deployed else None,
        "last_good_revision": last_good(history),
    }


def _entry(history, revision):
    return next((r for r in history if int(r["revision"]) == int(revision)), None)


def short_history(history, count=10):
    return [{"revision": int(r["revision"]), "status": r.get("status"), "chart": r.get("chart"),
             "updated": r.get("updated"), "description": (r.get("description") or "")[:300]}
            for r in history[-count:]]


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


class ReleaseManager:
    def __init__(self, params, report=None, cancel=None, check_mode=False, diff=False, env=None):
        self.p = params
        self.report = report or (lambda line: None)
        self.cancel = cancel or Cancel()
        self.check_mode = check_mode
        self.diff = diff
        self.env = dict(os.environ if env is None else env)
        self.progress = []
        self.helm = None
        self.kube = None
        self.lock = None
        self.started = time.monotonic()
        self.api_gone = False  # set when we gave up waiting for the API server
        self.result = {"changed": False, "name": params.get("name"),
                       "namespace": params.get("namespace")}

    # -- entry point -----------------------------------------------------------------------

    def run(self):
        try:
            check_params(self.p)
            # The options, else their K8S_AUTH_* variables of the task's environment.
            auth = KubeAuth(self.p, self.env)
            self.helm = Helm(self.p["helm_binary"], env=self.env, auth=auth,
                             wait_strategy=self.p.get("wait_strategy") or "watcher")
            self.kube = Kube(auth=auth)
            self.result.update(helm_version=self.helm.version, helm_major=self.helm.major)
            state = self.p.get("state", "present")
            if state == "present":
                self._present()
            elif state == "absent":
                self._absent()
            else:
                self._rolled_back()
        except InputError as exc:
            self._fail(exc.message, field=exc.field, reason="invalid_options")
        except (HelmError, KubeError) as exc:
            self._fail(exc.message, field=exc.field, reason="error")
        except Failure as exc:
            self._fail(exc.msg, **exc.fields)
        except Exception as exc:  # pylint: disable=broad-exception-caught
            # The kubernetes client lets connection errors escape as urllib3's own exceptions;
            # say which server did not answer rather than a raw traceback text. Anything else
            # is a bug: let Ansible show it.
            if self.kube is None or not unreachable(exc):
                raise
            self._fail(self._unreachable_message(exc), reason="api_unreachable")
        finally:
            if self.lock is not None:
                self._release_lock()
        self.result["progress"] = self.progress
        self.result["duration_s"] = round(time.monotonic() - self.started, 1)
        return self.result

    def _release_lock(self):
        lock = self.lock
        self.lock = None
        if lock.release(wait=0 if self.api_gone else LOCK_RELEASE_WAIT, poll=API_POLL_SECONDS):
            return
        note = (f"The release's Lease {lock.name} could not be deleted (the API server"
                f" {self.kube.server_url} does not answer); it expires by itself"
                f" {self.p['lock_ttl']} s after its last renewal, and until then a new run reports"
                f" another operation in progress.")
        self.result["lock_left"] = lock.name
        self.result["msg"] = f"{self.result['msg']}\n{note}" if self.result.get("msg") else note

    def _unreachable_message(self, exc):
        changing = self.result.get("changed")
        return (f"{self._label()}: the API server at {self.kube.server_url} cannot be reached"
                f" ({describe_unreachable(exc)})."
                + (" Nothing was changed." if not changing else
                   " The release may have been left mid-operation: when the API server answers"
                   " again, run playbooks/rollback_coder.yml (see its header)."))

    def _fail(self, msg, **fields):
        self.result.update(fields)
        self.result["failed"] = True
        self.result["msg"] = msg

    def _say(self, line):
        self.progress.append(line)
        self.report(line)

    # -- shared steps ----------------------------------------------------------------------

    def _label(self):
        return f"release {self.p['name']} in namespace {self.p['namespace']}"

    def _history(self):
        return self.helm.history(self.p["name"], self.p["namespace"])

    def _check_lock(self):
        if not self.p.get("lock"):
            return
        state = self.kube.read_lock(self.p["namespace"], self.p["name"])
        if state and not state["expired"]:
            raise Failure(self._busy_message(state["holder"], state["renewed"], state["operation"]),
                          reason="in_progress", lock=state)

    def _busy_message(self, holder, renewed, operation):
        what = f" ({operation})" if operation else ""
        since = f", last renewed {renewed}" if renewed else ""
        return (f"another operation is in progress on {self._label()}{what}: its Lease"
                f" {self.kube.lock_name(self.p['name'])} is held by {holder}{since}. Nothing was"
                f" changed. Wait for that run to finish (the Lease expires"
                f" {self.p['lock_ttl']} s after its holder stops) and run again.")

    def _take_lock(self, operation):
        if not self.p.get("lock") or self.check_mode or self.lock is not None:
            return
        lock = Lock(self.kube, self.p["namespace"], self.p["name"], self.p["lock_ttl"], operation)
        try:
            lock.acquire()
        except LockBusy as exc:
            raise Failure(self._busy_message(exc.holder, exc.renewed, exc.operation),
                          reason="in_progress") from None
        self.lock = lock

    def _pending_guidance(self, st):
        good = st["last_good_revision"]
        fix = (f"roll back to revision {good}, the last good one" if good else
               "uninstall the release (it has no good revision) and install it again")
        return (f"{self._label()} is stuck in {st['status']} (revision {st['revision']}): a helm"
                f" process was killed mid-operation and no coderops run holds the release's Lease,"
                f" so no operation is running. Helm cannot recover from this by itself (every"
                f" operation fails with 'another operation is in progress'). Nothing was changed."
                f" To recover, set recover_pending (coder_recover_pending: true) and run again:"
                f" it will {fix}. Or by hand: "
                + (f"helm rollback {self.p['name']} {good} -n {self.p['namespace']}" if good else
                   f"helm uninstall {self.p['name']} -n {self.p['namespace']}") + ".")

    def _recover(self, st, history):
        """Put a release stuck pending-* back on its last good revision (or remove it)."""
        good = st["last_good_revision"]
        self._say(f"{self._label()}: recovering from {st['status']} (revision {st['revision']})")
        if good:
            outcome = self._watched(self.helm.rollback_command(
                self.p["name"], self.p["namespace"], good, self.p["rollback_timeout"],
                history_max=self.p["history_max"], force=needs_force(history)),
                f"rollback of {self.p['name']} to revision {good}", self.p["rollback_timeout"],
                fail_fast=True)
            action = f"rolled back to revision {good}"
        else:
            outcome = self._watched(self.helm.uninstall_command(
                self.p["name"], self.p["namespace"], self.p["rollback_timeout"]),
                f"uninstall of {self.p['name']}", self.p["rollback_timeout"], fail_fast=False)
            action = "uninstalled the release (it had no good revision)"
        recovered = {"from_status": st["status"], "from_revision": st["revision"],
                     "action": action, "ok": outcome["ok"]}
        self.result["recovered"] = recovered
        self.result["changed"] = True
        if not outcome["ok"]:
            raise Failure(f"{self._label()} was stuck in {st['status']} and the recovery failed:"
                          f" {outcome['error']}. Nothing else was changed.", reason="recovery_failed",
                          recovered=recovered)
        self._say(f"{self._label()}: recovered, {action}")

    def _cleanup_hooks(self, history):
        """Delete failed hook Jobs that failed revisions after the last good one left behind."""
        if not self.p.get("cleanup_failed_hooks") or not history:
            return []
        names = set()
        for entry in history[-10:]:
            if entry.get("status") == "failed":
                for doc in self.helm.hooks(self.p["name"], self.p["namespace"], int(entry["revision"])):
                    if doc.get("kind") == "Job" and (doc.get("metadata") or {}).get("name"):
                        names.add(doc["metadata"]["name"])
        if not names:
            return []
        if self.check_mode:
            return sorted(names)
        deleted = self.kube.delete_failed_jobs(self.p["namespace"], sorted(names))
        if deleted:
            self._say(f"{self._label()}: removed failed hook Job(s) {', '.join(deleted)} left"
                      f" behind by a failed revision (they would make the next hook fail)")
        return deleted

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

    def _progress_line(self, label, elapsed, timeout, report):
        if report is None:
            return f"{label}: {int(elapsed)} s of {timeout} s, waiting for helm"
        parts = [f"{label}: {int(elapsed)} s of {timeout} s, pods ready {report['ready']}/{report['desired']}"]
        if len(report["workloads"]) > 1:
            parts.append(", ".join(f"{w['kind'].lower()} {w['name']} {w['ready']}/{w['desired']}"
                                   for w in report["workloads"]))
        problems = report["problems"]
        if problems:
            shown = "; ".join(f"{p['pod']}: {p['reason']} ({p['message']})" for p in problems[:3])
            more = f" (+{len(problems) - 3} more)" if len(problems) > 3 else ""
            parts.append(f"not ready: {shown}{more}")
        elif report["desired"] and report["ready"] >= report["desired"]:
            parts.append("all pods ready; helm is finishing")
        else:
            parts.append("waiting for the new pods to be created")
        return "; ".join(parts)

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
        fatal_since = {}
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
                if fail_fast and report is not None and self.p["fail_fast"]:
                    current = {p["pod"]: p for p in report["problems"] if p["fatal"]}
                    for pod in list(fatal_since):
                        if pod not in current:
                            del fatal_since[pod]
                    for pod in current:
                        fatal_since.setdefault(pod, now)
                    stuck = [pod for pod, t in fatal_since.items() if now - t >= grace]
                    if stuck:
                        p = current[stuck[0]]
                        stopped = {"cause": "fail_fast",
                                   "detail": f"pod {p['pod']} is in {p['reason']} ({p['message']})"
                                             f" for {int(now - fatal_since[stuck[0]])} s, past the"
                                             f" fail-fast grace of {grace} s; it will not become"
                                             f" ready by waiting"}
                        self._say(f"{label}: failing fast: {stopped['detail']}")
                        running.stop()
                        break
            if now >= next_progress:
                self._say(self._progress_line(label, now - start, timeout, report))
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

    # -- state: present --------------------------------------------------------------------

    def _chart(self):
        return self.helm.show_chart(self.p["chart_ref"], self.p.get("chart_repo_url"),
                                    self.p.get("chart_version"))

    def _plan(self, history, chart, values):
        """(operation, why, before) for the wanted chart and values."""
        st = analyse(history)
        if not st["exists"]:
            return "install", "the release does not exist", None
        wanted_chart = f"{chart['name']}-{chart['version']}"
        if st["deployed_revision"] is None:
            return ("upgrade", f"the release has no deployed revision (revision {st['revision']} is"
                               f" {st['status']}, e.g. a failed first install kept on purpose)", None)
        deployed = _entry(history, st["deployed_revision"])
        current_values = _canonical(self.helm.values(self.p["name"], self.p["namespace"],
                                                     st["deployed_revision"]))
        before = {"chart": deployed.get("chart"), "values": current_values}
        same = deployed.get("chart") == wanted_chart and current_values == values
        if same and st["revision"] == st["deployed_revision"]:
            return "none", f"revision {st['revision']} already has chart {wanted_chart} and these values", before
        if same:
            return ("upgrade", f"the newest revision {st['revision']} is {st['status']}, so the live"
                               f" objects may not match the deployed revision {st['deployed_revision']};"
                               f" applying it again", before)
        changes = []
        if deployed.get("chart") != wanted_chart:
            changes.append(f"chart {deployed.get('chart')} -> {wanted_chart}")
        if current_values != values:
            changes.append("values changed")
        return "upgrade", ", ".join(changes), before

    def _present(self):
        p = self.p
        values = _canonical(p.get("values"))
        if not self.kube.namespace_exists(p["namespace"]) and not p.get("create_namespace"):
            raise Failure(f"namespace {p['namespace']} does not exist; create it, or set"
                          f" create_namespace", field="namespace", reason="invalid_options")
        chart = self._chart()
        wanted_chart = f"{chart['name']}-{chart['version']}"
        self.result.update(chart=wanted_chart, chart_version=chart["version"],
                           app_version=chart["app_version"])
        history = self._history()
        st = analyse(history)
        self._check_lock()
        if st["pending"]:
            if not p.get("recover_pending"):
                raise Failure(self._pending_guidance(st), reason="pending",
                              history=short_history(history), status=st["status"],
                              revision=st["revision"])
            if self.check_mode:
                self.result.update(changed=True, operation="recover",
                                   msg=f"would recover {self._label()} from {st['status']}")
                return
            self._take_lock("recover")
            self._recover(st, history)
            history = self._history()
            st = analyse(history)

        operation, why, before = self._plan(history, chart, values)
        after = {"chart": wanted_chart, "values": values}
        if self.diff and operation != "none":
            self.result["diff"] = {"before": _dump(before) if before else "",
                                   "after": _dump(after),
                                   "before_header": f"{self._label()} (deployed)",
                                   "after_header": f"{self._label()} (wanted)"}
        self.result.update(operation=operation, reason_for_operation=why)
        if operation == "none":
            self._finish_ok(history, "none")
            return
        if self.check_mode:
            self.result.update(changed=True, would_remove_hook_jobs=self._cleanup_hooks(history),
                               msg=f"would {operation} {self._label()}: {why}")
            return

        self._take_lock(operation)
        removed = self._cleanup_hooks(history)
        if removed:
            self.result["removed_hook_jobs"] = removed
        target = (st["revision"] or 0) + 1
        label = f"helm {operation} of {p['name']} to revision {target} ({wanted_chart})"
        directory, values_file = write_values_file(values)
        try:
            cmd = self.helm.deploy_command(
                operation, p["name"], p["namespace"], p["chart_ref"], values_file, p["timeout"],
                repo_url=p.get("chart_repo_url"), version=p.get("chart_version"),
                history_max=p["history_max"], description=f"coderops.deploy {operation}",
                create_namespace=p.get("create_namespace"))
            outcome = self._watched(cmd, label, p["timeout"], cancellable=True)
        finally:
            remove_values_file(directory)
        self.result["changed"] = True
        if outcome["ok"]:
            self._finish_ok(self._history_after_change(), operation)
            return
        self._handle_failure(operation, target, wanted_chart, outcome, had_good=st["last_good_revision"])

    def _finish_ok(self, history, operation):
        st = analyse(history)
        entry = _entry(history, st["revision"]) or {}
        url = None
        for _attempt in range(10):
            url = self.kube.access_url(self.p["namespace"], self.p["name"])
            if url or operation == "none":
                break
            time.sleep(1)
        chart = entry.get("chart")
        self.result.update(revision=st["revision"], status=st["status"], access_url=url,
                           history=short_history(history))
        if chart:
            self.result["chart"] = chart
        where = f"; Coder is at {url}" if url else "; no ingress host or LoadBalancer address yet"
        verb = {"none": "unchanged at", "install": "installed as", "upgrade": "upgraded to",
                "rollback": "rolled back, now at"}.get(operation, "now at")
        self.result["msg"] = f"{self._label()} {verb} revision {st['revision']} ({chart}, {st['status']}){where}"

    def _diagnostics(self, outcome, new_revision):
        """Pods, Events and hook Jobs for the summary: best effort, an API server that went away
        again must not hide helm's error nor stop the rollback."""
        report = outcome["last_report"]
        try:
            report = self.kube.pods_report(self.p["namespace"], self.p["name"])
        except Exception as exc:  # pylint: disable=broad-exception-caught
            if not isinstance(exc, KubeError) and not unreachable(exc):
                raise
        events = []
        try:
            events = self.kube.recent_events(self.p["namespace"], outcome["started_at"])
        except Exception as exc:  # pylint: disable=broad-exception-caught
            if not isinstance(exc, KubeError) and not unreachable(exc):
                raise
        hook_jobs = []
        if new_revision:
            try:
                hooks = self.helm.hooks(self.p["name"], self.p["namespace"], new_revision)
                names = [d["metadata"]["name"] for d in hooks
                         if d.get("kind") == "Job" and (d.get("metadata") or {}).get("name")]
                hook_jobs = self.kube.failed_jobs_summary(self.p["namespace"], names)
            except Exception as exc:  # pylint: disable=broad-exception-caught
                if not isinstance(exc, (KubeError, HelmError)) and not unreachable(exc):
                    raise
        return report, events, hook_jobs

    def _handle_failure(self, operation, target, wanted_chart, outcome, had_good):
        p = self.p
        # Without the API server helm can neither read the history nor roll back: wait for it.
        api = self._api_trouble(outcome)
        if api and not api["back"]:
            self._api_gone_failure(operation, target, api, had_good, outcome.get("helm_error"))
        history = self._history_after_change()
        st = analyse(history)
        new_rev = st["revision"] if st["revision"] and st["revision"] >= target else None
        report, events, hook_jobs = self._diagnostics(outcome, new_rev)
        cancelled = outcome["stopped"] and outcome["stopped"]["cause"] == "cancelled"
        good = st["last_good_revision"]
        rollback_error = None
        rolled_back_to = None
        removed = False
        again = None
        if good:
            rb = self._rollback_to(good, history, cancelled)
            again = not rb["ok"] and not cancelled and self._api_trouble(rb)
            if again and again["back"]:
                # The API server went away (again) during the rollback and is back: once more.
                self._say(f"rollback of {p['name']} to revision {good}: trying again now that the"
                          f" API server answers")
                rb = self._rollback_to(good, self._history_after_change(), cancelled)
            if rb["ok"]:
                rolled_back_to = good
            else:
                rollback_error = rb["error"]
        elif not st["exists"]:
            removed = True  # helm recorded no release at all: nothing to clean up
        elif not p.get("keep_failed_install"):
            un = self._watched(self.helm.uninstall_command(p["name"], p["namespace"],
                                                           p["rollback_timeout"], wait=not cancelled),
                               f"uninstall of the failed install of {p['name']}", p["rollback_timeout"],
                               fail_fast=False)
            if un["ok"]:
                removed = True
            else:
                rollback_error = un["error"]
        if good and rollback_error and again and not again["back"]:
            # Gone again during the rollback, and not back within the wait: say what to run.
            self._api_gone_failure(operation, target, again, good, outcome.get("helm_error"))
        final = self._history_after_change()
        fst = analyse(final)
        cause = self._cause(outcome)
        failure = {
            "operation": operation, "cause": cause, "helm_error": outcome.get("helm_error"),
            "stopped": outcome["stopped"]["detail"] if outcome["stopped"] else None,
            "elapsed_s": outcome["elapsed_s"], "timeout": p["timeout"],
            "failed_revision": new_rev, "rolled_back_to": rolled_back_to,
            "rollback_error": rollback_error, "uninstalled": removed,
            "pods": (report or {}).get("problems", []),
            "pods_ready": f"{(report or {}).get('ready', 0)}/{(report or {}).get('desired', 0)}",
            "events": events, "hook_jobs": hook_jobs, "api_server": api,
        }
        summary = self._summary(operation, target, wanted_chart, failure, fst, good)
        self.result.update(failure=failure, rolled_back_to=rolled_back_to, failed_revision=new_rev,
                           revision=fst["revision"], status=fst["status"],
                           history=short_history(final), summary=summary)
        self._fail(summary, reason=cause)

    def _rollback_to(self, good, history, cancelled):
        p = self.p
        return self._watched(self.helm.rollback_command(p["name"], p["namespace"], good,
                                                        p["rollback_timeout"], wait=not cancelled,
                                                        history_max=p["history_max"],
                                                        force=needs_force(history)),
                             f"rollback of {p['name']} to revision {good}", p["rollback_timeout"],
                             fail_fast=not cancelled)

    @staticmethod
    def _cause(outcome):
        stopped = outcome["stopped"]
        if stopped:
            return stopped["cause"]
        err = (outcome["error"] or "").lower()
        if "another operation" in err:
            return "in_progress"
        if unreachable_text(err):
            return "api_unreachable"
        if "hook" in err:
            return "hook_failed"
        if "immutable" in err:
            return "immutable_field"
        if ("context deadline exceeded" in err or "timed out" in err or "timeout" in err
                or "not ready. status:" in err):
            return "timeout"
        if "is invalid" in err or "admission" in err or "denied" in err or "forbidden" in err:
            return "rejected"
        return "helm_error"

    def _summary(self, operation, target, wanted_chart, f, fst, good):
        name = self.p["name"]
        lines = [f"{self._label()}: helm {operation} to revision {target} ({wanted_chart}) FAILED"
                 f" ({f['cause']}) after {f['elapsed_s']} s."]
        if f["cause"] == "fail_fast":
            lines.append(f"cause: {f['stopped']}; helm was stopped instead of waiting out the"
                         f" timeout of {f['timeout']} s.")
        elif f["cause"] == "cancelled":
            lines.append(f"cause: the run was cancelled ({f['stopped']}); helm was stopped.")
        elif f["cause"] == "timeout":
            lines.append(f"cause: the release was not ready within the timeout of {f['timeout']} s.")
        api = f.get("api_server")
        if api:
            line = f"the API server at {api['url']} went away during the {operation} ({api['error']})"
            if api.get("away_s"):
                line += f" for {api['away_s']} s"
                if api.get("back_during_helm"):
                    line += " and came back while helm was still running"
            if api["waited_s"] >= 1 or not api.get("back_during_helm"):
                line += f"; waited {api['waited_s']} s for it to come back"
            if f["rolled_back_to"]:
                line += f"; rolled back to revision {f['rolled_back_to']}"
            lines.append(line + ".")
        lines.append(f"helm said: {f['helm_error']}")
        pods = f["pods"]
        if pods:
            shown = "; ".join(f"{p['pod']}: {p['reason']} ({p['message']})" for p in pods[:5])
            more = f" (+{len(pods) - 5} more)" if len(pods) > 5 else ""
            lines.append(f"pods not ready ({f['pods_ready']} ready): {shown}{more}")
        else:
            lines.append(f"pods: {f['pods_ready']} ready, none reported a problem")
        for job in f["hook_jobs"]:
            lines.append(f"hook Job {job['job']}: {job['reason']} {job['message']}".rstrip())
        if f["events"]:
            lines.append("recent events: " + "; ".join(
                f"{e['type']} {e['reason']} {e['object']}: {e['message']}" for e in f["events"][-8:]))
        else:
            lines.append("recent events: none")
        if f["rolled_back_to"]:
            lines.append(f"rolled back to revision {f['rolled_back_to']}, the last good one: the"
                         f" release is now revision {fst['revision']} ({fst['status']}), with the"
                         f" chart and values of revision {f['rolled_back_to']}.")
        elif f["rollback_error"] and good:
            lines.append(f"ROLLBACK FAILED as well: the rollback to revision {good} said:"
                         f" {f['rollback_error']}. The release is at revision {fst['revision']}"
                         f" ({fst['status']}). Fix the cause, then run playbooks/rollback_coder.yml"
                         f" with coder_rollback_revision: {good} (or: helm rollback {name} {good}"
                         f" -n {self.p['namespace']}).")
        elif f["uninstalled"]:
            lines.append("this was the first install and there is no good revision: the failed"
                         " release was uninstalled, so the next run starts clean.")
        elif f["rollback_error"]:
            lines.append(f"this was the first install; removing the failed release failed too:"
                         f" {f['rollback_error']}. The next run upgrades it (it is not 'absent').")
        else:
            lines.append(f"this was the first install and there is no good revision; the failed"
                         f" release is kept (keep_failed_install) at revision {fst['revision']}"
                         f" ({fst['status']}); the next run upgrades it.")
        return "\n".join(lines)

    # -- state: absent ---------------------------------------------------------------------

    def _absent(self):
        history = self._history()
        st = analyse(history)
        if not st["exists"]:
            self.result.update(operation="none", msg=f"{self._label()} does not exist")
            return
        self._check_lock()
        if self.diff:
            before = {}
            if st["deployed_revision"]:
                before = {"chart": _entry(history, st["deployed_revision"]).get("chart"),
                          "values": _canonical(self.helm.values(self.p["name"], self.p["namespace"],
                                                                st["deployed_revision"]))}
            self.result["diff"] = {"before": _dump(before), "after": "",
                                   "before_header": self._label(), "after_header": "(absent)"}
        self.result.update(operation="uninstall", changed=True)
        if self.check_mode:
            self.result["msg"] = f"would uninstall {self._label()} (revision {st['revision']})"
            return
        self._take_lock("uninstall")
        outcome = self._watched(self.helm.uninstall_command(self.p["name"], self.p["namespace"],
                                                            self.p["timeout"]),
                                f"uninstall of {self.p['name']}", self.p["timeout"], fail_fast=False)
        if not outcome["ok"]:
            raise Failure(f"uninstalling {self._label()} failed: {outcome['error']}", reason="helm_error")
        self.result["msg"] = f"{self._label()} uninstalled (it was at revision {st['revision']})"

    # -- state: rolled_back ----------------------------------------------------------------

    def _rolled_back(self):
        p = self.p
        history = self._history()
        st = analyse(history)
        if not st["exists"]:
            raise Failure(f"{self._label()} does not exist; there is nothing to roll back",
                          reason="absent", field="name")
        self._check_lock()
        wanted = p.get("revision")
        if wanted is None:
            if st["status"] == "deployed":
                self.result.update(operation="none", history=short_history(history))
                self._finish_ok(history, "none")
                self.result["msg"] = (f"{self._label()} is deployed at revision {st['revision']}, its"
                                      f" newest; nothing to roll back. To go back to an older"
                                      f" revision, set revision (coder_rollback_revision).")
                return
            wanted = st["last_good_revision"]
            if wanted is None:
                raise Failure(f"{self._label()} has no good (deployed or superseded) revision to roll"
                              f" back to; uninstall it (playbooks/uninstall_coder.yml) and install"
                              f" again", reason="no_good_revision", history=short_history(history))
        entry = _entry(history, wanted)
        if entry is None:
            raise Failure(f"revision {wanted} of {self._label()} does not exist (it has"
                          f" {', '.join(str(r['revision']) for r in history[-10:])}); set revision"
                          f" to one of them", reason="invalid_options", field="revision")
        if not is_good(entry):
            raise Failure(f"revision {wanted} of {self._label()} is not a good revision (status"
                          f" {entry.get('status')}: {entry.get('description')}); roll back to one"
                          f" that was deployed successfully", field="revision", reason="invalid_options")
        target_values = _canonical(self.helm.values(p["name"], p["namespace"], wanted))
        if st["status"] == "deployed":
            current_values = _canonical(self.helm.values(p["name"], p["namespace"], st["revision"]))
            if (int(wanted) == st["revision"] or
                    (current_values == target_values and
                     _entry(history, st["revision"]).get("chart") == entry.get("chart"))):
                self.result.update(operation="none")
                self._finish_ok(history, "none")
                self.result["msg"] = (f"{self._label()} already runs the chart and values of"
                                      f" revision {wanted} (revision {st['revision']}, deployed)")
                return
        else:
            current_values = None
        if self.diff:
            self.result["diff"] = {
                "before": _dump({"chart": _entry(history, st["revision"]).get("chart"),
                                 "values": current_values}),
                "after": _dump({"chart": entry.get("chart"), "values": target_values}),
                "before_header": f"{self._label()} (revision {st['revision']}, {st['status']})",
                "after_header": f"revision {wanted}"}
        self.result.update(operation="rollback", changed=True, rolled_back_to=int(wanted))
        if self.check_mode:
            self.result["msg"] = f"would roll back {self._label()} to revision {wanted}"
            return
        self._take_lock("rollback")
        outcome = self._watched(self.helm.rollback_command(p["name"], p["namespace"], wanted,
                                                           p["rollback_timeout"],
                                                           history_max=p["history_max"],
                                                           force=needs_force(history)),
                                f"rollback of {p['name']} to revision {wanted}", p["rollback_timeout"])
        final = self._history_after_change()
        if not outcome["ok"]:
            fst = analyse(final)
            report, events, dummy = self._diagnostics(outcome, None)
            pods = "; ".join(f"{x['pod']}: {x['reason']} ({x['message']})"
                             for x in (report or {}).get("problems", [])[:5])
            ev = "; ".join(f"{e['type']} {e['reason']} {e['object']}: {e['message']}" for e in events[-8:])
            raise Failure(f"{self._label()}: the rollback to revision {wanted} FAILED: {outcome['error']}\n"
                          f"pods not ready: {pods or 'none reported'}\nrecent events: {ev or 'none'}\n"
                          f"The release is at revision {fst['revision']} ({fst['status']}).",
                          reason=self._cause(outcome),
                          history=short_history(final), revision=fst["revision"], status=fst["status"])
        self._finish_ok(final, "rollback")


def release_info(params, env=None):
    """What coder_helm_release_info returns (raises HelmError, KubeError, InputError)."""
    for field in ("name", "namespace"):
        if not (params.get(field) or "").strip():
            raise InputError(field, f"{field} is empty; set it")
    auth = KubeAuth(params, env)
    helm = Helm(params["helm_binary"], env=env, auth=auth)
    kube = Kube(auth=auth)
    out = {"helm": {"path": helm.binary, "version": helm.version, "major": helm.major},
           "kubernetes": {"server_version": kube.server_version(),
                          "namespace_exists": kube.namespace_exists(params["namespace"])}}
    if params.get("chart_ref"):
        out["chart"] = helm.show_chart(params["chart_ref"], params.get("chart_repo_url"),
                                       params.get("chart_version"))
    else:
        out["chart"] = None
    history = helm.history(params["name"], params["namespace"]) if out["kubernetes"]["namespace_exists"] else []
    release = analyse(history)
    release["history"] = short_history(history)
    out["release"] = release
    lock = kube.read_lock(params["namespace"], params["name"]) if out["kubernetes"]["namespace_exists"] else None
    out["lock"] = {"held": bool(lock and not lock["expired"]), **(lock or {})}
    out["lock"].pop("resource_version", None)
    return out
