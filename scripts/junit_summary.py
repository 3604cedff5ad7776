#!/usr/bin/env python3
"""Count test cases in JUnit XML files: `junit_summary.py DIR` prints "N passed, N failed, N skipped"
and exits 1 when anything failed. Each failed case is named first (with the first line of its
message), so the tail of a CI log says what broke without the logs directory.
`junit_summary.py --record DIR NAME RC LOG` writes a one-case file for a step that
has no JUnit output of its own (a linter, say)."""

from __future__ import annotations

import re
import sys
import xml.etree.ElementTree as ET
from pathlib import Path
from xml.sax.saxutils import escape


def record(directory: Path, name: str, rc: int, log: Path) -> None:
    directory.mkdir(parents=True, exist_ok=True)
    body = ""
    if rc != 0:
        tail = "\n".join(log.read_text(errors="replace").splitlines()[-60:]) if log.exists() else ""
        # Colour codes and other control characters are not allowed in XML 1.0 (molecule's output).
        tail = re.sub(r"\x1b\[[0-9;]*[A-Za-z]", "", tail)
        tail = re.sub(r"[\x00-\x08\x0b\x0c\x0e-\x1f]", "", tail)
        body = f'<failure message="exit {rc}">{escape(tail)}</failure>'
    (directory / f"{name}.xml").write_text(
        f'<testsuite name="{escape(name)}" tests="1" failures="{int(rc != 0)}">'
        f'<testcase classname="steps" name="{escape(name)}">{body}</testcase></testsuite>\n')


def summarise(directory: Path) -> tuple[int, int, int]:
    passed = failed = skipped = 0
    for xml in sorted(directory.glob("*.xml")):
        for case in ET.parse(xml).getroot().iter("testcase"):
            problem = case.find("failure")
            if problem is None:
                problem = case.find("error")
            if problem is not None:
                failed += 1
                message = (problem.get("message") or problem.text or "").strip().splitlines()
                print(f"FAILED {xml.stem}: {case.get('classname')}::{case.get('name')}"
                      f"{': ' + message[0][:200] if message else ''}")
            elif case.find("skipped") is not None:
                skipped += 1
            else:
                passed += 1
    return passed, failed, skipped


def main() -> int:
    if sys.argv[1] == "--record":
        record(Path(sys.argv[2]), sys.argv[3], int(sys.argv[4]), Path(sys.argv[5]))
        return 0
    passed, failed, skipped = summarise(Path(sys.argv[1]))
    print(f"{passed} passed, {failed} failed, {skipped} skipped")
    return 1 if failed else 0


if __name__ == "__main__":
    sys.exit(main())
