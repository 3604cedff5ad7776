# Copyright (c) 2025, coderops maintainers
# GNU General Public License v3.0+ (see LICENSE or https://www.gnu.org/licenses/gpl-3.0.txt)
# SPDX-License-Identifier: GPL-3.0-or-later
"""PostgreSQL URL for the v2 chart's Secret: encoding, and errors that never show the password."""

from __future__ import annotations

from urllib.parse import parse_qsl, unquote, urlsplit

import pytest
from ansible_collections.coderops.deploy.plugins.module_utils._inputs import InputError
from ansible_collections.coderops.deploy.plugins.module_utils._pg_url import pg_url

CANARY = "p w'\"=@%\\:/?#&+é€"


def test_plain():
    assert pg_url("db", 5432, "coder", "coder") == "postgres://coder@db:5432/coder?sslmode=require"


def test_awkward_password_round_trips():
    url = pg_url("db.example", "6432", "co@der", "my db", password=CANARY, ssl_mode="verify-full",
                 search_path="s,public", params={"sslrootcert": "/etc/ssl/certs/ca.crt"})
    parts = urlsplit(url)
    assert parts.scheme == "postgres"
    assert unquote(parts.password) == CANARY
    assert unquote(parts.username) == "co@der"
    assert parts.hostname == "db.example" and parts.port == 6432
    assert unquote(parts.path[1:]) == "my db"
    assert parse_qsl(parts.query) == [("sslmode", "verify-full"), ("search_path", "s,public"),
                                      ("sslrootcert", "/etc/ssl/certs/ca.crt")]
    assert CANARY not in url


def test_ipv6_host_in_brackets():
    assert pg_url("fd00::1", 5432, "u", "d").startswith("postgres://u@[fd00::1]:5432/")


@pytest.mark.parametrize("kwargs,field", [
    ({"host": ""}, "host"),
    ({"host": "db:5432"}, "host"),
    ({"port": "x"}, "port"),
    ({"port": 0}, "port"),
    ({"user": ""}, "user"),
    ({"database": " "}, "database"),
    ({"ssl_mode": "on"}, "ssl_mode"),
    ({"password": CANARY + "\n"}, "password"),
    ({"password": " " + CANARY}, "password"),
    ({"password": CANARY[:3] + "\x00" + CANARY[3:]}, "password"),
    ({"password": ""}, "password"),
    ({"password": 12345}, "password"),
    ({"search_path": ""}, "search_path"),
    ({"params": {"password": CANARY}}, "params.password"),
    ({"params": {"x": [CANARY]}}, "params.x"),
    ({"params": "x"}, "params"),
])
def test_errors_name_the_field_and_never_the_password(kwargs, field):
    args = {"host": "db", "port": 5432, "user": "u", "database": "d", "password": CANARY}
    args.update(kwargs)
    with pytest.raises(InputError) as err:
        pg_url(**args)
    assert err.value.field == field
    text = str(err.value) + repr(err.value.args)
    for part in (CANARY, CANARY.strip(), "p w'", "é€"):
        assert part not in text
