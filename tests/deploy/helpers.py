# Copyright (c) 2025, coderops maintainers
# GNU General Public License v3.0+ (see LICENSE or https://www.gnu.org/licenses/gpl-3.0.txt)
# SPDX-License-Identifier: GPL-3.0-or-later
"""Helpers of the deploy_coder integration tests: run the playbooks for real, read what they did
with kubectl and helm, log in to PostgreSQL with coder_pg_facts."""

from __future__ import annotations

import base64
import collections
import gzip
import hashlib
import json
import os
import re
import signal
import subprocess
import tempfile
import time
from pathlib import Path

HERE = Path(__file__).resolve().parent
REPO = HERE.parents[1]
STATE = Path(os.environ.get("CODER_TESTBED_STATE", REPO / ".testbed"))
VENV_BIN = Path(os.environ.get("CODER_VENV", REPO / ".venv")) / "bin"
LOG_DIR = Path(os.environ.get("CODER_IT_LOG_DIR", REPO / "tests" / "output" / "deploy_coder"))
# The collection, as ansible finds it next to the playbooks (playbooks/collections links to the
# repository root); the same tree serves ad-hoc `ansible` runs.
COLLECTIONS = REPO / "playbooks" / "collections"


def _load_env():
    env_sh = STATE / "env.sh"
    if not env_sh.exists():
        raise SystemExit(f"{env_sh} is missing: run `make testbed` first")
    out = subprocess.run(["bash", "-c", f". {env_sh} && env -0"], capture_output=True, check=True)
    env = dict(item.split("=", 1) for item in out.stdout.decode().split("\0") if "=" in item)
    env["PATH"] = f"{VENV_BIN}:{env['PATH']}"
    env["ANSIBLE_NOCOLOR"] = "1"
    env["ANSIBLE_FORCE_COLOR"] = "0"
    env["ANSIBLE_HOST_KEY_CHECKING"] = "0"
    env["ANSIBLE_DEPRECATION_WARNINGS"] = "0"
    env.pop("ANSIBLE_COLLECTIONS_PATH", None)
    env.pop("ANSIBLE_COLLECTIONS_PATHS", None)
    return env


ENV = _load_env()


def run(*cmd, check=True, timeout=300, env=None, input=None):
    proc = subprocess.run([str(c) for c in cmd], check=False, capture_output=True, text=True, env=env or ENV,
                          timeout=timeout, input=input)
    if check and proc.returncode != 0:
        raise AssertionError(f"{' '.join(map(str, cmd))} failed ({proc.returncode}):\n{proc.stdout}\n{proc.stderr}")
    return proc


def kubectl(*args, check=True):
    return run("kubectl", *args, check=check)


def kubectl_json(*args):
    return json.loads(kubectl(*args, "-o", "json").stdout)


def helm(binary, *args, check=True, timeout=300):
    return run(binary, *args, check=check, timeout=timeout)


def history(binary, namespace, name="coder"):
    proc = helm(binary, "history", name, "-n", namespace, "-o", "json", check=False)
    if proc.returncode != 0:
        if "not found" in proc.stderr:
            return []
        raise AssertionError(proc.stderr)
    return json.loads(proc.stdout)


def release_values(binary, namespace, revision, name="coder"):
    return json.loads(helm(binary, "get", "values", name, "-n", namespace, "--revision", str(revision),
                           "-o", "json").stdout) or {}


def deployment(namespace, name="coderd"):
    return kubectl_json("get", "-n", namespace, f"deployment/{name}")


def template_of(namespace):
    return deployment(namespace)["spec"]["template"]


def secret_hash(namespace, name):
    proc = kubectl("get", "secret", name, "-n", namespace, "-o", "json", check=False)
    if proc.returncode != 0:
        return None
    data = json.loads(proc.stdout).get("data") or {}
    return hashlib.sha256(json.dumps(data, sort_keys=True).encode()).hexdigest()


def secret_data(namespace, name):
    obj = kubectl_json("get", "secret", name, "-n", namespace)
    return {k: base64.b64decode(v) for k, v in (obj.get("data") or {}).items()}, obj


def lease_exists(namespace, name="coder"):
    return kubectl("get", "lease", f"{name}-coderops-lock", "-n", namespace, check=False).returncode == 0


def wait_for(predicate, timeout=120, interval=1.0, what="condition"):
    deadline = time.monotonic() + timeout
    last = None
    while time.monotonic() < deadline:
        last = predicate()
        if last:
            return last
        time.sleep(interval)
    raise AssertionError(f"timed out after {timeout} s waiting for {what} (last: {last!r})")


def wait_available(namespace, replicas=None, timeout=120):
    def ok():
        dep = deployment(namespace)
        st = dep.get("status", {})
        want = replicas if replicas is not None else dep["spec"]["replicas"]
        return (st.get("observedGeneration", 0) >= dep["metadata"]["generation"]
                and st.get("readyReplicas", 0) == want and st.get("updatedReplicas", 0) == want
                and st.get("replicas", 0) == want)
    return wait_for(ok, timeout, what=f"deployment/coderd in {namespace} to be available")


class Result:
    def __init__(self, rc, output, duration, log):
        self.rc = rc
        self.output = output
        self.duration = duration
        self.log = log

    @property
    def recap(self):
        match = re.search(r"localhost\s*:\s*ok=(\d+)\s+changed=(\d+)\s+unreachable=(\d+)\s+failed=(\d+)",
                          self.output)
        assert match, f"no PLAY RECAP in the output:\n{self.output[-3000:]}"
        return {"ok": int(match[1]), "changed": int(match[2]), "failed": int(match[4])}

    def __repr__(self):
        return f"<Result rc={self.rc} {self.duration:.1f}s log={self.log}>"


def playbook_command(name, helm_binary, namespace, extra_vars=None, args=(), as_collection=False):
    """The ansible-playbook command for one of the collection's playbooks, and its extra-vars file."""
    vars_ = {"coder_helm_binary": helm_binary}
    vars_.update(extra_vars or {})
    fd, path = tempfile.mkstemp(prefix="coderops-it-vars-", suffix=".json")
    with os.fdopen(fd, "w") as fh:
        json.dump(vars_, fh)
    target = f"coderops.deploy.{name}" if as_collection else str(REPO / "playbooks" / f"{name}.yml")
    cmd = [str(VENV_BIN / "ansible-playbook"), "-i", str(REPO / "inventories" / "testbed.yml"),
           target, "-e", f"@{path}", *args]
    return cmd, path


def playbook_env(namespace, helm_binary, extra_env=None, as_collection=False):
    env = dict(ENV, CODER_NAMESPACE=namespace, CODER_TEST_HELM=helm_binary)
    if as_collection:
        env["ANSIBLE_COLLECTIONS_PATH"] = str(COLLECTIONS)
    env.update(extra_env or {})
    return env


def _log_path(tag):
    LOG_DIR.mkdir(parents=True, exist_ok=True)
    safe = re.sub(r"[^A-Za-z0-9_.-]+", "_", tag)[:120]
    return LOG_DIR / f"{time.strftime('%H%M%S')}-{safe}.log"


def playbook(name, helm_binary, namespace, extra_vars=None, args=(), extra_env=None, timeout=900,
             tag=None, as_collection=False):
    """Run a playbook to its end; returns a Result (output = stdout and stderr, interleaved)."""
    proc = start_playbook(name, helm_binary, namespace, extra_vars, args, extra_env, tag, as_collection)
    return proc.wait(timeout)


class Started:
    """A playbook run in its own process group (so that the test can signal it)."""

    def __init__(self, cmd, env, vars_file, log):
        self.vars_file = vars_file
        self.log = log
        self.start = time.monotonic()
        self._fh = open(log, "w", encoding="utf-8", errors="replace")
        self._fh.write("$ " + " ".join(cmd) + "\n")
        self._fh.flush()
        self.proc = subprocess.Popen(cmd, stdout=self._fh, stderr=subprocess.STDOUT, env=env,
                                     start_new_session=True, cwd=str(REPO))

    def output(self):
        return Path(self.log).read_text(errors="replace")

    def signal(self, sig=signal.SIGTERM):
        os.killpg(self.proc.pid, sig)

    def wait(self, timeout=900):
        try:
            rc = self.proc.wait(timeout)
        except subprocess.TimeoutExpired:
            self.signal(signal.SIGKILL)
            rc = self.proc.wait(30)
        duration = time.monotonic() - self.start
        self._fh.close()
        os.unlink(self.vars_file) if os.path.exists(self.vars_file) else None
        return Result(rc, self.output(), duration, self.log)


def start_playbook(name, helm_binary, namespace, extra_vars=None, args=(), extra_env=None, tag=None,
                   as_collection=False):
    cmd, vars_file = playbook_command(name, helm_binary, namespace, extra_vars, args, as_collection)
    env = playbook_env(namespace, helm_binary, extra_env, as_collection)
    return Started(cmd, env, vars_file, _log_path(tag or f"{name}-{helm_binary}-{namespace}"))


def pg_login(host, port, user, database, password=None, ca=None, cert=None, key=None,
             ssl_mode="verify-full"):
    """Log in with coderops.deploy.coder_pg_facts (the password goes in CODER_PG_PASSWORD)."""
    args = [f"login_host={host}", f"login_port={port}", f"login_user={user}", f"login_db={database}",
            f"ssl_mode={ssl_mode}"]
    if ca:
        args.append(f"ca_cert={ca}")
    if cert:
        args += [f"ssl_cert={cert}", f"ssl_key={key}"]
    env = dict(ENV, ANSIBLE_COLLECTIONS_PATH=str(COLLECTIONS), ANSIBLE_STDOUT_CALLBACK="json",
               ANSIBLE_LOAD_CALLBACK_PLUGINS="1", ANSIBLE_PYTHON_INTERPRETER=str(VENV_BIN / "python"))
    env.pop("CODER_PG_PASSWORD", None)
    if password is not None:
        env["CODER_PG_PASSWORD"] = password
    proc = run(str(VENV_BIN / "ansible"), "localhost", "-c", "local", "-m", "coderops.deploy.coder_pg_facts",
               "-a", " ".join(args), check=False, env=env, timeout=120)
    data = json.loads(proc.stdout)
    return data["plays"][0]["tasks"][0]["hosts"]["localhost"]


def env_of(container):
    return {e["name"]: e for e in container.get("env", [])}


def key_readable_by_coder(pod, container, volume):
    """Whether the container can use the key in a Secret volume: its user can read the file, and
    Coder's PostgreSQL driver (its lib/pq fork) accepts the file's mode, which is 0600, or owned by
    root and at most 0640 (chart contract).

    Models what the kubelet does with a Secret volume: the files are owned by root, their group is
    the pod's fsGroup (root without one, and then the mode gets g+r), their mode is defaultMode
    (0644 when unset). The user and groups are the container's securityContext over the pod's.
    """
    secret = next(v for v in pod.get("volumes", []) if v["name"] == volume)["secret"]
    mode = secret.get("defaultMode", 0o644)
    pod_sc = pod.get("securityContext") or {}
    sc = {**pod_sc, **(container.get("securityContext") or {})}
    uid, gid = sc.get("runAsUser", 0), sc.get("runAsGroup", 0)
    groups = {gid, *pod_sc.get("supplementalGroups", [])}
    file_gid = 0
    if pod_sc.get("fsGroup") is not None:
        file_gid = pod_sc["fsGroup"]
        groups.add(file_gid)
        mode |= 0o440  # read-only volumes: the kubelet adds owner and group read
    readable = uid == 0 or (file_gid in groups and mode & 0o040) or mode & 0o004
    driver_accepts = mode & 0o077 == 0 or mode & 0o137 == 0  # the owner is root
    return bool(readable and driver_accepts)


def record(name, **values):
    """Append measured numbers (durations) to the log directory's measurements.jsonl."""
    LOG_DIR.mkdir(parents=True, exist_ok=True)
    with open(LOG_DIR / "measurements.jsonl", "a") as fh:
        fh.write(json.dumps({"name": name, **values}) + "\n")


NamespaceScan = collections.namedtuple("NamespaceScan", "hits objects kept")


def namespace_hits(binary, ns, needles, skip_data=("coder-db-password",)):
    """Where the needles (leak_scan.forms of a secret) appear in helm's records of every revision
    (values --all, get all, the decoded release Secrets) and in every object of the namespace,
    leaving out the data of the Secrets in skip_data (where the secret belongs). Also asserts that
    no object carries a last-applied-configuration annotation.

    Returns a NamespaceScan: the hits by place, the number of namespace objects searched, and the
    data of the skipped Secrets (for a test to check that the secret is where it belongs)."""
    from leak_scan import find  # imported here so that helpers stays importable alone

    hits = {}
    for rev in history(binary, ns):
        for what, cmd in (("helm get values --all", ["get", "values", "coder", "--all", "-o", "json"]),
                          ("helm get all", ["get", "all", "coder"])):
            out = subprocess.run([binary, *cmd, "-n", ns, "--revision", str(rev["revision"])], check=False,
                                 capture_output=True, env=ENV).stdout
            if found := find(out, needles):
                hits[f"{what} revision {rev['revision']}"] = found
    for sec in kubectl_json("get", "secrets", "-n", ns, "-l", "owner=helm")["items"]:
        release = gzip.decompress(base64.b64decode(base64.b64decode(sec["data"]["release"])))
        if found := find(release, needles):
            hits[f"release Secret {sec['metadata']['name']}"] = found
    dump = kubectl_json("get", "secrets,configmaps,events,deployments,replicasets,pods,services,"
                        "serviceaccounts,leases,jobs", "-n", ns)
    skipped = {}
    for obj in dump["items"]:
        if obj["kind"] == "Secret" and obj["metadata"]["name"] in skip_data:
            skipped[obj["metadata"]["name"]] = obj.pop("data", None)
        annotations = obj["metadata"].get("annotations") or {}
        assert "kubectl.kubernetes.io/last-applied-configuration" not in annotations, obj["metadata"]["name"]
    if found := find(json.dumps(dump), needles):
        hits["namespace objects"] = found
    return NamespaceScan(hits, len(dump["items"]), skipped)


def pg_superuser(database="postgres"):
    """A superuser connection to server `main` over its Unix socket (autocommit), for what the
    tests set up and check in the database: databases of their own, Coder's tables, activity."""
    import psycopg2

    conn = psycopg2.connect(host=ENV["CODER_TEST_PG_MAIN_SOCKET_DIR"], port=ENV["CODER_TEST_PG_MAIN_PORT"],
                            user="postgres", dbname=database)
    conn.autocommit = True
    return conn


def module_way(binary):
    """Extra vars that choose how the collection's modules run, for the tests that run both ways:
    with helm 3 as on a target (AnsiballZ in a new interpreter: the inventory's
    ansible_playbook_python named by another path), with helm 4 in the task's worker
    (plugins/plugin_utils/_module_here.py)."""
    return {"ansible_python_interpreter": str(VENV_BIN / "python")} if binary == "helm3" else {}


def ran_the_module_way(binary, output, module="coder_db_secrets"):
    """Whether a -vvvv output shows `module` ran the way module_way(binary) chose."""
    if module_way(binary):
        return "ESTABLISH LOCAL CONNECTION" in output and f"modules/{module}.py" in output
    return f"coderops.deploy.{module}: runs in this worker process" in output
