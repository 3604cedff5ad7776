# Copyright (c) 2025, coderops maintainers
# GNU General Public License v3.0+ (see LICENSE or https://www.gnu.org/licenses/gpl-3.0.txt)
# SPDX-License-Identifier: GPL-3.0-or-later
"""The `reliability` marker: a test that proves an entry of ../shared/reliability-checklist.md
says which one, and its JUnit record carries it, so that tests/reliability/report.py can turn
any run's JUnit XML into docs/reliability.md without running anything again.

    @pytest.mark.reliability(section="Faults", case="readiness timeout ({binary})",
                             done="upgrade to pods that never become ready",
                             expected="FAILED (timeout), last good revision deployed and live")
    def test_readiness_timeout(good, observe):
        ...
        observe("rc=2, rolled back to revision 3, Secret hash unchanged")

`{name}` in the texts is replaced by the test's parameter `name`; `done` may also be a function of
the parameters (a dict). `observe(text)` records what the
test saw (the report shows it for a passed case; a failed one shows its assertion). A test may also
fill the row at run time: `observe(text, done=..., expected=...)`.

Registered by the deploy_coder tests' conftest.py and by tests/reliability/conftest.py.
"""

from __future__ import annotations

import pytest

SECTIONS = ("Leaks", "Bad input", "Faults")
PREFIX = "reliability_"


def pytest_configure(config):
    config.addinivalue_line(
        "markers",
        "reliability(section, case, expected, done=None): the test proves an entry of the reliability "
        "checklist; its row in docs/reliability.md (tests/reliability/report.py)")


def _params(item):
    callspec = getattr(item, "callspec", None)
    params = {}
    if callspec is not None:
        for key, value in callspec.params.items():
            params[key] = getattr(value, "binary", value)  # the faults' `good` fixture: its helm
    return params


def _fill(text, params):
    try:
        return str(text).format(**params)
    except (KeyError, IndexError, ValueError):
        return str(text)


def _set(item, key, value):
    item.user_properties[:] = [(k, v) for k, v in item.user_properties if k != PREFIX + key]
    item.user_properties.append((PREFIX + key, value))


def pytest_collection_modifyitems(config, items):
    for item in items:
        mark = item.get_closest_marker("reliability")
        if mark is None:
            continue
        section = mark.kwargs.get("section")
        if section not in SECTIONS:
            raise pytest.UsageError(f"{item.nodeid}: reliability section must be one of {SECTIONS}, "
                                    f"not {section!r}")
        params = {k: v for k, v in _params(item).items() if isinstance(v, (str, int, float))}
        doc = (getattr(item.function, "__doc__", None) or "").strip().split("\n\n")[0]
        done = mark.kwargs.get("done") or " ".join(doc.split()) or item.name
        if callable(done):  # done=lambda params: ..., for a row that depends on the parameters
            done = done(params)
        _set(item, "section", section)
        _set(item, "case", _fill(mark.kwargs.get("case") or item.name, params))
        _set(item, "done", _fill(done, params))
        _set(item, "expected", _fill(mark.kwargs.get("expected", ""), params))


@pytest.fixture
def observe(request):
    """observe(text, done=None, expected=None): what the test saw, for docs/reliability.md."""

    def record(text, done=None, expected=None):
        _set(request.node, "observed", " ".join(str(text).split()))
        if done:
            _set(request.node, "done", " ".join(str(done).split()))
        if expected:
            _set(request.node, "expected", " ".join(str(expected).split()))

    return record
