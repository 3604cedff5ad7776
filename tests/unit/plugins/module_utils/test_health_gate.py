# Copyright (c) 2026, coderops maintainers
# GNU General Public License v3.0+ (see LICENSE or https://www.gnu.org/licenses/gpl-3.0.txt)
# SPDX-License-Identifier: GPL-3.0-or-later
"""_health_gate.check with a fake service proxy and clock; Coder's real answers through the real
API server are the deploy suite's (tests/deploy/test_real_pods.py)."""

from __future__ import annotations

import json

from ansible_collections.coderops.deploy.plugins.module_utils import _health_gate as gate
from ansible_collections.coderops.deploy.plugins.module_utils._kube_rest import ApiException


class Proxy:
    """Answers from a script: one entry per poll, each {path: text or ApiException}."""

    def __init__(self, script):
        self.script = script
        self.polls = 0
        self.calls = []

    def connect_get_namespaced_service_proxy_with_path(self, name, namespace, path, _request_timeout=None):
        self.calls.append((name, namespace, path))
        answer = self.script[min(self.polls, len(self.script) - 1)][path]
        if path == "/api/v2/buildinfo":
            self.polls += 1
        if isinstance(answer, Exception):
            if path == "/healthz":
                self.polls += 1
            raise answer
        return answer


class Clock:
    def __init__(self):
        self.now = 0.0

    def __call__(self):
        return self.now

    def sleep(self, seconds):
        self.now += seconds


def info(version):
    return json.dumps({"version": version, "deployment_id": "x"})


def run(script, version="2.31.0", timeout=10):
    clock = Clock()
    proxy = Proxy(script)
    return gate.check(proxy, "ns", "coder:80", version, timeout, clock=clock, sleep=clock.sleep), proxy


def test_passes_when_coder_answers_at_the_version():
    result, proxy = run([{"/healthz": "OK", "/api/v2/buildinfo": info("v2.31.0")}])
    assert result["ok"] and result["version"] == "v2.31.0" and result["error"] is None
    assert result["expected_version"] == "v2.31.0" and result["elapsed_s"] == 0.0
    assert proxy.calls == [("coder:80", "ns", "/healthz"), ("coder:80", "ns", "/api/v2/buildinfo")]


def test_waits_through_no_endpoints_and_the_old_version():
    no_endpoints = ApiException(status=503, reason="Service Unavailable",
                                body='no endpoints available for service "coder:80"')
    result, dummy = run([{"/healthz": no_endpoints},
                         {"/healthz": "OK", "/api/v2/buildinfo": info("v2.30.0")},
                         {"/healthz": "OK", "/api/v2/buildinfo": info("v2.31.0")}])
    assert result["ok"] and result["elapsed_s"] == 2 * gate.POLL_SECONDS


def test_fails_after_the_timeout_with_the_last_reason():
    result, dummy = run([{"/healthz": "OK", "/api/v2/buildinfo": info("v2.30.0")}], timeout=5)
    assert not result["ok"] and result["version"] == "v2.30.0"
    assert result["error"] == "/api/v2/buildinfo reports v2.30.0, not v2.31.0"
    assert result["elapsed_s"] >= 5
    down = ApiException(status=503, reason="Service Unavailable", body="no endpoints\nmore")
    result, dummy = run([{"/healthz": down}], timeout=3)
    assert not result["ok"] and result["error"] == "HTTP 503 Service Unavailable: no endpoints"
    result, dummy = run([{"/healthz": "OK", "/api/v2/buildinfo": "<html>"}], timeout=1)
    assert result["error"] == "/api/v2/buildinfo did not answer JSON"


def test_versions_compare_with_or_without_v():
    assert gate.normalise("2.31.0") == gate.normalise("v2.31.0") == "v2.31.0"
    assert gate.normalise(None) == ""
