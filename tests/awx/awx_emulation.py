# Copyright (c) 2025, coderops maintainers
# GNU General Public License v3.0+ (see LICENSE or https://www.gnu.org/licenses/gpl-3.0.txt)
# SPDX-License-Identifier: GPL-3.0-or-later
"""What AWX does to start a job, done here without an AWX server (none is available).

AWX (awx/main/tasks/jobs.py, awx/main/models/credential/__init__.py) turns a job template, its
credentials and the survey answers into an ansible-runner *private data directory* and runs
ansible-runner in it. This module builds that directory the same way from this repository's AWX
definitions (playbooks/awx/*.yml), so that the tests run the real job template's playbook with
the real injected environment:

* ``project/``: the project checkout (a copy of the repository's files, as a fresh clone has them);
* ``inventory/hosts``: an executable script that prints the inventory as JSON, as AWX writes it;
* ``env/envvars``: AWX's job environment plus every credential's injected variables (custom
  credential types: their ``env`` injectors rendered with Jinja's immutable sandbox, ``file``
  injectors written to 0600 files in ``env/`` first and named by ``tower.filename.<name>``; the
  built-in Kubernetes bearer-token type: K8S_AUTH_HOST, K8S_AUTH_API_KEY, K8S_AUTH_VERIFY_SSL,
  K8S_AUTH_SSL_CA_CERT);
* ``env/extravars``: the job template's extra variables, then the survey defaults that pass the
  survey's own validation, then the answers (AWX's precedence);
* ``env/passwords``: the prompts AWX answers (none of them is answered here: no machine credential);
* ``env/settings`` and ``env/cmdline``: job timeout, verbosity and ``--diff``.

What differs from AWX: no container (the job runs on this machine, the paths are host paths, not
/runner/...), and ``stdout`` is kept (AWX suppresses the file and keeps only the job events).
"""

from __future__ import annotations

import json
import os
import shutil
import stat
import subprocess
import tempfile
from pathlib import Path

from awx_surveys import REPO, load_yaml
from jinja2 import sandbox

AWX_DIR = REPO / "playbooks" / "awx"

# AWX's password prompts (awx/main/tasks/jobs.py, get_password_prompts); a job without machine or
# vault credential answers each with an empty string.
PASSWORD_PROMPTS = [
    r"Enter passphrase for .*:\s*?$",
    r"Bad passphrase, try again for .*:\s*?$",
    r"sudo password.*:\s*?$",
    r"SUDO password.*:\s*?$",
    r"BECOME password.*:\s*?$",
    r"SSH password:\s*?$",
    r"Password:\s*?$",
    r"Vault password:\s*?$",
]


def awx_definitions():
    """The vars files of playbooks/awx_configure.yml, merged (the !unsafe strings as plain strings)."""
    data = {}
    for name in ("settings.yml", "credential_types.yml", "job_templates.yml", "surveys.yml"):
        data.update(load_yaml(AWX_DIR / name))
    return data


def job_template(defs, key):
    return next(jt for jt in defs["awx_coder_job_templates"] if jt["key"] == key)


def job_template_extra_vars(defs, key):
    """The extra variables playbooks/awx_configure.yml gives the job template: none (the roles read
    the credentials' variables themselves)."""
    job_template(defs, key)
    return {}


# -- credentials ---------------------------------------------------------------------------------

class _Namespace:
    pass


def inject_custom_credential(credential_type, inputs, private_data_dir):
    """AWX's CredentialType.inject_credential for a custom type: returns the injected env."""
    env_dir = Path(private_data_dir) / "env"
    env_dir.mkdir(parents=True, exist_ok=True)
    tower = _Namespace()
    namespace = {"tower": tower}
    fields = credential_type["inputs"].get("fields", [])
    for field_name, value in inputs.items():
        if isinstance(value, bool):
            namespace[field_name] = value
        elif len(value):
            namespace[field_name] = value
    for field in fields:
        if field.get("type") == "boolean" and field["id"] not in inputs:
            namespace[field["id"]] = False
    jinja = sandbox.ImmutableSandboxedEnvironment()
    for label, template in credential_type["injectors"].get("file", {}).items():
        data = jinja.from_string(template).render(**namespace)
        fd, path = tempfile.mkstemp(dir=env_dir)
        with os.fdopen(fd, "w") as fh:
            fh.write(data)
        os.chmod(path, stat.S_IRUSR | stat.S_IWUSR)
        if "." not in label:
            tower.filename = path
        else:
            if not hasattr(tower, "filename"):
                tower.filename = _Namespace()
            setattr(tower.filename, label.split(".", 1)[1], path)
    env = {}
    for name, template in credential_type["injectors"].get("env", {}).items():
        if name.startswith("ANSIBLE_") or name in ENV_BLOCKLIST:
            continue  # AWX ignores them (and refuses them when the type is saved)
        env[name] = jinja.from_string(template).render(**namespace)
    return env


def inject_kubernetes_bearer_token(inputs, private_data_dir):
    """AWX's built-in "OpenShift or Kubernetes API Bearer Token" injector."""
    env = {"K8S_AUTH_HOST": inputs.get("host", ""), "K8S_AUTH_API_KEY": inputs.get("bearer_token", "")}
    if inputs.get("verify_ssl") and "ssl_ca_cert" in inputs:
        env["K8S_AUTH_VERIFY_SSL"] = "True"
        fd, path = tempfile.mkstemp(dir=Path(private_data_dir) / "env")
        with os.fdopen(fd, "w") as fh:
            os.chmod(path, stat.S_IRUSR | stat.S_IWUSR)
            fh.write(inputs["ssl_ca_cert"])
        env["K8S_AUTH_SSL_CA_CERT"] = path
    else:
        env["K8S_AUTH_VERIFY_SSL"] = "False"
    return env


# Environment variables AWX refuses in credential injectors, besides every name that starts with
# ANSIBLE_ (ENV_BLOCKLIST in awx/main/constants.py; the names known here, which the credential types
# of this collection must not use either).
ENV_BLOCKLIST = frozenset((
    "VIRTUAL_ENV", "PATH", "PYTHONPATH", "JOB_ID", "INVENTORY_ID", "INVENTORY_SOURCE_ID",
    "INVENTORY_UPDATE_ID", "AD_HOC_COMMAND_ID", "REST_API_URL", "REST_API_TOKEN", "MAX_EVENT_RES",
    "CALLBACK_QUEUE", "CALLBACK_CONNECTION", "CACHE", "JOB_CALLBACK_DEBUG", "INVENTORY_HOSTVARS",
    "AWX_HOST", "PROJECT_REVISION", "SUPERVISOR_CONFIG_PATH",
))


# -- surveys -------------------------------------------------------------------------------------

def survey_answer_errors(question, data):
    """AWX's survey element validation (awx/main/models/mixins.py), for one question."""
    var, kind = question["variable"], question["type"]
    if var not in data:
        return [f"{var} is required"] if question.get("required") else []
    value = data[var]
    errors = []
    if kind in ("text", "textarea", "password"):
        if not isinstance(value, str):
            return [f"{var}: expected a string"]
        if question.get("min") not in ("", None) and len(value) < int(question["min"]):
            errors.append(f"{var}: shorter than {question['min']}")
        if question.get("max") not in ("", None) and len(value) > int(question["max"]):
            errors.append(f"{var}: longer than {question['max']}")
    elif kind in ("integer", "float"):
        ok_types = (int,) if kind == "integer" else (int, float)
        if isinstance(value, bool) or not isinstance(value, ok_types):
            return [f"{var}: expected {kind}"]
        if question.get("min") not in ("", None) and value < question["min"]:
            errors.append(f"{var}: below {question['min']}")
        if question.get("max") not in ("", None) and value > question["max"]:
            errors.append(f"{var}: above {question['max']}")
    elif kind == "multiplechoice":
        choices = question["choices"]
        if isinstance(choices, str):
            choices = choices.split("\n")
        if value not in choices:
            errors.append(f"{var}: {value!r} is not one of {choices}")
    return errors


def launch_extra_vars(defs, key, answers=None, launch_vars=None):
    """The job's extra variables: job template extra vars, valid survey defaults, the answers, and
    launch-time extra variables (ask_variables_on_launch); the answers are validated as AWX does."""
    extra = job_template_extra_vars(defs, key)
    survey = defs["awx_coder_surveys"][key]
    defaults = {}
    for q in survey["spec"]:
        if q.get("default") is not None and not survey_answer_errors(q, {q["variable"]: q["default"]}):
            defaults[q["variable"]] = q["default"]
    extra.update(defaults)
    answers = dict(answers or {})
    for q in survey["spec"]:
        errors = survey_answer_errors(q, answers)
        if errors:
            raise ValueError(f"AWX would refuse the survey answers: {errors}")
    unknown = set(answers) - {q["variable"] for q in survey["spec"]}
    if unknown:
        raise ValueError(f"not survey questions of {key}: {sorted(unknown)}")
    extra.update(answers)
    extra.update(launch_vars or {})
    return extra


# -- the private data directory ------------------------------------------------------------------

def copy_project(dest):
    """The project checkout: the repository's files as git has them (tracked and not ignored)."""
    out = subprocess.run(["git", "-C", str(REPO), "ls-files", "-z", "--cached", "--others", "--exclude-standard"],
                         capture_output=True, check=True)
    for rel in sorted(set(filter(None, out.stdout.decode().split("\0")))):
        src = REPO / rel
        target = Path(dest) / rel
        if not src.exists() and not src.is_symlink():
            continue  # deleted in the work tree
        target.parent.mkdir(parents=True, exist_ok=True)
        if src.is_symlink():
            os.symlink(os.readlink(src), target)
        else:
            shutil.copy2(src, target)


def write_inventory(inventory_dir, host_vars):
    """AWX's inventory: an executable script that prints the hosts as JSON."""
    inventory_dir = Path(inventory_dir)
    inventory_dir.mkdir(parents=True, exist_ok=True)
    data = {"all": {"hosts": ["localhost"], "vars": {}}, "_meta": {"hostvars": {"localhost": host_vars}}}
    script = inventory_dir / "hosts"
    script.write_text(f"#! /usr/bin/env python3\n# -*- coding: utf-8 -*-\nprint({json.dumps(data)!r})\n")
    script.chmod(0o700)


def build_private_data_dir(root, defs, key, envvars, extravars, verbosity=0, diff=False, job_id=1):
    """Lay out root as AWX lays out a job's private data directory."""
    root = Path(root)
    (root / "env").mkdir(parents=True, exist_ok=True)
    copy_project(root / "project")
    write_inventory(root / "inventory", defs["awx_coder_inventory_host_vars"])
    job_env = {
        # What AWX sets for every playbook job (a subset; none of it is a secret).
        "JOB_ID": str(job_id),
        "INVENTORY_ID": "1",
        "PROJECT_REVISION": "emulated",
        "AWX_HOST": "https://awx.invalid",
        "ANSIBLE_RETRY_FILES_ENABLED": "False",
        "ANSIBLE_HOST_KEY_CHECKING": "False",
    }
    job_env.update(envvars)
    _write_private(root / "env" / "envvars", json.dumps(job_env))
    _write_private(root / "env" / "extravars", json.dumps(extravars))
    _write_private(root / "env" / "passwords", json.dumps({p: "" for p in PASSWORD_PROMPTS}))
    _write_private(root / "env" / "settings", json.dumps({
        "job_timeout": 0, "suppress_ansible_output": True, "suppress_output_file": False, "pexpect_timeout": 5,
    }))
    args = []
    if verbosity:
        args.append("-" + "v" * verbosity)
    if diff:
        args.append("--diff")
    if args:
        _write_private(root / "env" / "cmdline", " ".join(args))
    return root


def _write_private(path, text):
    fd = os.open(path, os.O_WRONLY | os.O_CREAT | os.O_TRUNC, 0o600)
    with os.fdopen(fd, "w") as fh:
        fh.write(text)
