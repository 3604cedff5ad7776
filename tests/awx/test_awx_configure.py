# Copyright (c) 2025, coderops maintainers
# GNU General Public License v3.0+ (see LICENSE or https://www.gnu.org/licenses/gpl-3.0.txt)
# SPDX-License-Identifier: GPL-3.0-or-later
"""playbooks/awx_configure.yml and its AWX definitions, checked offline (no AWX server exists here).

* the playbook passes ``--syntax-check``, ansible-lint (production profile) and yamllint;
* every task's arguments, templated by Ansible itself with the playbook's real variables, are
  validated against the argument spec of the awx.awx module the task calls, taken from the
  installed awx.awx collection (24.6.1, bundled with ansible 12.3.0);
* the survey specs pass AWX's survey-spec validation, ask no secret, and ask every non-secret
  scalar option of the roles' argument specs that no credential feeds (surveys.yml is current);
* the credential types pass AWX's schema and injector checks (every template renders with the
  defined fields only, no ANSIBLE_* or reserved variable);
* the job templates' extra variables hold no value of a secret: only lookups of environment
  variables that the credential types inject.
"""

from __future__ import annotations

import copy
import importlib
import json
import re
import subprocess

import jsonschema
import pytest
import yaml
from awx_emulation import ENV_BLOCKLIST, awx_definitions
from awx_surveys import REPO, argument_spec, credential_variable, entry_points, render
from conftest import VENV_BIN
from jinja2 import StrictUndefined, sandbox

PLAYBOOK = REPO / "playbooks" / "awx_configure.yml"
MY_YAML = ["playbooks/awx_configure.yml", "playbooks/awx", "execution-environment.yml",
           "changelogs/fragments/6-awx.yml"]
MY_PYTHON = ["tests/awx"]
# Extra variables that switch every optional task on, with dummy (not secret) values.
CONFIGURE_VARS = {
    "awx_coder_project_scm_url": "https://git.example.invalid/ops/coderops.deploy.git",
    "awx_coder_ee_image": "registry.example.invalid/coderops/deploy-ee:0.1.0",
    "awx_coder_project_scm_credential": "Git",
    "awx_coder_ee_registry_credential": "Registry",
    "awx_coder_create_credentials": True,
    "awx_coder_pg_credential_inputs": {"host": "db.example.invalid", "user": "coder", "database": "coder",
                                       "password": "dummy-not-a-secret"},
    "awx_coder_kube_credential_inputs": {"kubeconfig": "apiVersion: v1\nkind: Config\n"},
}


def run(*cmd, **kwargs):
    return subprocess.run([str(c) for c in cmd], capture_output=True, text=True, cwd=REPO, timeout=300, **kwargs)


# -- the playbook's tasks, templated by Ansible ---------------------------------------------------

def _plain(value):
    """Ansible's tagged values as plain JSON types (what the module receives)."""
    return json.loads(json.dumps(value))


_LOADER_READY = []


def _init_plugin_loader():
    from ansible.plugins.loader import init_plugin_loader

    if not _LOADER_READY:
        init_plugin_loader()
        _LOADER_READY.append(True)


def rendered_tasks(extra_vars):
    """[(task name, action, args)] of awx_configure.yml, templated the way ansible-playbook does."""
    from ansible import context
    from ansible.inventory.manager import InventoryManager
    from ansible.module_utils.common.collections import ImmutableDict
    from ansible.parsing.dataloader import DataLoader
    from ansible.playbook import Playbook
    from ansible.template import Templar
    from ansible.vars.manager import VariableManager

    context.CLIARGS = ImmutableDict({})
    _init_plugin_loader()
    loader = DataLoader()
    inventory = InventoryManager(loader=loader, sources=["localhost,"])
    variables = VariableManager(loader=loader, inventory=inventory)
    variables._extra_vars = copy.deepcopy(extra_vars)
    host = inventory.get_host("localhost")
    out = []
    for play in Playbook.load(str(PLAYBOOK), variable_manager=variables, loader=loader).get_plays():
        for block in play.compile():
            for task in block.block:
                if task.action in ("meta", "ansible.builtin.meta"):
                    continue
                task_vars = variables.get_vars(play=play, host=host, task=task)
                items = [None]
                if task.loop:
                    items = Templar(loader=loader, variables=task_vars).template(task.loop)
                for item in items:
                    item_vars = dict(task_vars)
                    if item is not None:
                        item_vars[task.loop_control.loop_var if task.loop_control else "item"] = item
                    args = Templar(loader=loader, variables=item_vars).template(task.args)
                    out.append((task.get_name(), task.resolved_action or task.action, _plain(args)))
    return out


class _Captured(Exception):
    pass


def awx_module_spec(module_name):
    """argument_spec (with the controller auth options) and the other AnsibleModule checks of an
    awx.awx module, read by running its main() up to the point where it builds the module."""
    _init_plugin_loader()
    mod = importlib.import_module(f"ansible_collections.awx.awx.plugins.modules.{module_name}")
    base = mod.ControllerAPIModule
    captured = {}

    class Capture:
        def __init__(self, argument_spec=None, **kwargs):
            spec = {}
            spec.update(copy.deepcopy(base.AUTH_ARGSPEC))
            spec.update(copy.deepcopy(argument_spec))
            captured.update(spec=spec, kwargs=kwargs)
            raise _Captured()

    mod.ControllerAPIModule = Capture
    try:
        mod.main()
    except _Captured:
        pass
    finally:
        mod.ControllerAPIModule = base
    assert captured, f"awx.awx.{module_name}: no argument spec captured"
    return captured["spec"], captured["kwargs"]


def validate_against_module(module_name, args):
    from ansible.module_utils.common.arg_spec import ArgumentSpecValidator

    spec, kwargs = awx_module_spec(module_name)
    checks = {k: v for k, v in kwargs.items() if k in (
        "mutually_exclusive", "required_together", "required_one_of", "required_if", "required_by")}
    result = ArgumentSpecValidator(spec, **checks).validate(args)
    return result.error_messages, result.validated_parameters


@pytest.fixture(scope="module")
def tasks():
    return rendered_tasks(CONFIGURE_VARS)


@pytest.fixture(scope="module")
def defs():
    return awx_definitions()


def test_syntax_check():
    proc = run(VENV_BIN / "ansible-playbook", "--syntax-check", PLAYBOOK)
    assert proc.returncode == 0, proc.stdout + proc.stderr


def test_every_awx_task_is_checked(tasks):
    actions = [a for _, a, _ in tasks]
    awx = [a for a in actions if a.startswith("awx.awx.")]
    assert set(actions) - set(awx) == {"ansible.builtin.assert"}, actions
    # credential type x2, credential x2, EE, project, inventory, host, 3 job templates
    assert len(awx) == 11, awx


def test_module_arguments_match_awx_argument_specs(tasks):
    failures = []
    for name, action, args in tasks:
        if not action.startswith("awx.awx."):
            continue
        errors, _ = validate_against_module(action.split(".")[-1], args)
        if errors:
            failures.append(f"{name} ({action}): {errors}")
    assert not failures, "\n".join(failures)


def test_the_argument_check_can_fail():
    """The validator refuses a misspelled option and a wrong type (so the test above can fail)."""
    errors, _ = validate_against_module("job_template", {"name": "x", "survey_enabeld": True})
    assert any("survey_enabeld" in e for e in errors), errors
    errors, _ = validate_against_module("credential_type", {"name": "x", "injectors": "not a dict"})
    assert errors
    errors, _ = validate_against_module("credential", {"name": "x", "credential_type": "y",
                                                       "organization": "o", "user": "u"})
    assert any("mutually exclusive" in e for e in errors), errors


def test_secret_inputs_are_no_log_in_the_modules(tasks):
    """The credential inputs go to an option the awx.awx module marks no_log, in a no_log task."""
    spec, _ = awx_module_spec("credential")
    assert spec["inputs"].get("no_log") is True
    text = PLAYBOOK.read_text()
    for block in re.split(r"\n    - name: ", text):
        if "awx.awx.credential:" in block:
            assert "no_log: true" in block, block


def test_jinja_reaches_awx_untemplated(tasks):
    """The injector templates reach AWX as text, not rendered on the machine that runs
    awx_configure.yml; the job templates carry no extra variables."""
    by_name = {}
    for _, action, args in tasks:
        by_name.setdefault(action, []).append(args)
    pg = next(a for a in by_name["awx.awx.credential_type"] if a["name"] == "Coder PostgreSQL")
    assert pg["injectors"]["env"]["CODER_PG_PASSWORD"] == "{{ password }}"
    deploy = next(a for a in by_name["awx.awx.job_template"] if a["name"] == "Deploy Coder")
    assert deploy["extra_vars"] == {}
    host = by_name["awx.awx.host"][0]
    assert host["variables"]["ansible_python_interpreter"] == "{{ ansible_playbook_python }}"


# -- surveys ------------------------------------------------------------------------------------

SURVEY_TYPES = {"text": str, "textarea": str, "password": str, "multiplechoice": str, "multiselect": str,
                "integer": int, "float": float}


def awx_survey_errors(spec):
    """AWX's checks of a survey spec (JobTemplateSurveySpec._validate_spec_data in awx/api/views)."""
    errors = []
    for field, kind in (("name", str), ("description", str), ("spec", list)):
        if not isinstance(spec.get(field), kind):
            errors.append(f"survey field {field!r} missing or not a {kind.__name__}")
    if errors:
        return errors
    if not spec["spec"]:
        return ["'spec' has no items"]
    seen = set()
    for idx, q in enumerate(spec["spec"]):
        if not isinstance(q, dict):
            errors.append(f"question {idx} is not an object")
            continue
        for field in ("type", "question_name", "variable", "required"):
            want = bool if field == "required" else str
            if not isinstance(q.get(field), want):
                errors.append(f"question {idx}: {field!r} missing or not a {want.__name__}")
        if q.get("variable") in seen:
            errors.append(f"question {idx}: variable {q.get('variable')} duplicated")
        seen.add(q.get("variable"))
        kind = q.get("type")
        if kind not in SURVEY_TYPES:
            errors.append(f"question {idx}: type {kind!r} is not an AWX question type")
            continue
        default = q.get("default")
        wrong_type = not isinstance(default, SURVEY_TYPES[kind]) or isinstance(default, bool)
        if default not in (None, "") and wrong_type:
            errors.append(f"question {idx}: default {default!r} is not a {kind}")
        for key in ("min", "max"):
            if key in q and q[key] is not None and (not isinstance(q[key], int) or isinstance(q[key], bool)):
                errors.append(f"question {idx}: {key} is not an integer")
        if kind in ("multiplechoice", "multiselect"):
            if "choices" not in q:
                errors.append(f"question {idx}: {kind} without choices")
            elif default not in (None, ""):
                defaults = default.splitlines() if isinstance(default, str) else default
                if kind == "multiplechoice" and len(defaults) > 1:
                    errors.append(f"question {idx}: more than one default")
                if any(d not in q["choices"] for d in defaults):
                    errors.append(f"question {idx}: default not among the choices")
        if isinstance(default, str) and default.startswith("$encrypted$"):
            errors.append(f"question {idx}: $encrypted$ default")
    return errors


def test_surveys_file_is_current():
    current = (REPO / "playbooks" / "awx" / "surveys.yml").read_text()
    assert current == render(), "surveys.yml is stale: run .venv/bin/python tests/awx/awx_surveys.py --write"


@pytest.mark.parametrize("key", ["deploy_coder", "rollback_coder", "uninstall_coder"])
def test_survey_spec_passes_awx_validation(tasks, key, defs):
    spec = next(a["survey_spec"] for _, action, a in tasks
                if action == "awx.awx.job_template" and a["playbook"] == f"playbooks/{key}.yml")
    assert spec == json.loads(json.dumps(defs["awx_coder_surveys"][key]))
    assert awx_survey_errors(spec) == []


def test_the_survey_check_can_fail():
    good = {"name": "n", "description": "", "spec": [
        {"type": "integer", "question_name": "q", "variable": "v", "required": False, "default": 3}]}
    assert awx_survey_errors(good) == []
    for change in ({"type": "boolean"}, {"default": "3"}, {"required": "no"}, {"min": "1"}):
        bad = copy.deepcopy(good)
        bad["spec"][0].update(change)
        assert awx_survey_errors(bad), change
    bad = copy.deepcopy(good)
    bad["spec"][0].update(type="multiplechoice", choices=["a"], default="b")
    assert awx_survey_errors(bad)


@pytest.mark.parametrize("key", ["deploy_coder", "rollback_coder", "uninstall_coder"])
def test_survey_asks_no_secret_and_every_other_scalar_option(key, defs):
    questions = {q["variable"]: q for q in defs["awx_coder_surveys"][key]["spec"]}
    points = entry_points(REPO / "playbooks" / f"{key}.yml")
    assert points, key
    options = {}
    for role, point in points:
        options.update(argument_spec(role, point))
    for name, option in options.items():
        secret = bool(option.get("no_log"))
        scalar = option.get("type", "str") in ("str", "int", "float", "bool")
        should_ask = scalar and not secret and not credential_variable(option)
        assert (name in questions) == should_ask, f"{key}: {name} (no_log={secret}, type={option.get('type')})"
        if name in questions:
            default = option.get("default")
            q = questions[name]
            if option.get("type") == "bool":
                assert q["default"] == ("true" if default else "false")
            elif default not in (None, ""):
                assert q["default"] == default, name
    # Names that look secret but are not: Secret *names* and a switch.
    not_secret = {"coder_db_password_secret", "helm_release_password_secret", "coder_db_no_password_env"}
    for q in questions.values():
        assert q["type"] != "password", q
        assert not re.search(r"passw|secret_key|token|private", q["variable"]) or q["variable"] in not_secret, q
    # The password is never asked; the credential feeds it.
    assert "coder_db_password" not in questions


# -- credential types ----------------------------------------------------------------------------

# AWX's JSON schema of a credential type's inputs and injectors (CredentialTypeInputField and
# CredentialTypeInjectorField in awx/main/fields.py), restated.
INPUTS_SCHEMA = {
    "type": "object", "additionalProperties": False,
    "properties": {
        "required": {"type": "array", "items": {"type": "string"}},
        "fields": {"type": "array", "items": {
            "type": "object", "additionalProperties": False, "required": ["id", "label"],
            "properties": {
                "type": {"enum": ["string", "boolean"]},
                "format": {"enum": ["ssh_private_key", "url"]},
                "choices": {"type": "array", "minItems": 1, "items": {"type": "string"}, "uniqueItems": True},
                "id": {"type": "string", "pattern": "^[a-zA-Z_]+[a-zA-Z0-9_]*$"},
                "label": {"type": "string"}, "help_text": {"type": "string"},
                "multiline": {"type": "boolean"}, "secret": {"type": "boolean"},
                "ask_at_runtime": {"type": "boolean"}, "default": {},
            }}},
    },
}
INJECTORS_SCHEMA = {
    "type": "object", "additionalProperties": False,
    "properties": {
        "file": {"type": "object", "additionalProperties": False,
                 "patternProperties": {r"^template(\.[a-zA-Z_]+[a-zA-Z0-9_]*)?$": {"type": "string"}}},
        "env": {"type": "object", "additionalProperties": False,
                "patternProperties": {"^[a-zA-Z_]+[a-zA-Z0-9_]*$": {"type": "string", "pattern": "^[\x00-\x7f]*$"}}},
        "extra_vars": {"type": "object", "additionalProperties": False,
                       "patternProperties": {"^[a-zA-Z_]+[a-zA-Z0-9_]*$": {"type": "string"}}},
    },
}


class _Filenames:
    pass


def credential_type_errors(ct):
    errors = []
    for schema, value in ((INPUTS_SCHEMA, ct["inputs"]), (INJECTORS_SCHEMA, ct["injectors"])):
        errors += [e.message for e in jsonschema.Draft4Validator(schema).iter_errors(value)]
    if ct.get("kind") not in ("cloud", "net"):
        errors.append(f"kind {ct.get('kind')!r}: custom credential types are cloud or net")
    fields = ct["inputs"].get("fields", [])
    ids = [f["id"] for f in fields]
    if len(ids) != len(set(ids)) or "tower" in ids:
        errors.append("field ids must be unique and not 'tower'")
    for f in fields:
        kind = f.get("type", "string")
        if "default" in f and not isinstance(f["default"], {"string": str, "boolean": bool}[kind]):
            errors.append(f"{f['id']}: default is not a {kind}")
        if kind != "string" and any(k in f for k in ("choices", "multiline", "format", "secret")):
            errors.append(f"{f['id']}: choices/multiline/format/secret on a {kind}")
    for r in ct["inputs"].get("required", []):
        if r not in ids:
            errors.append(f"required {r} is no field")
    # Every template renders with the defined fields only (AWX renders them with StrictUndefined).
    namespace = {i: "EXAMPLE" for i in ids}
    names = list(ct["injectors"].get("file", {}))
    tower = _Filenames()
    if "template" in names:
        if len(names) > 1:
            errors.append("single-file and multi-file injector syntax mixed")
        tower.filename = "EXAMPLE_FILENAME"
    else:
        tower.filename = _Filenames()
        for n in names:
            setattr(tower.filename, n.split(".", 1)[1], "EXAMPLE_FILENAME")
    namespace["tower"] = tower
    jinja = sandbox.ImmutableSandboxedEnvironment(undefined=StrictUndefined)
    for kind, injector in ct["injectors"].items():
        for key, template in injector.items():
            if kind == "env" and (key.startswith("ANSIBLE_") or key in ENV_BLOCKLIST):
                errors.append(f"env {key} is not allowed in a credential")
            try:
                jinja.from_string(template).render(namespace)
            except Exception as exc:  # noqa: BLE001 - any render error is a finding
                errors.append(f"{kind}.{key}: {exc}")
    return errors


@pytest.mark.parametrize("var", ["awx_coder_pg_credential_type", "awx_coder_kubeconfig_credential_type"])
def test_credential_type_passes_awx_validation(defs, var):
    assert credential_type_errors(defs[var]) == []


def test_the_credential_type_check_can_fail(defs):
    bad = copy.deepcopy(defs["awx_coder_pg_credential_type"])
    bad["injectors"]["env"]["ANSIBLE_CONFIG"] = "{{ host }}"
    bad["injectors"]["env"]["CODER_PG_X"] = "{{ no_such_field }}"
    bad["inputs"]["fields"][0]["secret"] = "yes"
    errors = credential_type_errors(bad)
    assert any("ANSIBLE_CONFIG" in e for e in errors)
    assert any("no_such_field" in e for e in errors)
    assert any("'yes' is not of type 'boolean'" in e for e in errors), errors


def test_pg_credential_type_injects_the_documented_variables(defs):
    """CODER_PG_* are the variables the modules' doc fragment documents, secrets are secret inputs."""
    from ansible_collections.coderops.deploy.plugins.module_utils._pg_connection import ENV_VARS

    ct = defs["awx_coder_pg_credential_type"]
    assert set(ct["injectors"]["env"]) == set(ENV_VARS.values())
    secret = {f["id"] for f in ct["inputs"]["fields"] if f.get("secret")}
    assert {"password", "sslrootcert", "sslcert", "sslkey"} <= secret
    multiline = {f["id"] for f in ct["inputs"]["fields"] if f.get("multiline")}
    assert {"sslrootcert", "sslcert", "sslkey"} <= multiline
    for name in ("sslrootcert", "sslcert", "sslkey"):
        assert ct["injectors"]["file"][f"template.{name}"] == "{{ " + name + " }}"
        env = next(k for k, v in ct["injectors"]["env"].items() if f"tower.filename.{name}" in v)
        assert env.startswith("CODER_PG_SSL")


# -- what the roles read by themselves -------------------------------------------------------------

# AWX's built-in "OpenShift or Kubernetes API Bearer Token" credential type (awx/main/models/credential/
# injectors.py, kubernetes_bearer_token).
AWX_BEARER_TOKEN_ENV = {"K8S_AUTH_HOST", "K8S_AUTH_API_KEY", "K8S_AUTH_VERIFY_SSL", "K8S_AUTH_SSL_CA_CERT"}
ROLE_DEFAULT_LOOKUP = re.compile(
    r"^\{\{ lookup\('ansible\.builtin\.env', '([A-Z0-9_]+)'\)( \| default\(('[^']*'|[0-9]+), true\))? \}\}$")


def _deploy_options():
    options = {}
    for role, point in entry_points(REPO / "playbooks" / "deploy_coder.yml"):
        options.update(argument_spec(role, point))
    return options


def test_job_templates_carry_no_extra_variables(defs):
    assert not any(k.endswith("_extra_vars") for k in defs), "the env-lookup mapping is back in playbooks/awx"
    text = (REPO / "playbooks" / "awx_configure.yml").read_text()
    assert "extra_vars: {}" in text


def test_every_injected_pg_variable_is_a_role_default(defs):
    """Each CODER_PG_* variable of the "Coder PostgreSQL" credential, and K8S_AUTH_KUBECONFIG of the
    "Coder Kubeconfig" credential, is the default of the role variable it feeds, so that a job
    template needs no mapping. K8S_AUTH_HOST/API_KEY/VERIFY_SSL/SSL_CA_CERT are read by the modules."""
    from ansible_collections.coderops.deploy.plugins.module_utils._kube import AUTH_ENV
    from ansible_collections.coderops.deploy.plugins.module_utils._pg_connection import ENV_VARS

    injected = set(defs["awx_coder_pg_credential_type"]["injectors"]["env"])
    injected |= set(defs["awx_coder_kubeconfig_credential_type"]["injectors"]["env"])
    fed = {}
    for name, option in _deploy_options().items():
        var = credential_variable(option)
        if var:
            assert ROLE_DEFAULT_LOOKUP.match(option["default"]), f"{name}: {option['default']!r}"
            assert var in injected, f"{name} defaults to {var}, which no credential type injects"
            fed[var] = name
    assert set(fed) == injected, f"injected but read by no role variable: {injected - set(fed)}"
    assert fed["CODER_PG_PASSWORD"] == "coder_db_password"
    assert _deploy_options()["coder_db_password"]["no_log"] is True
    assert set(ENV_VARS.values()) <= set(fed)
    # The bearer-token credential's variables are the modules' own fallbacks (kubernetes.core's too).
    assert AWX_BEARER_TOKEN_ENV <= set(AUTH_ENV.values())


def test_password_reaches_the_job_only_from_the_credential(defs):
    ct = defs["awx_coder_pg_credential_type"]
    assert ct["injectors"]["env"]["CODER_PG_PASSWORD"] == "{{ password }}"
    assert "extra_vars" not in ct["injectors"]
    assert credential_variable(_deploy_options()["coder_db_password"]) == "CODER_PG_PASSWORD"


# -- lint -----------------------------------------------------------------------------------------

def test_yamllint():
    proc = run(VENV_BIN / "yamllint", "-s", *MY_YAML)
    assert proc.returncode == 0, proc.stdout + proc.stderr


def test_ansible_lint_production():
    proc = run(VENV_BIN / "ansible-lint", "--nocolor", "--profile", "production", "playbooks/awx_configure.yml",
               "playbooks/awx")
    assert proc.returncode == 0, proc.stdout[-5000:] + proc.stderr[-5000:]
    assert "passed" in (proc.stdout + proc.stderr)


def test_ruff():
    proc = run(VENV_BIN / "ruff", "check", *MY_PYTHON)
    assert proc.returncode == 0, proc.stdout + proc.stderr


def test_changelog_fragment():
    data = yaml.safe_load((REPO / "changelogs" / "fragments" / "6-awx.yml").read_text())
    assert data and set(data) <= {"major_changes", "minor_changes", "bugfixes", "known_issues", "release_summary"}
