# Copyright (c) 2025, coderops maintainers
# GNU General Public License v3.0+ (see LICENSE or https://www.gnu.org/licenses/gpl-3.0.txt)
# SPDX-License-Identifier: GPL-3.0-or-later
"""Find a secret in any form it could take in ansible-runner's artifacts.

Forms: plain, base64 (at each of the three byte alignments, so that it is found inside a longer
base64 blob too), URL-encoded (quote and quote_plus), JSON-escaped (ASCII-only and UTF-8, once and
twice: a job event is JSON whose stdout holds JSON), YAML-quoted, and Python repr. JSON files are
also decoded and every string in them searched, which undoes any number of escaping layers.
"""

from __future__ import annotations

import base64
import json
import urllib.parse
from pathlib import Path

import yaml


def _b64_fragments(data: bytes):
    """The base64 characters fully determined by `data`, at each byte offset modulo 3."""
    out = []
    for offset in range(3):
        enc = base64.b64encode(b"\0" * offset + data + b"\0" * 3).decode()
        start, end = offset, offset + len(data)
        keep = [i for i in range(len(enc)) if start <= (6 * i) // 8 and (6 * i + 5) // 8 < end]
        if keep:
            out.append(enc[keep[0]:keep[-1] + 1])
    out.append(base64.b64encode(data).decode())
    return out


def forms(secret: str) -> dict[str, str]:
    raw = secret.encode()
    found = {"plain": secret}
    for i, frag in enumerate(_b64_fragments(raw)):
        found[f"base64[{i}]"] = frag
    found["url"] = urllib.parse.quote(secret, safe="")
    found["url_plus"] = urllib.parse.quote_plus(secret)
    found["json_ascii"] = json.dumps(secret)[1:-1]
    found["json_utf8"] = json.dumps(secret, ensure_ascii=False)[1:-1]
    found["json_twice"] = json.dumps(json.dumps(secret)[1:-1])[1:-1]
    found["yaml"] = yaml.safe_dump(secret, default_style='"', allow_unicode=True).strip()[1:-1]
    found["repr"] = repr(secret)[1:-1]
    # Forms equal to the plain text add nothing; short fragments would match by chance.
    return {k: v for k, v in found.items() if len(v) >= 8 and (k == "plain" or v != secret)}


def _strings(node):
    if isinstance(node, str):
        yield node
    elif isinstance(node, dict):
        for k, v in node.items():
            yield from _strings(k)
            yield from _strings(v)
    elif isinstance(node, list):
        for v in node:
            yield from _strings(v)


def scan_text(text: str, secret: str, where: str):
    """[(where, form)] for every form of the secret found in the text."""
    hits = [(where, name) for name, needle in forms(secret).items() if needle in text]
    if where.endswith(".json"):
        try:
            doc = json.loads(text)
        except ValueError:
            doc = None
        if doc is not None:
            for s in _strings(doc):
                hits += [(where, f"decoded:{name}") for name, needle in forms(secret).items() if needle in s]
    return sorted(set(hits))


def scan_files(paths, secret: str):
    hits = []
    for path in paths:
        text = Path(path).read_bytes().decode("utf-8", errors="replace")
        hits += scan_text(text, secret, str(path))
    return hits
