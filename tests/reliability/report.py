#!/usr/bin/env python3
# Copyright (c) 2025, coderops maintainers
# GNU General Public License v3.0+ (see LICENSE or https://www.gnu.org/licenses/gpl-3.0.txt)
# SPDX-License-Identifier: GPL-3.0-or-later
"""Write docs/reliability.md from the JUnit XML of test runs: one row per test case marked
`@pytest.mark.reliability` (tests/reliability/reliability_plugin.py), totals at the top.

    python3 tests/reliability/report.py [-o docs/reliability.md] JUNIT.xml [JUNIT.xml ...]
    python3 tests/reliability/report.py --missing NODEIDS_FILE JUNIT.xml ...   # which marked tests have
                                                                                # no result yet

Files are read in order; a case found in a later file replaces the earlier result, so the deploy
suite's results (make test) are reused and only what it does not run is run again. Exits 1 when a
marked case failed or errored, 2 when no marked case was found.
"""

from __future__ import annotations

import argparse
import re
import subprocess
import sys
import xml.etree.ElementTree as ET
from pathlib import Path

SECTIONS = ("Leaks", "Bad input", "Faults")
PREFIX = "reliability_"
# The "@<group>" that pytest-xdist's loadgroup appends to a grouped test's node id.
XDIST_GROUP = re.compile(r"@test_\w+:[\w,-]+$")
REGENERATE = "scripts/test-reliability.sh"


def _cell(text, limit=400):
    text = " ".join(str(text or "").split())
    if len(text) > limit:
        text = text[:limit - 3] + "..."
    return text.replace("|", "\\|")


def read(paths):
    """{(classname, name): row} from the JUnit files, later files winning."""
    rows = {}
    for path in paths:
        try:
            root = ET.parse(path).getroot()
        except (OSError, ET.ParseError) as exc:
            print(f"report.py: skipping {path}: {exc}", file=sys.stderr)
            continue
        stamps = [s.get("timestamp") for s in root.iter("testsuite") if s.get("timestamp")]
        for case in root.iter("testcase"):
            props = {p.get("name"): p.get("value") for p in case.iter("property")}
            if PREFIX + "section" not in props:
                continue
            # pytest-xdist's loadgroup appends "@<group>" to the node id (tests/deploy/conftest.py).
            case.set("name", XDIST_GROUP.sub("", case.get("name") or ""))
            row = {k[len(PREFIX):]: v for k, v in props.items() if k.startswith(PREFIX)}
            row["test"] = f"{case.get('classname', '').rsplit('.', 1)[-1]}::{case.get('name')}"
            row["seconds"] = float(case.get("time") or 0)
            row["source"] = Path(path).name
            row["started"] = max(stamps) if stamps else ""
            bad = case.find("failure")
            if bad is None:
                bad = case.find("error")
            skipped = case.find("skipped")
            if bad is not None:
                row["result"] = "FAIL"
                first = (bad.get("message") or bad.text or "").strip().splitlines() or [""]
                row["observed"] = first[0]
            elif skipped is not None and "xfail" in (skipped.get("type") or "") + (skipped.get("message") or ""):
                # A strict xfail: the test shows the gap (it fails today); a fix turns it into a pass.
                row["result"] = "known gap"
                gap = (skipped.get("message") or "").removeprefix("xfail").strip(" :-").removeprefix("known gap: ")
                row["observed"] = f"{row['observed']} ({gap})" if row.get("observed") else gap
            elif skipped is not None:
                row["result"] = "skipped"
                row["observed"] = skipped.get("message") or "skipped"
            else:
                row["result"] = "pass"
                row.setdefault("observed", "as expected")
            rows[(case.get("classname"), case.get("name"))] = row
    return rows


def nodeid(classname, name):
    """The pytest node id of a JUnit test case (rootdir = the repository; module-level tests)."""
    return classname.replace(".", "/") + ".py::" + name


def missing(nodeids_file, paths):
    """The node ids listed in `nodeids_file` (pytest --collect-only -q) without a result in `paths`."""
    have = {nodeid(c, n) for c, n in read(paths)}
    wanted = [line.strip() for line in Path(nodeids_file).read_text().splitlines() if "::" in line]
    return [n for n in wanted if n not in have]


def _commit():
    try:
        return subprocess.run(["git", "rev-parse", "--short", "HEAD"], capture_output=True, text=True,
                              check=False).stdout.strip() or "unknown"
    except OSError:
        return "unknown"


def render(rows, sources):
    by_section = {s: sorted((r for r in rows.values() if r["section"] == s), key=lambda r: r["case"])
                  for s in SECTIONS}
    total = {k: sum(1 for r in rows.values() if r["result"] == k) for k in ("pass", "FAIL", "known gap", "skipped")}
    # When the runs started (the JUnit files' timestamps), not when this file was written.
    started = sorted({r["started"][:16].replace("T", " ") for r in rows.values() if r.get("started")})
    now = (f"{started[0]} to {started[-1]}" if len(started) > 1 else (started or ["?"])[0]) + " (UTC)"
    out = [
        "# Reliability: leaks, bad input, faults",
        "",
        f"<!-- GENERATED by tests/reliability/report.py from JUnit XML; do not edit by hand. "
        f"Regenerate with `{REGENERATE}` (or `make test-reliability`). -->",
        "",
        f"Generated by the test suite, never edited by hand: `{REGENERATE}` (`make test-reliability`) "
        "runs the cases and rewrites this file. Each row is one test case marked "
        "`@pytest.mark.reliability` that ran for real against the test bed (real kube-apiserver, "
        "real helm 3 and helm 4, real PostgreSQL); the checklist it proves is "
        "`../shared/reliability-checklist.md`.",
        "",
        f"Runs started {now}; report written at commit {_commit()} from {', '.join(sorted(sources))}.",
        "",
        f"**Total: {len(rows)} cases, {total['pass']} passed, {total['FAIL']} failed, "
        f"{total['known gap']} known gaps, {total['skipped']} skipped.**",
        "",
        "A *known gap* is a case the code does not meet yet: the test runs it for real, checks what it can, and "
        "records the gap as an expected failure (`xfail`) with the reason; fixing the code turns it into a pass.",
        "",
        "| section | cases | passed | failed | known gaps | skipped |",
        "|---|---|---|---|---|---|",
    ]
    for section in SECTIONS:
        rs = by_section[section]
        out.append(f"| {section} | {len(rs)} | {sum(r['result'] == 'pass' for r in rs)} | "
                   f"{sum(r['result'] == 'FAIL' for r in rs)} | {sum(r['result'] == 'known gap' for r in rs)} | "
                   f"{sum(r['result'] == 'skipped' for r in rs)} |")
    gaps = [r for r in rows.values() if r["result"] in ("known gap", "FAIL")]
    if gaps:
        out += ["", "Failed cases and known gaps:", ""]
        out += [f"- {r['section']}, {_cell(r['case'], 120)} ({r['result']}): {_cell(r.get('observed'), 700)}"
                for r in sorted(gaps, key=lambda r: (r["section"], r["case"]))]
    for section in SECTIONS:
        out += ["", f"## {section}", "",
                "| # | case | what was done | expected | observed | result | test (seconds) |",
                "|---|---|---|---|---|---|---|"]
        for i, r in enumerate(by_section[section], 1):
            out.append(f"| {i} | {_cell(r['case'], 200)} | {_cell(r.get('done'))} | {_cell(r.get('expected'))} | "
                       f"{_cell(r.get('observed'), 700)} | {r['result']} | `{_cell(r['test'], 160)}` "
                       f"({r['seconds']:.0f}) |")
    return "\n".join(out) + "\n"


def main(argv=None):
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("-o", "--output", default="docs/reliability.md")
    parser.add_argument("--missing", metavar="NODEIDS_FILE",
                        help="print the node ids of this file that have no result in the JUnit files, and stop")
    parser.add_argument("junit", nargs="*")
    args = parser.parse_args(argv)
    paths = [p for p in args.junit if Path(p).is_file()]
    if args.missing:
        print("\n".join(missing(args.missing, paths)))
        return 0
    rows = read(paths)
    if not rows:
        print("report.py: no test case marked @pytest.mark.reliability in " + " ".join(args.junit), file=sys.stderr)
        return 2
    Path(args.output).write_text(render(rows, {Path(p).name for p in paths}))
    failed = sum(r["result"] == "FAIL" for r in rows.values())
    print(f"report.py: wrote {args.output}: {len(rows)} cases, {failed} failed")
    return 1 if failed else 0


if __name__ == "__main__":
    sys.exit(main())
