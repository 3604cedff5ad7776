# Copyright (c) 2025, coderops maintainers
# GNU General Public License v3.0+ (see LICENSE or https://www.gnu.org/licenses/gpl-3.0.txt)
# SPDX-License-Identifier: GPL-3.0-or-later
"""Build the AWX surveys of the job templates from the roles' argument specs.

    python tests/awx/awx_surveys.py            # print playbooks/awx/surveys.yml as it should be
    python tests/awx/awx_surveys.py --write    # write it

Each job template's playbook imports role entry points (``import_role``/``include_role`` with
``tasks_from``); the survey asks the options of those entry points that a survey can ask and that
are not secret:

* no ``no_log`` option (a password is never a survey answer: AWX shows the answers);
* no option that a credential feeds: one whose default reads a variable that a credential injects
  (``lookup('ansible.builtin.env', 'CODER_PG_...')`` or ``'K8S_AUTH_...'``: host, port, user,
  database, password, sslmode, TLS files, kubeconfig);
* no list or dict option (a survey answer is a string or a number); those go into launch-time
  extra variables.

Types: ``str`` becomes ``text`` (``multiplechoice`` with ``choices``), ``int`` ``integer``,
``float`` ``float``, ``bool`` a ``multiplechoice`` of ``true``/``false`` (AWX sends the answer as a
string, which the roles' argument validation accepts as a boolean). The defaults are the roles'
defaults. tests/awx/test_awx_configure.py fails when the file is stale.
"""

from __future__ import annotations

import re
import sys
from pathlib import Path

import yaml

REPO = Path(__file__).resolve().parents[2]
SURVEYS = REPO / "playbooks" / "awx" / "surveys.yml"
JOB_TEMPLATES = REPO / "playbooks" / "awx" / "job_templates.yml"
COLLECTION = "coderops.deploy."
# A default that reads what a credential injects ("Coder PostgreSQL": CODER_PG_*, a kubeconfig or
# bearer-token credential: K8S_AUTH_*).
_CREDENTIAL_ENV = re.compile(r"lookup\('ansible\.builtin\.env', '(CODER_PG_[A-Z]+|K8S_AUTH_[A-Z_]+)'\)")

# Variables a playbook reads itself (not a role option), asked in its survey.
PLAYBOOK_VARS = {
    "uninstall_coder": [{
        "name": "coder_uninstall_delete_secrets", "type": "bool", "default": False,
        "description": ["Also delete the Secrets this collection wrote for the release (the password Secret and"
                        " the TLS Secrets)."],
    }],
}

_MARKUP = re.compile(r"\b[COVEMIBU]\(([^)]*)\)")
QUESTION_MAX_TEXT = 1024


class _Dumper(yaml.SafeDumper):
    """Indents the items of a list under their key (yamllint's default indent-sequences)."""

    def increase_indent(self, flow=False, indentless=False):
        return super().increase_indent(flow, False)


class _Loader(yaml.SafeLoader):
    """Reads the vars files with their !unsafe tags (as plain strings)."""


_Loader.add_constructor("!unsafe", lambda loader, node: loader.construct_scalar(node))


def load_yaml(path):
    with open(path, encoding="utf-8") as fh:
        return yaml.load(fh, Loader=_Loader)  # noqa: S506 - a SafeLoader subclass


def entry_points(playbook):
    """(role, entry point) of every role the playbook imports or includes, in order."""
    found = []

    def walk(tasks):
        for task in tasks or []:
            for key in ("block", "rescue", "always"):
                walk(task.get(key))
            for action in ("ansible.builtin.import_role", "ansible.builtin.include_role",
                           "import_role", "include_role"):
                if action in task:
                    args = task[action]
                    name = args["name"]
                    if name.startswith(COLLECTION):
                        name = name[len(COLLECTION):]
                    point = (name, args.get("tasks_from", "main"))
                    if point not in found:
                        found.append(point)

    for play in load_yaml(playbook):
        for key in ("pre_tasks", "tasks", "post_tasks"):
            walk(play.get(key))
        for role in play.get("roles") or []:
            name = role if isinstance(role, str) else role.get("role") or role.get("name")
            found.append((name.removeprefix(COLLECTION), "main"))
    return found


def argument_spec(role, entry_point):
    spec = load_yaml(REPO / "roles" / role / "meta" / "argument_specs.yml")["argument_specs"]
    return spec[entry_point].get("options") or {}


def credential_variable(option):
    """The variable a credential injects that the option defaults to, or None."""
    match = _CREDENTIAL_ENV.search(str(option.get("default") or ""))
    return match[1] if match else None


def plain(text):
    """Ansible doc markup (C(), O(), V(), E(), M() ...) as plain text for the AWX UI."""
    return " ".join(_MARKUP.sub(r"\1", line) for line in text).strip()


def question(name, option):
    """One survey question, or None when the option is not one a survey may ask."""
    kind = option.get("type", "str")
    if option.get("no_log") or kind not in ("str", "int", "float", "bool"):
        return None
    q = {
        "question_name": name,
        "question_description": plain(option.get("description") or [])[:QUESTION_MAX_TEXT],
        "variable": name,
        "required": bool(option.get("required", False)),
    }
    default = option.get("default")
    choices = [c for c in option.get("choices") or [] if c != ""]
    if kind == "bool":
        q.update(type="multiplechoice", choices=["true", "false"])
        if default is not None:
            q["default"] = "true" if default else "false"
    elif kind == "int":
        q["type"] = "integer"
        if default is not None:
            q["default"] = int(default)
    elif kind == "float":
        q["type"] = "float"
        if default is not None:
            q["default"] = float(default)
    elif choices:
        q.update(type="multiplechoice", choices=choices)
        if default not in (None, ""):
            q["default"] = default
    else:
        q.update(type="text", min=0, max=QUESTION_MAX_TEXT)
        if default is not None:
            q["default"] = str(default)
    return q


def survey(key, title):
    """The survey of the job template whose playbook is playbooks/<key>.yml."""
    spec, seen = [], {}
    points = entry_points(REPO / "playbooks" / f"{key}.yml")
    for role, point in points:
        for name, option in argument_spec(role, point).items():
            if credential_variable(option):
                continue
            if name in seen:
                if seen[name] != option:
                    raise ValueError(f"{name} differs between the entry points of {key}: keep the argument specs"
                                     " in step")
                continue
            seen[name] = option
            q = question(name, option)
            if q:
                spec.append(q)
    for var in PLAYBOOK_VARS.get(key, []):
        spec.append(question(var["name"], var))
    return {
        "name": title,
        "description": (f"Options of {', '.join(f'{r}:{p}' for r, p in points)} (generated from their argument"
                        " specs). Secrets are not asked here: they come from the credentials."),
        "spec": spec,
    }


def render():
    data = load_yaml(JOB_TEMPLATES)
    surveys = {jt["key"]: survey(jt["key"], jt["name"]) for jt in data["awx_coder_job_templates"]}
    header = (
        "---\n"
        "# GENERATED by tests/awx/awx_surveys.py from roles/*/meta/argument_specs.yml: do not edit by hand.\n"
        "# Regenerate with `.venv/bin/python tests/awx/awx_surveys.py --write` after changing an argument\n"
        "# spec (tests/awx/test_awx_configure.py fails while this file is stale). The surveys ask the\n"
        "# non-secret scalar options; see docs/awx.md for the rest.\n"
    )
    body = yaml.dump({"awx_coder_surveys": surveys}, Dumper=_Dumper, sort_keys=False, width=120, allow_unicode=True)
    return header + body


def main(argv):
    text = render()
    if "--write" in argv:
        SURVEYS.write_text(text, encoding="utf-8")
        print(f"wrote {SURVEYS.relative_to(REPO)}")
    else:
        sys.stdout.write(text)
    return 0


if __name__ == "__main__":
    sys.exit(main(sys.argv[1:]))
