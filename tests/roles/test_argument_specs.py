# Copyright (c) 2025, coderops maintainers
# GNU General Public License v3.0+ (see LICENSE or https://www.gnu.org/licenses/gpl-3.0.txt)
# SPDX-License-Identifier: GPL-3.0-or-later
"""Every role's meta/argument_specs.yml is in step with its defaults/main.yml.

* every variable in defaults/main.yml is an option of at least one entry point, with the same
  default (and a type that the default has);
* every option with a default has it in defaults/main.yml (or is another role's, with that role's
  default: preflight's deploy entry point validates the whole play's variables); an option without
  one (required, or optional without a default, like coder_db_password) is not in defaults/main.yml;
* an option named in several entry points (or roles) is described the same way everywhere;
* every variable is prefixed with the role's name or is a public coder_ name;
* every entry point has a tasks file.

    pytest tests/roles        (or: python tests/roles/test_argument_specs.py)
"""

from __future__ import annotations

import sys
from pathlib import Path

import pytest
import yaml

ROOT = Path(__file__).resolve().parents[2]
ROLES = sorted(p for p in (ROOT / "roles").iterdir() if (p / "meta" / "argument_specs.yml").exists())
TYPES = {"str": str, "int": int, "bool": bool, "dict": dict, "list": list, "float": (float, int), "path": str,
         "raw": object}


def load(role):
    specs = yaml.safe_load((role / "meta" / "argument_specs.yml").read_text())["argument_specs"]
    defaults = yaml.safe_load((role / "defaults" / "main.yml").read_text()) or {}
    return specs, defaults


def _default_of_another_role(role, name, option):
    """Whether another role documents `name` the same way and sets its default: an entry point that
    validates a whole play's variables (preflight's deploy) takes the other roles' as they are."""
    for other in ROLES:
        if other == role:
            continue
        specs, defaults = load(other)
        if name in defaults and any((spec.get("options") or {}).get(name) == option for spec in specs.values()):
            return True
    return False


def problems_of(role):
    specs, defaults = load(role)
    found = []
    options = {}
    for entry, spec in specs.items():
        if not (role / "tasks" / f"{entry}.yml").exists():
            found.append(f"{role.name}: entry point {entry} has no tasks/{entry}.yml")
        for name, option in (spec.get("options") or {}).items():
            if name in options and options[name] != option:
                found.append(f"{role.name}: {name} differs between entry points")
            options[name] = option
    for name, value in defaults.items():
        if name not in options:
            found.append(f"{role.name}: defaults/main.yml sets {name}, which no entry point documents")
            continue
        option = options[name]
        if "default" not in option:
            found.append(f"{role.name}: {name} has a default in defaults/main.yml but none in argument_specs")
        elif option["default"] != value:
            found.append(f"{role.name}: {name} defaults to {value!r} in defaults/main.yml but"
                         f" {option['default']!r} in argument_specs")
        if not isinstance(value, TYPES[option.get("type", "str")]) or (
                option.get("type") == "int" and isinstance(value, bool)):
            found.append(f"{role.name}: {name}'s default {value!r} is not of type {option.get('type')}")
    for name, option in options.items():
        if "default" in option and name not in defaults and not _default_of_another_role(role, name, option):
            found.append(f"{role.name}: {name} has a default in argument_specs but not in defaults/main.yml")
        if "default" not in option and name in defaults:
            found.append(f"{role.name}: {name} is in defaults/main.yml without a documented default")
        if option.get("required") and "default" in option:
            found.append(f"{role.name}: {name} is required and has a default")
        if not (name.startswith(f"{role.name}_") or name.startswith("coder_") or name.startswith("preflight_")
                or name.startswith("db_secret_") or name.startswith("helm_release_")):
            found.append(f"{role.name}: {name} is neither prefixed with a role name nor a public coder_ name")
        if not option.get("description"):
            found.append(f"{role.name}: {name} has no description")
    return found, options


def test_roles_exist():
    assert {r.name for r in ROLES} >= {"preflight", "db_secret", "helm_release"}


@pytest.mark.parametrize("role", ROLES, ids=lambda r: r.name)
def test_argument_specs_match_defaults(role):
    found, _ = problems_of(role)
    assert not found, "\n".join(found)


def test_shared_variables_agree_across_roles():
    seen = {}
    found = []
    for role in ROLES:
        _, options = problems_of(role)
        for name, option in options.items():
            if name in seen and seen[name][1] != option:
                found.append(f"{name} differs between roles {seen[name][0]} and {role.name}")
            seen.setdefault(name, (role.name, option))
    assert not found, "\n".join(found)


if __name__ == "__main__":
    problems = [p for role in ROLES for p in problems_of(role)[0]]
    print("\n".join(problems) or "argument specs and defaults are in step")
    sys.exit(1 if problems else 0)


def test_generated_from_the_one_source():
    """meta/role_variables.yml writes each variable once; the roles' files are generated from it."""
    sys.path.insert(0, str(ROOT / "scripts"))
    import role_specs  # pylint: disable=import-outside-toplevel

    stale = [str(path.relative_to(ROOT)) for path, text in role_specs.generated().items()
             if not path.exists() or path.read_text() != text]
    assert not stale, f"{stale} differ from meta/role_variables.yml: run scripts/role_specs.py --write"
