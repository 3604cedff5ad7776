# Copyright (c) 2025, coderops maintainers
# GNU General Public License v3.0+ (see LICENSE or https://www.gnu.org/licenses/gpl-3.0.txt)
# SPDX-License-Identifier: GPL-3.0-or-later

# Note that this module util is **PRIVATE** to the collection. It can have breaking changes at any time.
# Do not use this from other collections or standalone plugins/modules!

"""Input checks shared by the modules and filters.

Every check raises InputError with the name of the field at fault and a message that says
how to fix it. No check ever puts a password (or any value of a field documented as secret)
into its message.
"""

from __future__ import annotations

import ipaddress
import re
from collections.abc import Mapping, Sequence, Set

SSL_MODES = ("disable", "allow", "prefer", "require", "verify-ca", "verify-full")
VERIFYING_SSL_MODES = ("verify-ca", "verify-full")
CONNECTORS = ("postgres", "awsiamrds")

_DNS1123_LABEL = re.compile(r"^[a-z0-9]([-a-z0-9]*[a-z0-9])?$")
_SECRET_KEY = re.compile(r"^[-._a-zA-Z0-9]+$")
_ENV_NAME = re.compile(r"^[-._a-zA-Z][-._a-zA-Z0-9]*$")


def type_name(value):
    """A plain name for a value's type in messages ("list", not Ansible's internal lazy types)."""
    if value is None:
        return "null"
    if isinstance(value, bool):
        return "boolean"
    if isinstance(value, (int, float)):
        return "number"
    if isinstance(value, str):
        return "string"
    if isinstance(value, Mapping):
        return "dictionary"
    if isinstance(value, (Sequence, Set)):
        return "list"
    return type(value).__name__


class InputError(ValueError):
    """Bad input; `field` names the option (or key) at fault, the message says how to fix it."""

    def __init__(self, field, message):
        super().__init__(message)
        self.field = field
        self.message = message


def require_text(field, value, what="a non-empty string"):
    """A non-empty string without leading or trailing white space."""
    if value is None or (isinstance(value, str) and not value.strip()):
        raise InputError(field, f"{field} is empty; set it to {what}")
    if not isinstance(value, str):
        raise InputError(field, f"{field} must be a string; got {type_name(value)}")
    if value != value.strip():
        raise InputError(field, f"{field} has leading or trailing white space; remove it")
    return value


def check_host(field, value):
    """A host name or IP address: no scheme, path, port or white space."""
    host = require_text(field, value, "the database server's DNS name or IP address")
    if any(c.isspace() for c in host) or "/" in host or "@" in host:
        raise InputError(field, f"{field} must be a bare host name or IP address, without a"
                                f" scheme, user, path or white space; got {host!r}")
    if ":" in host:
        try:
            ipaddress.IPv6Address(host.strip("[]"))
        except ValueError:
            raise InputError(field, f"{field} {host!r} looks like host:port; give the port in the"
                                    f" port option instead") from None
        host = host.strip("[]")
    return host


def check_port(field, value):
    """A TCP port, 1-65535, given as a number or a string of digits. Returns an int."""
    if isinstance(value, bool) or value is None:
        raise InputError(field, f"{field} must be a number between 1 and 65535; got {value!r}")
    if isinstance(value, str):
        text = value.strip()
        if not text.isdigit():
            raise InputError(field, f"{field} must be a number between 1 and 65535; got {value!r}")
        value = int(text)
    if isinstance(value, float) and value.is_integer():
        value = int(value)
    if not isinstance(value, int):
        raise InputError(field, f"{field} must be a number between 1 and 65535; got"
                                f" {type_name(value)}")
    if not 1 <= value <= 65535:
        raise InputError(field, f"{field} {value} is out of range; use a port between 1 and 65535"
                                f" (PostgreSQL listens on 5432 by default)")
    return value


def check_choice(field, value, choices):
    if value not in choices:
        raise InputError(field, f"{field} must be one of {', '.join(choices)}; got {value!r}")
    return value


def is_dns1123_label(name):
    return isinstance(name, str) and len(name) <= 63 and bool(_DNS1123_LABEL.match(name))


def is_dns1123_subdomain(name):
    return (isinstance(name, str) and 0 < len(name) <= 253
            and all(is_dns1123_label(part) for part in name.split(".")))


def _suggest_name(name, max_len=63):
    cleaned = re.sub(r"[^a-z0-9-]+", "-", str(name).lower()).strip("-")
    return cleaned[:max_len].strip("-") or "coder-db"


def check_secret_name(field, name, label=False, why="", max_len=63):
    """A Kubernetes Secret name: a DNS-1123 subdomain, or a DNS-1123 label of at most `max_len`
    characters when `label` (a chart that names a volume "<prefix><Secret name>" leaves less
    than a label's 63)."""
    require_text(field, name, "the name of a Kubernetes Secret")
    ok = is_dns1123_label(name) and len(name) <= max_len if label else is_dns1123_subdomain(name)
    if not ok:
        if label:
            kind = (f"a DNS-1123 label (lower-case letters, digits and '-', at most {max_len}"
                    f" characters, starting and ending with a letter or digit, no dots)")
        else:
            kind = ("a DNS-1123 name (lower-case letters, digits, '-' and '.', at most 253"
                    " characters, each dot-separated part starting and ending with a letter or digit)")
        raise InputError(field, f"{field} {name!r} is not {kind}{why}; rename the Secret, for"
                                f" example to {_suggest_name(name, max_len if label else 63)!r}")
    return name


def check_secret_key(field, key):
    """A key inside a Secret's data: letters, digits, '-', '_' and '.', at most 253 characters."""
    require_text(field, key, "the key inside the Secret that holds the PEM file")
    if len(key) > 253 or not _SECRET_KEY.match(key) or key in (".", ".."):
        raise InputError(field, f"{field} {key!r} is not a valid Secret key (letters, digits,"
                                f" '-', '_' and '.', at most 253 characters); use the key under"
                                f" which the Secret stores the file, e.g. 'tls.crt'")
    return key


def check_env_name(field, name):
    require_text(field, name, "an environment variable name")
    if not _ENV_NAME.match(name):
        raise InputError(field, f"{field} {name!r} is not a valid environment variable name"
                                f" (letters, digits, '_', '-' and '.', not starting with a digit)")
    return name
