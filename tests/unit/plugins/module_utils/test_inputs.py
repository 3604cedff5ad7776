# Copyright (c) 2025, coderops maintainers
# GNU General Public License v3.0+ (see LICENSE or https://www.gnu.org/licenses/gpl-3.0.txt)
# SPDX-License-Identifier: GPL-3.0-or-later
"""Shared input checks."""

from __future__ import annotations

import pytest
from ansible_collections.coderops.deploy.plugins.module_utils._inputs import (
    InputError,
    check_host,
    check_port,
    check_secret_key,
    check_secret_name,
    is_dns1123_label,
    is_dns1123_subdomain,
    type_name,
)


@pytest.mark.parametrize("value,expected", [
    (None, "null"), (True, "boolean"), (3, "number"), (1.5, "number"), ("x", "string"),
    ({}, "dictionary"), ([], "list"), ((), "list"), (set(), "list"), (object(), "object"),
])
def test_type_name(value, expected):
    assert type_name(value) == expected


@pytest.mark.parametrize("host,expected", [
    ("db.example.internal", "db.example.internal"), ("10.0.0.1", "10.0.0.1"),
    ("fd00::1", "fd00::1"), ("[fd00::1]", "fd00::1"),
])
def test_good_hosts(host, expected):
    assert check_host("host", host) == expected


@pytest.mark.parametrize("host,fragment", [
    ("", "host is empty"), (" db", "white space"), ("db host", "bare host name"),
    ("postgres://db", "bare host name"), ("user@db", "bare host name"),
    ("db:5432", "give the port in the port option"), (5, "must be a string"),
])
def test_bad_hosts(host, fragment):
    with pytest.raises(InputError) as err:
        check_host("host", host)
    assert err.value.field == "host" and fragment in str(err.value)


@pytest.mark.parametrize("port,expected", [(1, 1), (65535, 65535), ("5432", 5432), (" 6432 ", 6432),
                                           (5432.0, 5432)])
def test_good_ports(port, expected):
    assert check_port("port", port) == expected


@pytest.mark.parametrize("port", [0, 65536, -1, "x", "", "5432a", 5432.5, True, None, [5432]])
def test_bad_ports(port):
    with pytest.raises(InputError) as err:
        check_port("port", port)
    assert err.value.field == "port" and "between 1 and 65535" in str(err.value)


def test_dns1123():
    assert is_dns1123_label("coder-db") and not is_dns1123_label("coder.db")
    assert not is_dns1123_label("-a") and not is_dns1123_label("a" * 64)
    assert is_dns1123_subdomain("coder.db") and not is_dns1123_subdomain("Coder")
    assert not is_dns1123_subdomain("a..b") and not is_dns1123_subdomain("")


def test_secret_name_suggests_a_fix():
    with pytest.raises(InputError) as err:
        check_secret_name("password_secret", "Coder_DB.Password", label=True)
    assert "for example to 'coder-db-password'" in str(err.value)


@pytest.mark.parametrize("key", ["tls.crt", "ca_bundle.pem", "a-b"])
def test_good_secret_keys(key):
    assert check_secret_key("k", key) == key


@pytest.mark.parametrize("key", ["a/b", "..", ".", "a b", "x" * 254])
def test_bad_secret_keys(key):
    with pytest.raises(InputError):
        check_secret_key("k", key)
