#!/usr/bin/env python
# Copyright (c) 2025, coderops maintainers
# GNU General Public License v3.0+ (see LICENSE or https://www.gnu.org/licenses/gpl-3.0.txt)
# SPDX-License-Identifier: GPL-3.0-or-later
"""Fill a PostgreSQL server's connection slots and hold them (integration tests only).

    hold_connections.py --ready FILE --stop FILE [--timeout S] --host H --port P --user U
                        --dbname D [--sslmode M] [--sslrootcert F] [--password-file F]

Opens connections until the server refuses one with "too many clients" or "reserved", writes
{"held": N, "refused_with": MESSAGE} to the ready file, then holds them until the stop file
appears (or the timeout passes) and closes them. The password is read from a file, never taken
from the command line.
"""

from __future__ import annotations

import argparse
import json
import os
import time

import psycopg2

FULL = ("too many clients", "remaining connection slots are reserved")


def main():
    parser = argparse.ArgumentParser()
    parser.add_argument("--ready", required=True)
    parser.add_argument("--stop", required=True)
    parser.add_argument("--timeout", type=float, default=120)
    parser.add_argument("--host", required=True)
    parser.add_argument("--port", type=int, required=True)
    parser.add_argument("--user", required=True)
    parser.add_argument("--dbname", required=True)
    parser.add_argument("--sslmode", default="prefer")
    parser.add_argument("--sslrootcert")
    parser.add_argument("--password-file")
    parser.add_argument("--max", type=int, default=500)
    args = parser.parse_args()

    kwargs = {"host": args.host, "port": args.port, "user": args.user, "dbname": args.dbname,
              "sslmode": args.sslmode, "connect_timeout": 5,
              "application_name": "coderops-test-hold-connections"}
    if args.sslrootcert:
        kwargs["sslrootcert"] = args.sslrootcert
    if args.password_file:
        with open(args.password_file) as fh:
            kwargs["password"] = fh.read().rstrip("\n")
    held = []
    refused = None
    try:
        while len(held) < args.max:
            try:
                held.append(psycopg2.connect(**kwargs))
            except psycopg2.OperationalError as exc:
                refused = str(exc).strip()
                if not any(f in refused for f in FULL):
                    raise SystemExit(f"unexpected refusal after {len(held)}: {refused}") from None
                break
        tmp = args.ready + ".tmp"
        with open(tmp, "w") as fh:
            json.dump({"held": len(held), "refused_with": refused}, fh)
        os.replace(tmp, args.ready)
        deadline = time.monotonic() + args.timeout
        while time.monotonic() < deadline and not os.path.exists(args.stop):
            time.sleep(0.2)
    finally:
        for conn in held:
            conn.close()


if __name__ == "__main__":
    main()
