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

import base64
import gzip
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
    kubectl_json,
    pg_login,
    playbook,
    playbook_env,
    secret_data,
)
from leaks import ProcWatcher, find, forms, make_canary, scan_tree

MAIN = {k: ENV[f"CODER_TEST_PG_MAIN_{k}"] for k in ("HOST", "PORT", "DATABASE", "SSLROOTCERT", "SOCKET_DIR")}


def _superuser():
    return psycopg2.connect(host=MAIN["SOCKET_DIR"], port=MAIN["PORT"], user="postgres", dbname="postgres")


@pytest.fixture(scope="module")
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


def _run(canary, tag, binary, namespace, extra_vars=None, args=("-vvvv", "--diff"), password_file=None, **env):
    with ProcWatcher(canary["needles"]) as watcher:
        res = playbook("deploy_coder", binary, namespace, {"coder_db_user": canary["role"], **(extra_vars or {})},
                       args=args, extra_env=_env(canary, namespace, binary, password_file, **env),
                       tag=f"leak-{tag}-{binary}")
    canary["outputs"][f"{tag}-{binary}"] = res.output
    canary["proc_hits"].update({f"{tag}-{binary}: {k}": v for k, v in watcher.hits.items()})
    canary["samples"] += watcher.samples
    return res


@pytest.mark.parametrize("binary", HELMS)
def test_no_run_shows_the_password(binary, canary):
    ns = new_namespace("coderops-leak")
    try:
        needles = canary["needles"]
        res = _run(canary, "install", binary, ns)
        assert res.rc == 0, res.output[-4000:]
        assert "ESTABLISH LOCAL CONNECTION" in res.output  # really -vvvv
        assert "coder_db_password" in res.output  # the variable is named, its value never shown
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
        # Helm: user values and computed values of every revision, and every release Secret.
        for rev in history(binary, ns):
            out = subprocess.run([binary, "get", "values", "coder", "-n", ns, "--all", "--revision",
                                  str(rev["revision"]), "-o", "json"], check=False, capture_output=True, env=ENV).stdout
            if find(out, needles):
                hits[f"helm get values --all revision {rev['revision']}"] = find(out, needles)
            out = subprocess.run([binary, "get", "all", "coder", "-n", ns, "--revision", str(rev["revision"])],
                                 check=False, capture_output=True, env=ENV).stdout
            if find(out, needles):
                hits[f"helm get all revision {rev['revision']}"] = find(out, needles)
        for sec in kubectl_json("get", "secrets", "-n", ns, "-l", "owner=helm")["items"]:
            release = gzip.decompress(base64.b64decode(base64.b64decode(sec["data"]["release"])))
            if find(release, needles):
                hits[f"release Secret {sec['metadata']['name']}"] = find(release, needles)
        # Everything else in the namespace, minus the password Secret's data (where it belongs).
        dump = kubectl_json("get", "secrets,configmaps,events,deployments,replicasets,pods,services,"
                            "serviceaccounts,leases,jobs", "-n", ns)
        for obj in dump["items"]:
            if obj["kind"] == "Secret" and obj["metadata"]["name"] == "coder-db-password":
                obj.pop("data", None)
            annotations = obj["metadata"].get("annotations") or {}
            assert "kubectl.kubernetes.io/last-applied-configuration" not in annotations, obj["metadata"]["name"]
        if find(json.dumps(dump), needles):
            hits["namespace objects"] = find(json.dumps(dump), needles)
        assert not hits, f"the canary password leaked: {hits}"
        assert canary["samples"] > 50, "the process watcher took too few samples"
    finally:
        delete_namespace(ns)
        kubectl("delete", "namespace", ns, "--wait=false", check=False)


def test_the_detectors_find_a_planted_canary(tmp_path):
    """Positive control: each detector used above finds the canary when it is there."""
    import sys
    import time as _time

    from leaks import ProcWatcher

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
