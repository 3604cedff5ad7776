# Copyright (c) 2025, coderops maintainers
# GNU General Public License v3.0+ (see LICENSE or https://www.gnu.org/licenses/gpl-3.0.txt)
# SPDX-License-Identifier: GPL-3.0-or-later

# Note that this module util is **PRIVATE** to the collection. It can have breaking changes at any time.
# Do not use this from other collections or standalone plugins/modules!

"""Which Coder version the values deploy, and what that version and its chart honour.

The facts (chart contract, "Checked against the real charts"):

* CODER_PG_CONN_MAX_OPEN and CODER_PG_CONN_MAX_IDLE exist from Coder 2.30 on (upstream PR
  21403, merged 2026-01-13, released in 2.30.0 on 2026-02-03). Coder 2.25 to 2.29 hard-code 10
  open and 3 idle connections per pool and ignore both variables.
* The v2 chart has no `coder.strategy` up to the 2.31 line (the Kubernetes default applies,
  25% surge); later charts have it (upstream PR 29652, 2026-09). The first chart line with it is
  taken to be 2.32: nothing later than the 2.31 line was checked.
"""

from __future__ import annotations

import re

from ansible_collections.coderops.deploy.plugins.module_utils._helm_values import dig
from ansible_collections.coderops.deploy.plugins.module_utils._inputs import InputError

V2_POOL_ENV_SINCE = (2, 30)
# What Coder before V2_POOL_ENV_SINCE uses, whatever the env says.
V2_FIXED_POOL_OPEN = 10
V2_FIXED_POOL_IDLE = 3
V2_STRATEGY_SINCE = (2, 32)

_VERSION = re.compile(r"^v?(\d+)\.(\d+)(?:\.(\d+))?(?:[-+].*)?$")


def parse_version(field, text):
    """'2.30.1', 'v2.30.1' or '2.31.0-rc.1' as (2, 30, 1); None for None or ''."""
    if text in (None, ""):
        return None
    match = _VERSION.match(str(text).strip())
    if not match:
        raise InputError(field, f"{field} {text!r} is not a Coder version (such as 2.30.1 or"
                                f" v2.30.1)")
    return tuple(int(part or 0) for part in match.groups())


def show(version):
    return ".".join(str(part) for part in version)


def image_tag(values, generation):
    """The image tag the user set in the values (it wins over the chart's appVersion), or None.

    v1: `coderd.image` is a whole image reference; v2: `coder.image.tag`.
    """
    if generation == "v1":
        image = dig(values, "coderd", "image")
        if not isinstance(image, str) or "@" in image:
            return None
        # The tag follows the last ':' after the last '/' (a registry may have a port).
        name = image.rsplit("/", 1)[-1]
        return name.rsplit(":", 1)[1] if ":" in name else None
    tag = dig(values, "coder", "image", "tag")
    return str(tag) if tag not in (None, "") else None


def honours_pool_env(version):
    """Whether this Coder v2 reads CODER_PG_CONN_MAX_OPEN/_IDLE (an unknown version: assumed)."""
    return version is None or version[:2] >= V2_POOL_ENV_SINCE


def chart_has_strategy(version):
    """Whether the v2 chart of this version renders coder.strategy (an unknown version: assumed)."""
    return version is None or version[:2] >= V2_STRATEGY_SINCE
