# Copyright (c) 2025, coderops maintainers
# GNU General Public License v3.0+ (see LICENSE or https://www.gnu.org/licenses/gpl-3.0.txt)
# SPDX-License-Identifier: GPL-3.0-or-later
"""No run prints or stores the password: a canary password (a PostgreSQL role of its own on the
test bed's main server, so that the whole deployment really logs in with it) is searched for in
every form in everything the runs leave: -vvvv output with --diff and --check --diff, the JSON
callback, ANSIBLE_LOG_PATH, the jsonfile fact cache, temporary directories, process command
lines and environments while the runs go, the values of every Helm revision, every decoded
release Secret, annotations, ConfigMaps, Events, and ansible-runner's (AWX's) job events."""

from __future__ import annotations

import json
import os
import shutil
import subprocess
import tempfile
import uuid
from pathlib import Path

import psycopg2
import pytest
from conftest import HELMS, delete_namespace, new_namespace
from helpers import (
    ENV,
    HERE,
    REPO,
    VENV_BIN,
    history,
    kubectl,
    module_way,
    namespace_hits,
    pg_login,
    playbook,
    playbook_env,
    ran_the_module_way,
    secret_data,
)
from leak_scan import ProcWatcher, find, forms, make_canary, scan_tree

MAIN = {k: ENV[f"CODER_TEST_PG_MAIN_{k}"] for k in ("HOST", "PORT", "DATABASE", "SSLROOTCERT", "SOCKET_DIR")}


def _superuser():
    return psycopg2.connect(host=MAIN["SOCKET_DIR"], port=MAIN["PORT"], user="postgres", dbname="postgres")


@pytest.fixture(scope="session")
def canary():
    """A login role with an awkward random password, a private directory holding its password
    file, and the places every run writes to (log, fact cache, temporary directories)."""
    password = make_canary()
    role = f"coderops_canary_{uuid.uuid4().hex[:8]}"
    conn = _superuser()
    conn.autocommit = True
    with conn.cursor() as cur:
        cur.execute(f'CREATE ROLE "{role}" LOGIN PASSWORD %s', (password,))
    root = Path(tempfile.mkdtemp(prefix="coderops-it-leak-"))
    secret_dir = root / "secret"
    secret_dir.mkdir(mode=0o700)
    pw_file = secret_dir / "pg-password"
    fd = os.open(pw_file, os.O_WRONLY | os.O_CREAT, 0o600)
    os.write(fd, password.encode())
    os.close(fd)
    padded = secret_dir / "pg-password-padded"
    fd = os.open(padded, os.O_WRONLY | os.O_CREAT, 0o600)
    os.write(fd, (password + "\n").encode())
    os.close(fd)
    places = {}
    for name in ("log", "facts", "tmp", "local_tmp", "remote_tmp", "runner"):
        places[name] = root / name
        places[name].mkdir()
    yield {"password": password, "role": role, "file": pw_file, "padded": padded, "root": root,
           "secret_dir": secret_dir, "places": places, "needles": forms(password), "outputs": {},
           "proc_hits": {}, "samples": 0}
    with conn.cursor() as cur:
        cur.execute(f'DROP ROLE IF EXISTS "{role}"')
    conn.close()
    shutil.rmtree(root, ignore_errors=True)


def _env(canary, namespace, binary, password_file=None, **extra):
    p = canary["places"]
    env = {
        "CODER_TEST_PG_PASSWORD_FILE": str(password_file or canary["file"]),
        "ANSIBLE_LOG_PATH": str(p["log"] / "ansible.log"),
        "ANSIBLE_CACHE_PLUGIN": "ansible.builtin.jsonfile",
        "ANSIBLE_CACHE_PLUGIN_CONNECTION": str(p["facts"]),
        "TMPDIR": str(p["tmp"]),
        "ANSIBLE_LOCAL_TEMP": str(p["local_tmp"]),
        "ANSIBLE_REMOTE_TMP": str(p["remote_tmp"]),
    }
    env.update(extra)
    return env


def _run(canary, tag, binary, namespace, extra_vars=None, args=("-vvvv", "--diff"), password_file=None,
         name="deploy_coder", **env):
    with ProcWatcher(canary["needles"]) as watcher:
        res = playbook(name, binary, namespace, {"coder_db_user": canary["role"], **module_way(binary),
                                                 **(extra_vars or {})},
                       args=args, extra_env=_env(canary, namespace, binary, password_file, **env),
                       tag=f"leak-{tag}-{binary}")
    canary["outputs"][f"{tag}-{binary}"] = res.output
    canary["proc_hits"].update({f"{tag}-{binary}: {k}": v for k, v in watcher.hits.items()})
    canary["samples"] += watcher.samples
    return res


@pytest.mark.reliability(
    section="Leaks", case="deploy_coder.yml, helm {binary}: install, check-diff, re-run, upgrade, JSON callback, "
                          "wrong type, padded password, failed upgrade + rollback, AWX runner",
    done="canary password (spaces, quotes, = @ % \\ : and non-ASCII) as a real PostgreSQL role's password; "
         "deploy_coder.yml at -vvvv --diff: install, --check --diff, idempotent re-run, upgrade, JSON callback, "
         "coder_replicas of the wrong type, the password with a trailing newline, a crash-looping upgrade rolled "
         "back, and an ansible-runner (AWX) job; /proc/*/cmdline and environ sampled all along",
    expected="zero hits of the canary in 11 encodings in: outputs, ANSIBLE_LOG_PATH, jsonfile fact cache, TMPDIR, "
             "local and remote tmp, runner artifacts and job events, process command lines and environments, "
             "helm get values --all and helm get all of every revision, decoded release Secrets, every object "
             "of the namespace (annotations, ConfigMaps, Events) except the password Secret's data")
@pytest.mark.parametrize("binary", HELMS)
def test_no_run_shows_the_password(binary, canary, observe):
    ns = new_namespace("coderops-leak")
    try:
        needles = canary["needles"]
        res = _run(canary, "install", binary, ns)
        assert res.rc == 0, res.output[-4000:]
        # The module that takes the password (coder_db_secrets, no_log on db_password) ran at -vvvv,
        # the way module_way() chose (both ways are scanned).
        assert ran_the_module_way(binary, res.output), res.output[-4000:]
        # The deployment really uses the canary: the Secret holds it, and it logs in.
        data, dummy = secret_data(ns, "coder-db-password")
        assert data["password"].decode() == canary["password"]
        facts = pg_login(MAIN["HOST"], MAIN["PORT"], canary["role"], MAIN["DATABASE"],
                         password=data["password"].decode(), ca=MAIN["SSLROOTCERT"])
        assert facts.get("failed") is not True and facts["user"] == canary["role"], facts.get("msg")

        res = _run(canary, "check-diff", binary, ns, {"coder_replicas": 2}, args=("-vvvv", "--check", "--diff"))
        assert res.rc == 0, res.output[-4000:]
        assert "would upgrade" in res.output
        res = _run(canary, "rerun", binary, ns)
        assert res.rc == 0 and res.recap["changed"] == 0, res.output[-4000:]
        res = _run(canary, "upgrade", binary, ns, {"coder_replicas": 2})
        assert res.rc == 0, res.output[-4000:]
        res = _run(canary, "json-callback", binary, ns, {"coder_replicas": 2}, args=("-vvvv",),
                   ANSIBLE_STDOUT_CALLBACK="ansible.posix.json", ANSIBLE_LOAD_CALLBACK_PLUGINS="1")
        assert res.rc == 0, res.output[-4000:]
        assert '"plays": [' in res.output  # really the JSON callback's output
        # Refusals echo nothing either: a wrong type beside the password, a padded password.
        res = _run(canary, "wrong-type", binary, ns, {"coder_replicas": "two"})
        assert res.rc != 0 and "coder_replicas" in res.output
        res = _run(canary, "padded", binary, ns, password_file=canary["padded"])
        assert res.rc != 0 and "coder_db_password has leading or trailing white space" in res.output
        # A failed upgrade (fail-fast) and its rollback, at -vvvv.
        res = _run(canary, "failed-upgrade", binary, ns,
                   {"coder_replicas": 2, "coder_values_overrides": {"testing": {"failPods": "crashloop"}}})
        assert res.rc != 0 and "rolled back to revision" in res.output

        # ansible-runner, as AWX runs a job: stdout and job events.
        pdd = canary["places"]["runner"] / binary
        pdd.mkdir()
        spec = {"private_data_dir": str(pdd), "playbook": str(REPO / "playbooks" / "deploy_coder.yml"),
                "inventory": str(REPO / "inventories" / "testbed.yml"), "verbosity": 4,
                "extravars": {"coder_db_user": canary["role"], "coder_helm_binary": binary, "coder_replicas": 2}}
        env = playbook_env(ns, binary, _env(canary, ns, binary))
        with ProcWatcher(needles) as watcher:
            proc = subprocess.run([str(VENV_BIN / "python"), str(HERE / "runner_run.py")], input=json.dumps(spec),
                                  check=False, capture_output=True, text=True, env=env, timeout=600)
        canary["proc_hits"].update({f"runner-{binary}: {k}": v for k, v in watcher.hits.items()})
        assert json.loads(proc.stdout.strip().splitlines()[-1])["status"] == "successful", proc.stdout + proc.stderr
        events = list(pdd.glob("artifacts/*/job_events/*.json"))
        assert events, "ansible-runner wrote no job events"

        hits = {}
        for tag, output in canary["outputs"].items():
            if find(output, needles):
                hits[f"output of {tag}"] = find(output, needles)
        hits.update(scan_tree(canary["root"], needles, skip=(canary["secret_dir"],)))
        hits.update(canary["proc_hits"])
        # Helm's records of every revision, and everything in the namespace but the password Secret's data.
        scan = namespace_hits(binary, ns, needles)
        hits.update(scan.hits)
        assert not hits, f"the canary password leaked: {hits}"
        assert canary["samples"] > 50, "the process watcher took too few samples"
        observe(f"0 hits: {len(canary['outputs'])} run outputs, {len(events)} job events, "
                f"{len(history(binary, ns))} revisions, {scan.objects} namespace objects, "
                f"{canary['samples']} /proc samples searched in {len(needles)} encodings")
    finally:
        delete_namespace(ns)
        kubectl("delete", "namespace", ns, "--wait=false", check=False)


@pytest.mark.reliability(section="Leaks", case="positive control: the detectors find a planted canary",
                         done="plant the canary in every encoding, in a file and in a process's command line",
                         expected="every encoding found by find(), scan_tree() and ProcWatcher")
def test_the_detectors_find_a_planted_canary(tmp_path):
    """Positive control: each detector used above finds the canary when it is there."""
    import sys
    import time as _time

    from leak_scan import ProcWatcher

    secret = make_canary()
    needles = forms(secret)
    for name, needle in needles.items():
        assert find(b"x" + needle + b"y", needles), name
    (tmp_path / "f.txt").write_bytes(needles["base64"])
    assert "base64" in scan_tree(tmp_path, needles)[str(tmp_path / "f.txt")]
    with ProcWatcher(needles, interval=0.01) as watcher:
        proc = subprocess.Popen([sys.executable, "-c", "import time; time.sleep(1.5)", secret])
        _time.sleep(1.0)
        proc.wait()
    assert any("plain" in found for found in watcher.hits.values()), watcher.hits


MODULES_ALONE = """
- name: coder_pg_facts and coder_values used alone, as a user's own playbook would
  hosts: localhost
  connection: local
  gather_facts: false
  vars:
    ansible_python_interpreter: "{{ ansible_playbook_python }}"
    pw: "{{ lookup('ansible.builtin.file', pw_file, rstrip=false) }}"
  module_defaults:
    coderops.deploy.coder_pg_facts:
      login_host: "{{ pg_host }}"
      login_port: "{{ pg_port }}"
      login_user: "{{ pg_user }}"
      login_db: "{{ pg_db }}"
      ssl_mode: verify-full
      ca_cert: "{{ pg_ca }}"
  tasks:
    - name: Facts, logging in with the password
      coderops.deploy.coder_pg_facts:
        login_password: "{{ pw }}"
      register: facts

    - name: Values built from those facts
      coderops.deploy.coder_values:
        pg_facts: "{{ facts }}"
        host: "{{ pg_host }}"
        port: "{{ pg_port | int }}"
        user: "{{ pg_user }}"
        database: "{{ pg_db }}"
        password_secret: coder-db-password
        ssl_mode: verify-full
        ssl_root_cert_secret: {name: coder-db-ca, key: ca.crt}
        replicas: 1
        dest: "{{ out_dir }}/values.yaml"

    - name: The password inside loop items (no_log on the task, as the README says)
      coderops.deploy.coder_pg_facts:
        login_password: "{{ item.password }}"
      loop:
        - {name: first, password: "{{ pw }}"}
        - {name: second, password: "{{ pw }}"}
      no_log: true

    - name: An unknown option beside the password (a validation error)
      coderops.deploy.coder_pg_facts:
        login_password: "{{ pw }}"
        no_such_option: 1
      register: unknown
      ignore_errors: true

    - name: A wrong-typed option beside the password (a validation error)
      coderops.deploy.coder_pg_facts:
        login_password: "{{ pw }}"
        connect_timeout: soon
      register: wrong_type
      ignore_errors: true

    - name: Both were refused
      ansible.builtin.assert:
        that: [unknown is failed, wrong_type is failed, facts is not changed]
"""


@pytest.mark.reliability(
    section="Leaks", case="every entry point, helm3: rollback, password change, uninstall, modules alone, "
                          "validation errors, loop items",
    done="with the canary role: deploy_coder.yml install; a second canary set as the role's new password and "
         "deployed (password change); rollback_coder.yml; uninstall_coder.yml; coder_pg_facts and coder_values "
         "alone in a user playbook (also an unknown option and a wrong-typed option beside the password, and the "
         "password in loop items); every run at -vvvv --diff and again with --check --diff, /proc sampled",
    expected="zero hits of either canary, in every encoding, anywhere but the password Secret's data and the "
             "database")
def test_no_entry_point_shows_the_password(canary, observe):
    binary = "helm3"
    ns = new_namespace("coderops-leak2")
    second = make_canary()
    both = {**{f"old {k}": v for k, v in canary["needles"].items()},
            **{f"new {k}": v for k, v in forms(second).items()}}
    canary["needles"] = both  # the watcher and every search look for both from now on
    new_file = canary["secret_dir"] / "pg-password-new"
    fd = os.open(new_file, os.O_WRONLY | os.O_CREAT, 0o600)
    os.write(fd, second.encode())
    os.close(fd)
    runs = []
    try:
        res = _run(canary, "e-install", binary, ns)
        assert res.rc == 0, res.output[-4000:]
        runs.append("install")
        # Password change: the role's password changes in the database, then the deploy follows.
        conn = _superuser()
        conn.autocommit = True
        with conn.cursor() as cur:
            cur.execute(f'ALTER ROLE "{canary["role"]}" PASSWORD %s', (second,))
        conn.close()
        res = _run(canary, "e-change-check", binary, ns, args=("-vvvv", "--check", "--diff"), password_file=new_file)
        assert res.rc == 0, res.output[-4000:]
        res = _run(canary, "e-change", binary, ns, password_file=new_file)
        assert res.rc == 0 and res.recap["changed"] >= 1, res.output[-4000:]
        data, dummy = secret_data(ns, "coder-db-password")
        assert data["password"].decode() == second
        runs += ["password change --check --diff", "password change"]
        res = _run(canary, "e-upgrade", binary, ns, {"coder_replicas": 2}, password_file=new_file)
        assert res.rc == 0, res.output[-4000:]
        res = _run(canary, "e-rollback-check", binary, ns, args=("-vvvv", "--check", "--diff"),
                   password_file=new_file, name="rollback_coder")
        res = _run(canary, "e-rollback", binary, ns, {"coder_rollback_revision": 1}, password_file=new_file,
                   name="rollback_coder")
        assert res.rc == 0, res.output[-4000:]
        runs += ["upgrade", "rollback_coder.yml --check --diff", "rollback_coder.yml"]
        scan = namespace_hits(binary, ns, both)
        hits = scan.hits
        res = _run(canary, "e-uninstall-check", binary, ns, args=("-vvvv", "--check", "--diff"),
                   password_file=new_file, name="uninstall_coder")
        res = _run(canary, "e-uninstall", binary, ns, password_file=new_file, name="uninstall_coder")
        assert res.rc == 0, res.output[-4000:]
        assert history(binary, ns) == []
        runs += ["uninstall_coder.yml --check --diff", "uninstall_coder.yml"]
        more = namespace_hits(binary, ns, both).hits
        hits.update({f"after uninstall: {k}": v for k, v in more.items()})

        # The two modules alone, in a user's playbook.
        book = canary["root"] / "modules-alone.yml"
        book.write_text(MODULES_ALONE)
        out_dir = canary["root"] / "values-out"
        out_dir.mkdir(exist_ok=True)
        vars_ = {"pw_file": str(new_file), "pg_host": MAIN["HOST"], "pg_port": MAIN["PORT"], "pg_user": canary["role"],
                 "pg_db": MAIN["DATABASE"], "pg_ca": MAIN["SSLROOTCERT"], "out_dir": str(out_dir)}
        vars_file = canary["root"] / "modules-alone-vars.json"
        vars_file.write_text(json.dumps(vars_))
        env = dict(playbook_env(ns, binary, _env(canary, ns, binary, new_file)),
                   ANSIBLE_COLLECTIONS_PATH=str(REPO / "playbooks" / "collections"))
        for tag, args in (("modules-alone", ["-vvvv", "--diff"]),
                          ("modules-alone-check", ["-vvvv", "--check", "--diff"]),
                          ("modules-alone-json", ["-vvvv"])):
            run_env = dict(env)
            if tag.endswith("json"):
                run_env.update(ANSIBLE_STDOUT_CALLBACK="ansible.posix.json", ANSIBLE_LOAD_CALLBACK_PLUGINS="1")
            with ProcWatcher(both) as watcher:
                proc = subprocess.run([str(VENV_BIN / "ansible-playbook"), "-i", "localhost,", str(book),
                                       "-e", f"@{vars_file}", *args], check=False, capture_output=True, text=True,
                                      env=run_env, timeout=600)
            canary["proc_hits"].update({f"{tag}: {k}": v for k, v in watcher.hits.items()})
            canary["samples"] += watcher.samples
            output = proc.stdout + proc.stderr
            canary["outputs"][tag] = output
            assert proc.returncode == 0, output[-4000:]
            if not tag.endswith("json"):
                assert "Unsupported parameters" in output and "no_such_option" in output, output[-3000:]
                assert "connect_timeout" in output
            runs.append(f"modules alone {' '.join(args)}")
        assert (out_dir / "values.yaml").exists()

        for tag, output in canary["outputs"].items():
            if find(output, both):
                hits[f"output of {tag}"] = find(output, both)
        hits.update(scan_tree(canary["root"], both, skip=(canary["secret_dir"],)))
        hits.update(canary["proc_hits"])
        assert not hits, f"a canary password leaked: {hits}"
        observe(f"0 hits for either canary after {len(runs)} runs ({', '.join(runs)}); "
                f"{scan.objects} namespace objects, {canary['samples']} /proc samples, {len(both)} needles")
    finally:
        delete_namespace(ns)
