# Copyright (c) 2026, coderops maintainers
# GNU General Public License v3.0+ (see LICENSE or https://www.gnu.org/licenses/gpl-3.0.txt)
# SPDX-License-Identifier: GPL-3.0-or-later

# Note that this module util is **PRIVATE** to the collection. It can have breaking changes at any time.
# Do not use this from other collections or standalone plugins/modules!

"""The health gate: once helm says a release is ready, ask Coder itself whether it is. Through the
API server's service proxy (the path kubectl uses; no new network path to the pods): `/healthz`
must answer 2xx and `/api/v2/buildinfo` must report the expected version, within a time limit.
helm's readiness is only the pods' readiness probes; a Coder that answers with the old version
(the Service still routes to old pods) or not at all is not the upgrade the user asked for."""

from __future__ import annotations

import json
import time

from ansible_collections.coderops.deploy.plugins.module_utils._kube import unreachable
from ansible_collections.coderops.deploy.plugins.module_utils._kube_rest import ApiException

POLL_SECONDS = 2.0
REQUEST_TIMEOUT = 10


def normalise(version):
    """'v2.31.0' and '2.31.0' alike, as buildinfo writes it ('v' + semver)."""
    text = str(version or "").strip()
    return text if text.startswith("v") or not text else "v" + text


def _ask(core, namespace, service, path):
    return core.connect_get_namespaced_service_proxy_with_path(service, namespace, path,
                                                               _request_timeout=REQUEST_TIMEOUT)


def check(core, namespace, service, version, timeout, cancel=None, clock=time.monotonic, sleep=time.sleep):
    """Poll until Coder is healthy at `version` or `timeout` seconds passed.

    Returns {"ok", "elapsed_s", "service", "expected_version", "version", "error"}: `version` is
    the last one buildinfo reported, `error` why the gate is not passed (None when ok)."""
    want = normalise(version)
    start = clock()
    result = {"ok": False, "service": service, "expected_version": want, "version": None, "error": None}
    while True:
        try:
            _ask(core, namespace, service, "/healthz")
            info = json.loads(_ask(core, namespace, service, "/api/v2/buildinfo"))
            result["version"] = info.get("version")
            if result["version"] == want:
                result.update(ok=True, error=None)
            else:
                result["error"] = f"/api/v2/buildinfo reports {result['version']}, not {want}"
        except ApiException as exc:
            body = (exc.body or "").strip().splitlines()
            result["error"] = f"HTTP {exc.status} {exc.reason}" + (f": {body[0][:200]}" if body else "")
        except ValueError:
            result["error"] = "/api/v2/buildinfo did not answer JSON"
        except Exception as exc:  # pylint: disable=broad-exception-caught
            if not unreachable(exc):
                raise
            result["error"] = f"the API server did not answer ({exc.__class__.__name__})"
        elapsed = clock() - start
        if result["ok"] or elapsed >= timeout or (cancel is not None and cancel.check()):
            result["elapsed_s"] = round(elapsed, 1)
            return result
        sleep(POLL_SECONDS)
