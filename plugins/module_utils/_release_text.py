# Copyright (c) 2025, coderops maintainers
# GNU General Public License v3.0+ (see LICENSE or https://www.gnu.org/licenses/gpl-3.0.txt)
# SPDX-License-Identifier: GPL-3.0-or-later

# Note that this module util is **PRIVATE** to the collection. It can have breaking changes at any time.
# Do not use this from other collections or standalone plugins/modules!

"""What coder_helm_release says: progress lines, the failure summary, the guidance for a stuck
release, and what helm's error means (the result's `reason`). Text only: no helm, no cluster."""

from __future__ import annotations

import re

from ansible_collections.coderops.deploy.plugins.module_utils._kube import unreachable_text

# What may carry a credential in a log line. Coder's driver (lib/pq) prints a connection URL it
# cannot parse whole, password included, and the module does not know the password to look for:
# so blank the userinfo of any URL and the value of any password-like key.
_URL_USERINFO = re.compile(r"(://[^/\s:@]*):.*@")  # to the last @: a password may hold @ and spaces
_SECRET_KEY_VALUE = re.compile(r"((?:password|passwd|pwd|secret|token)\w*\s*[=:]\s*)"
                               r"(\"(?:[^\"\\]|\\.)*\"|'[^']*'|\S+)", re.IGNORECASE)
_ERROR_WORDS = re.compile(r"\b(fata|fatal|erro|error|panic|refus\w*|fail\w*)\b", re.IGNORECASE)
LOG_LINE_LIMIT = 300


def scrub(line):
    """`line` with URL passwords and password-like values replaced by ***."""
    return _SECRET_KEY_VALUE.sub(r"\1***", _URL_USERINFO.sub(r"\1:***@", line))


def telling_line(log):
    """The line of a container's log tail that says why it stopped: its last error line, else its
    last line; scrubbed and shortened. None for an empty or unreadable log."""
    lines = [line.strip() for line in (log or "").splitlines() if line.strip()]
    if not lines:
        return None
    errors = [line for line in lines if _ERROR_WORDS.search(line)]
    line = scrub((errors or lines)[-1])
    return line if len(line) <= LOG_LINE_LIMIT else line[:LOG_LINE_LIMIT - 3] + "..."


def format_pods(problems, limit):
    """`pod: reason (message)` for the first `limit` pods that are not ready, and how many more;
    with the container's telling log line where the summary fetched one."""
    shown = "; ".join(f"{p['pod']}: {p['reason']} ({p['message']})"
                      + (f' log: "{p["log"]}"' if p.get("log") else "") for p in problems[:limit])
    more = f" (+{len(problems) - limit} more)" if len(problems) > limit else ""
    return shown + more


def format_events(events, limit=8):
    """The newest `limit` Events, oldest first."""
    return "; ".join(f"{e['type']} {e['reason']} {e['object']}: {e['message']}" for e in events[-limit:])


def progress_line(label, elapsed, timeout, report):
    """One progress line while helm waits; `report` is _kube.Kube.pods_report's (or None)."""
    if report is None:
        return f"{label}: {int(elapsed)} s of {timeout} s, waiting for helm"
    parts = [f"{label}: {int(elapsed)} s of {timeout} s, pods ready {report['ready']}/{report['desired']}"]
    if len(report["workloads"]) > 1:
        parts.append(", ".join(f"{w['kind'].lower()} {w['name']} {w['ready']}/{w['desired']}"
                               for w in report["workloads"]))
    if report["problems"]:
        parts.append(f"not ready: {format_pods(report['problems'], 3)}")
    elif report["desired"] and report["ready"] >= report["desired"]:
        parts.append("all pods ready; helm is finishing")
    else:
        parts.append("waiting for the new pods to be created")
    return "; ".join(parts)


def cause(outcome):
    """The failure's `reason`, from how helm stopped and what it said."""
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


def pending_guidance(label, name, namespace, st):
    """Why a release stuck in pending-* stops the run, and the two ways out."""
    good = st["last_good_revision"]
    fix = (f"roll back to revision {good}, the last good one" if good else
           "uninstall the release (it has no good revision) and install it again")
    return (f"{label} is stuck in {st['status']} (revision {st['revision']}): a helm"
            f" process was killed mid-operation and no coderops run holds the release's Lease,"
            f" so no operation is running. Helm cannot recover from this by itself (every"
            f" operation fails with 'another operation is in progress'). Nothing was changed."
            f" To recover, set recover_pending (coder_recover_pending: true) and run again:"
            f" it will {fix}. Or by hand: "
            + (f"helm rollback {name} {good} -n {namespace}" if good else
               f"helm uninstall {name} -n {namespace}") + ".")


def _api_line(operation, f):
    api = f["api_server"]
    line = f"the API server at {api['url']} went away during the {operation} ({api['error']})"
    if api.get("away_s"):
        line += f" for {api['away_s']} s"
        if api.get("back_during_helm"):
            line += " and came back while helm was still running"
    if api["waited_s"] >= 1 or not api.get("back_during_helm"):
        line += f"; waited {api['waited_s']} s for it to come back"
    if f["rolled_back_to"]:
        line += f"; rolled back to revision {f['rolled_back_to']}"
    return line + "."


def _ending(name, namespace, f, fst, good):
    """Where the release is now: rolled back, rollback failed, uninstalled or kept."""
    if f["rolled_back_to"]:
        return (f"rolled back to revision {f['rolled_back_to']}, the last good one: the"
                f" release is now revision {fst['revision']} ({fst['status']}), with the"
                f" chart and values of revision {f['rolled_back_to']}.")
    if f.get("rollback_left") and good:
        return (f"not rolled back (rollback: false): the release stays at revision {fst['revision']}"
                f" ({fst['status']}); revision {good} is the last good one, for the caller to"
                f" roll back to once the database is as that revision needs it.")
    if f["rollback_error"] and good:
        return (f"ROLLBACK FAILED as well: the rollback to revision {good} said:"
                f" {f['rollback_error']}. The release is at revision {fst['revision']}"
                f" ({fst['status']}). Fix the cause, then run playbooks/rollback_coder.yml"
                f" with coder_rollback_revision: {good} (or: helm rollback {name} {good}"
                f" -n {namespace}).")
    if f["uninstalled"]:
        return ("this was the first install and there is no good revision: the failed"
                " release was uninstalled, so the next run starts clean.")
    if f["rollback_error"]:
        return (f"this was the first install; removing the failed release failed too:"
                f" {f['rollback_error']}. The next run upgrades it (it is not 'absent').")
    return (f"this was the first install and there is no good revision; the failed"
            f" release is kept (keep_failed_install) at revision {fst['revision']}"
            f" ({fst['status']}); the next run upgrades it.")


def failure_summary(label, name, namespace, operation, target, wanted_chart, f, fst, good):
    """The summary of a failed install or upgrade: cause, helm's error, pods, hook Jobs, Events,
    and where the release is now. `f` is the result's `failure`, `fst` the final state."""
    lines = [f"{label}: helm {operation} to revision {target} ({wanted_chart}) FAILED"
             f" ({f['cause']}) after {f['elapsed_s']} s."]
    if f["cause"] == "fail_fast":
        lines.append(f"cause: {f['stopped']}; helm was stopped instead of waiting out the"
                     f" timeout of {f['timeout']} s.")
    elif f["cause"] == "cancelled":
        lines.append(f"cause: the run was cancelled ({f['stopped']}); helm was stopped.")
    elif f["cause"] == "health_gate":
        lines.append(f"cause: helm said the release is ready, but Coder's health check (through the API"
                     f" server's service proxy) failed: {f['stopped']}.")
    elif f["cause"] == "timeout":
        lines.append(f"cause: the release was not ready within the timeout of {f['timeout']} s.")
    if f.get("api_server"):
        lines.append(_api_line(operation, f))
    lines.append(f"helm said: {f['helm_error']}")
    if f["pods"]:
        lines.append(f"pods not ready ({f['pods_ready']} ready): {format_pods(f['pods'], 5)}")
    else:
        lines.append(f"pods: {f['pods_ready']} ready, none reported a problem")
    for job in f["hook_jobs"]:
        lines.append(f"hook Job {job['job']}: {job['reason']} {job['message']}".rstrip())
    lines.append("recent events: " + (format_events(f["events"]) if f["events"] else "none"))
    health = f.get("health_after_rollback")
    if health:
        lines.append(f"after the rollback Coder answers {health['version']} at {health['service']}"
                     if health["ok"] else
                     f"after the rollback Coder is NOT healthy ({health['error']}): if the failed"
                     f" version migrated the database, restore the backup taken before the upgrade"
                     f" (docs/deploy.md).")
    lines.append(_ending(name, namespace, f, fst, good))
    return "\n".join(lines)
