# Copyright (c) 2026, coderops maintainers
# GNU General Public License v3.0+ (see LICENSE or https://www.gnu.org/licenses/gpl-3.0.txt)
# SPDX-License-Identifier: GPL-3.0-or-later

# Note that this module util is **PRIVATE** to the collection. It can have breaking changes at any time.
# Do not use this from other collections or standalone plugins/modules!

"""Which Coder upgrades to refuse before anything changes (chart contract, "Coder and its
database"): a downgrade (an older Coder does not start on the schema a newer one migrated), and
an upgrade that skips a stepping stone. The stepping stones are data, kept in
roles/preflight/vars/stepping_stones.yml with their sources; this file only applies them.

A stone is a dict:

* ``from`` and ``to``: version ranges, comma-separated comparisons (``>=2.26.0,<2.26.6``); an
  upgrade from a running version in ``from`` to a target in ``to`` must go through ``via`` first;
* or ``step: minor``: each minor version in the range ``from`` is a stone (upgrade 1.30 to 1.31,
  then to 1.32), for a line whose vendor asks for one release at a time;
* ``generation`` (v1 or v2, optional) limits it to that chart generation, ``reason`` and
  ``source`` say why and where that is written.
"""

from __future__ import annotations

import operator
import re

from ansible_collections.coderops.deploy.plugins.module_utils._coder_version import parse_version, show
from ansible_collections.coderops.deploy.plugins.module_utils._inputs import InputError

# Coder's container in its Deployment: v2 `coder`, v1 `coderd` (chart contract).
CODER_CONTAINERS = ("coder", "coderd")

_OPS = {">=": operator.ge, "<=": operator.le, ">": operator.gt, "<": operator.lt,
        "==": operator.eq, "!=": operator.ne}
_CLAUSE = re.compile(r"^\s*(>=|<=|==|!=|>|<)\s*(\S+)\s*$")


class StoneError(ValueError):
    """A stepping stone that cannot be read; the message names it."""


def _version(text):
    """'2.30.1' or 'v2.30.1' as a tuple, or None when it is not a version (a tag such as latest)."""
    try:
        return parse_version("version", text)
    except InputError:  # not a version
        return None


def running_coder_version(images, app_version=None):
    """The version of the Coder that runs, from its container's image tag; without that container
    (the Deployment is gone), the deployed revision's appVersion. None when unknown (a digest, a
    tag that is no version such as latest)."""
    name = next((n for n in CODER_CONTAINERS if images.get(n)), None)
    if name is None:
        version = _version(app_version) if app_version else None
        return show(version) if version else None
    image = images[name]
    last = image.rsplit("/", 1)[-1]
    if "@" in image or ":" not in last:
        return None
    version = _version(last.rsplit(":", 1)[1])
    return show(version) if version else None


def in_range(version, spec, where="stepping stone"):
    """Whether a version tuple satisfies every comparison of a range such as '>=2.26.0,<2.26.6'."""
    for clause in str(spec).split(","):
        match = _CLAUSE.match(clause)
        bound = _version(match.group(2)) if match else None
        if bound is None:
            raise StoneError(f"{where}: {spec!r} is not a version range (such as >=2.26.0,<2.26.6)")
        if not _OPS[match.group(1)](version, bound):
            return False
    return True


def _skipped(running, target, stone, where):
    """The version to go through first, when this stone applies; else None."""
    if stone.get("step") == "minor":
        if not in_range(running, stone.get("from", ">=0.0.0"), where) or target[0] != running[0]:
            return None
        if target[1] > running[1] + 1:
            return f"the newest {running[0]}.{running[1] + 1}.x"
        return None
    for key in ("from", "to", "via"):
        if not stone.get(key):
            raise StoneError(f"{where} has no {key!r} (each stone has from, to and via, or step: minor)")
    via = _version(stone["via"])
    if via is None:
        raise StoneError(f"{where}: via {stone['via']!r} is not a version")
    if in_range(running, stone["from"], where) and in_range(target, stone["to"], where) and target > via:
        return show(via)
    return None


def refusal(running, target, generation, stones):
    """Why an upgrade from `running` to `target` (version texts) must not happen, or ''.

    Unknown versions (a fresh install, an image tag that is no version) are not refused: there
    is nothing to compare.
    """
    have, want = _version(running), _version(target)
    if not have or not want or have == want:
        return ""
    if want < have:
        return (f"This run would deploy Coder {show(want)}, older than the Coder {show(have)} that runs now."
                " Coder's migrations only go forward: an older Coder does not start on the schema a newer one"
                f" migrated. Set coder_chart_version (or the image tag in coder_values_overrides) to {show(have)}"
                " or newer. To go back to an older Coder, run playbooks/rollback_coder.yml: it restores the"
                " backup taken before the upgrade first (docs/deploy.md).")
    for index, stone in enumerate(stones or []):
        where = f"stepping stone {index + 1} ({stone.get('via') or stone.get('step') or '?'})"
        if stone.get("generation") not in (None, "", generation):
            continue
        via = _skipped(have, want, stone, where)
        if via:
            because = f" ({stone['reason']})" if stone.get("reason") else ""
            source = f" Source: {stone['source']}." if stone.get("source") else ""
            return (f"Coder {show(have)} to {show(want)} skips a stepping stone: upgrade to {via} first"
                    f"{because}, then to {show(want)}: set coder_chart_version to {via} for that run."
                    f"{source} The stepping stones are in roles/preflight/vars/stepping_stones.yml;"
                    " coder_extra_stepping_stones adds your own.")
    return ""
