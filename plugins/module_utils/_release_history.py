# Copyright (c) 2025, coderops maintainers
# GNU General Public License v3.0+ (see LICENSE or https://www.gnu.org/licenses/gpl-3.0.txt)
# SPDX-License-Identifier: GPL-3.0-or-later

# Note that this module util is **PRIVATE** to the collection. It can have breaking changes at any time.
# Do not use this from other collections or standalone plugins/modules!

"""What a release's `helm history -o json` says: its state, the last good revision (where a
rollback goes), whether a rollback must replace the objects; and values in the form helm stores
them, for comparing."""

from __future__ import annotations

import json
import re

from ansible_collections.coderops.deploy.plugins.module_utils._helm_cli import GOOD_STATUSES, PENDING_STATUSES


def canonical(values):
    """Values as helm stores them (JSON types), for comparing."""
    return json.loads(json.dumps(values or {}, sort_keys=True))


def dump(obj):
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
                "deployed_revision": None, "deployed_app_version": None, "last_good_revision": None}
    latest = history[-1]
    deployed = [r for r in history if r.get("status") == "deployed"]
    return {
        "exists": True,
        "status": latest.get("status"),
        "revision": int(latest["revision"]),
        "chart": latest.get("chart"),
        "pending": latest.get("status") in PENDING_STATUSES,
        "deployed_revision": int(deployed[-1]["revision"]) if deployed else None,
        # The Coder version running: the deployed revision's chart appVersion.
        "deployed_app_version": (deployed[-1].get("app_version") or None) if deployed else None,
        "last_good_revision": last_good(history),
    }


def revision_entry(history, revision):
    """The history entry of one revision, or None."""
    return next((r for r in history if int(r["revision"]) == int(revision)), None)


def short_history(history, count=10):
    return [{"revision": int(r["revision"]), "status": r.get("status"), "chart": r.get("chart"),
             "app_version": r.get("app_version") or None, "updated": r.get("updated"),
             "description": (r.get("description") or "")[:300]}
            for r in history[-count:]]
