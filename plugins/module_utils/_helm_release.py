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

The parts: _release_params.py (the options and their checks), _release_history.py (what helm's
history says), _release_watch.py (helm run and watched, the API server going away),
_release_text.py (progress, summaries, guidance); this file holds the states and their order.
"""

from __future__ import annotations

import os
import time

from ansible_collections.coderops.deploy.plugins.module_utils import _health_gate as health_gate
from ansible_collections.coderops.deploy.plugins.module_utils._helm_cli import (
    Helm,
    HelmError,
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
    describe_unreachable,
    unreachable,
)
from ansible_collections.coderops.deploy.plugins.module_utils._release_history import (
    analyse,
    canonical,
    dump,
    is_good,
    last_good,
    needs_force,
    revision_entry,
    short_history,
)
from ansible_collections.coderops.deploy.plugins.module_utils._release_params import check_params
from ansible_collections.coderops.deploy.plugins.module_utils._release_text import (
    cause,
    failure_summary,
    format_events,
    format_pods,
    pending_guidance,
    telling_line,
)
from ansible_collections.coderops.deploy.plugins.module_utils._release_watch import (
    API_POLL_SECONDS,
    Cancel,
    Failure,
    Watcher,
)
from ansible_collections.coderops.deploy.plugins.module_utils._upgrade_path import running_coder_version

# Deleting the Lease at the end is retried this long while the API server does not answer.
LOCK_RELEASE_WAIT = 60
# The failure summary quotes the logs of this many failing pods (one API call each).
LOG_PODS = 2


class ReleaseManager(Watcher):
    """One run of coder_helm_release: check, lock, plan, run helm (Watcher), recover, report."""

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
            # The client lets connection errors escape as socket and http.client exceptions;
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

    # -- shared steps ----------------------------------------------------------------------

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
        deployed = revision_entry(history, st["deployed_revision"])
        current_values = canonical(self.helm.values(self.p["name"], self.p["namespace"],
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
        values = canonical(p.get("values"))
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
                raise Failure(pending_guidance(self._label(), p["name"], p["namespace"], st), reason="pending",
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
            self.result["diff"] = {"before": dump(before) if before else "",
                                   "after": dump(after),
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
            history = self._history_after_change()
            gate = self._health_gate(history, label)
            if gate is None or gate["ok"]:
                self._finish_ok(history, operation)
                return
            # A failed gate is a failed upgrade: the same rollback, the same summary.
            outcome = dict(outcome, ok=False, stopped={"cause": "health_gate", "detail": gate["error"]},
                           helm_error="none: helm said the release is ready",
                           error=f"Coder's health check failed: {gate['error']}")
        self._handle_failure(operation, target, wanted_chart, outcome, had_good=st["last_good_revision"])

    def _health_gate(self, history, label, restored=False):
        """Coder's own answer through the service proxy (None when no health_check_service):
        healthy at the newest revision's version, its chart appVersion (health_check_version
        instead for what this run deployed; a rollback brings back what the old revision ran)."""
        p = self.p
        if not p.get("health_check_service"):
            return None
        entry = revision_entry(history, analyse(history)["revision"]) or {}
        version = (None if restored else p.get("health_check_version")) or entry.get("app_version")
        self._say(f"{label}: asking Coder at {p['health_check_service']} for /healthz and version {version}")
        gate = health_gate.check(self.kube.core, p["namespace"], p["health_check_service"], version,
                                 p["health_check_timeout"], cancel=self.cancel)
        self.result["health"] = gate
        self._say(f"{label}: health check {'passed' if gate['ok'] else 'FAILED'} after {gate['elapsed_s']} s"
                  + ("" if gate["ok"] else f" ({gate['error']})"))
        return gate

    def _finish_ok(self, history, operation):
        st = analyse(history)
        newest = revision_entry(history, st["revision"]) or {}
        url = None
        for _attempt in range(10):
            url = self.kube.access_url(self.p["namespace"], self.p["name"])
            if url or operation == "none":
                break
            time.sleep(1)
        chart = newest.get("chart")
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
            # What the failing container said last (read now: the rollback replaces its pod).
            for problem in [p for p in report["problems"] if p.get("container")][:LOG_PODS]:
                problem["log"] = telling_line(self.kube.log_tail(
                    self.p["namespace"], problem["pod"], problem["container"], problem["previous_log"]))
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
        # Never this run's own revision: helm may call it deployed when only the health gate failed.
        good = last_good([r for r in history if int(r["revision"]) < target])
        rollback_error = None
        rolled_back_to = None
        removed = False
        again = None
        left = bool(good) and not p.get("rollback", True)
        if left:
            pass  # rollback: false - the caller puts the database back first, then rolls back
        elif good:
            rb = self._rollback_to(good, history, cancelled)
            again = not rb["ok"] and not cancelled and self._api_trouble(rb)
            if again and again["back"]:
                # The API server went away (again) during the rollback and is back: once more.
                self._say(f"rollback of {p['name']} to revision {good}: trying again now that the"
                          f" API server answers")
                rb = self._rollback_to(good, self._history_after_change(), cancelled)
            if rb["ok"]:
                rolled_back_to = good
                health = self._health_gate(self._history_after_change(),
                                           f"rollback of {p['name']} to revision {good}", restored=True)
                if health is not None:
                    self.result["health_after_rollback"] = health
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
        reason = cause(outcome)
        failure = {
            "operation": operation, "cause": reason, "helm_error": outcome.get("helm_error"),
            "stopped": outcome["stopped"]["detail"] if outcome["stopped"] else None,
            "elapsed_s": outcome["elapsed_s"], "timeout": p["timeout"],
            "failed_revision": new_rev, "rolled_back_to": rolled_back_to,
            "rollback_error": rollback_error, "uninstalled": removed,
            "pods": (report or {}).get("problems", []),
            "pods_ready": f"{(report or {}).get('ready', 0)}/{(report or {}).get('desired', 0)}",
            "events": events, "hook_jobs": hook_jobs, "api_server": api,
            "health_after_rollback": self.result.get("health_after_rollback"),
            "rollback_left": left, "last_good_revision": good,
        }
        summary = failure_summary(self._label(), p["name"], p["namespace"], operation, target,
                                  wanted_chart, failure, fst, good)
        self.result.update(failure=failure, rolled_back_to=rolled_back_to, failed_revision=new_rev,
                           revision=fst["revision"], status=fst["status"],
                           history=short_history(final), summary=summary)
        self._fail(summary, reason=reason)

    def _rollback_to(self, good, history, cancelled):
        p = self.p
        return self._watched(self.helm.rollback_command(p["name"], p["namespace"], good,
                                                        p["rollback_timeout"], wait=not cancelled,
                                                        history_max=p["history_max"],
                                                        force=needs_force(history)),
                             f"rollback of {p['name']} to revision {good}", p["rollback_timeout"],
                             fail_fast=not cancelled)

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
                before = {"chart": revision_entry(history, st["deployed_revision"]).get("chart"),
                          "values": canonical(self.helm.values(self.p["name"], self.p["namespace"],
                                                               st["deployed_revision"]))}
            self.result["diff"] = {"before": dump(before), "after": "",
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
        target = revision_entry(history, wanted)
        if target is None:
            raise Failure(f"revision {wanted} of {self._label()} does not exist (it has"
                          f" {', '.join(str(r['revision']) for r in history[-10:])}); set revision"
                          f" to one of them", reason="invalid_options", field="revision")
        if not is_good(target):
            raise Failure(f"revision {wanted} of {self._label()} is not a good revision (status"
                          f" {target.get('status')}: {target.get('description')}); roll back to one"
                          f" that was deployed successfully", field="revision", reason="invalid_options")
        target_values = canonical(self.helm.values(p["name"], p["namespace"], wanted))
        if st["status"] == "deployed":
            current_values = canonical(self.helm.values(p["name"], p["namespace"], st["revision"]))
            if (int(wanted) == st["revision"] or
                    (current_values == target_values and
                     revision_entry(history, st["revision"]).get("chart") == target.get("chart"))):
                self.result.update(operation="none")
                self._finish_ok(history, "none")
                self.result["msg"] = (f"{self._label()} already runs the chart and values of"
                                      f" revision {wanted} (revision {st['revision']}, deployed)")
                return
        else:
            current_values = None
        if self.diff:
            self.result["diff"] = {
                "before": dump({"chart": revision_entry(history, st["revision"]).get("chart"),
                                "values": current_values}),
                "after": dump({"chart": target.get("chart"), "values": target_values}),
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
            pods = format_pods((report or {}).get("problems", []), 5)
            ev = format_events(events)
            raise Failure(f"{self._label()}: the rollback to revision {wanted} FAILED: {outcome['error']}\n"
                          f"pods not ready: {pods or 'none reported'}\nrecent events: {ev or 'none'}\n"
                          f"The release is at revision {fst['revision']} ({fst['status']}).",
                          reason=cause(outcome),
                          history=short_history(final), revision=fst["revision"], status=fst["status"])
        gate = self._health_gate(final, f"rollback of {p['name']} to revision {wanted}", restored=True)
        if gate is not None and not gate["ok"]:
            fst = analyse(final)
            raise Failure(f"{self._label()}: rolled back to revision {wanted}, but Coder's health check"
                          f" failed: {gate['error']}. The release is at revision {fst['revision']}"
                          f" ({fst['status']}); if Coder's schema is newer than this version knows,"
                          f" restore the database backup taken before the upgrade (docs/deploy.md).",
                          reason="health_gate", history=short_history(final), revision=fst["revision"],
                          status=fst["status"], health=gate)
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
    images = kube.container_images(params["namespace"], params["name"]) if release["exists"] else {}
    release["running_coder_version"] = running_coder_version(images, release["deployed_app_version"])
    out["release"] = release
    lock = kube.read_lock(params["namespace"], params["name"]) if out["kubernetes"]["namespace_exists"] else None
    out["lock"] = {"held": bool(lock and not lock["expired"]), **(lock or {})}
    out["lock"].pop("resource_version", None)
    return out
