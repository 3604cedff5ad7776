# Copyright (c) 2025, coderops maintainers
# GNU General Public License v3.0+ (see LICENSE or https://www.gnu.org/licenses/gpl-3.0.txt)
# SPDX-License-Identifier: GPL-3.0-or-later
"""The job templates' playbooks run by ansible-runner, as AWX runs them, against the test bed.

No AWX server is available here. Each job gets a private data directory laid out as AWX lays it
out (tests/awx/awx_emulation.py): the credentials' injected environment in env/envvars (the
"Coder PostgreSQL" credential with the test bed's password, read from $CODER_TEST_PG_PASSWORD_FILE,
and the "Coder Kubeconfig" credential with a self-contained kubeconfig), the job template's extra
variables plus survey defaults and answers in env/extravars, AWX's prompts in env/passwords. The
password is never an extra variable. The ansible-runner process gets a bare environment (PATH,
LANG and an empty HOME), as in an execution environment.

Everything is real: the test bed's Kubernetes API server (kwok), helm 3, the PostgreSQL server
"main" with TLS. After each job, neither artifacts/*/stdout nor artifacts/*/job_events/*.json (nor
any other artifact but `command`, where ansible-runner records the job's whole environment) holds a
secret in any form (the suites' one leak scanner,
tests/integration/targets/setup_coder_testbed/files/leak_scan.py), at verbosity 0 and at
verbosity 4 with --diff.
"""

from __future__ import annotations

import base64
import json
import os
import secrets
import signal
import subprocess
import time
from pathlib import Path

import leak_scan as leaks
import pytest
import yaml
from awx_emulation import (
    awx_definitions,
    build_private_data_dir,
    inject_custom_credential,
    inject_kubernetes_bearer_token,
    job_template,
    launch_extra_vars,
)
from conftest import VENV_BIN, load_testbed_env

HELM = "helm3"
MEASUREMENTS = Path(__file__).resolve().parents[1] / "output" / "awx" / "measurements.jsonl"
JOB_TIMEOUT = 600
_JOB_IDS = iter(range(1000, 100000))


# -- the test bed ---------------------------------------------------------------------------------

BED = None


def bed():
    global BED
    if BED is None:
        BED = load_testbed_env()
    return BED


def sh(*cmd, check=True, timeout=120, input=None):
    env = dict(bed())
    proc = subprocess.run([str(c) for c in cmd], capture_output=True, text=True, env=env, timeout=timeout,
                          input=input)
    if check and proc.returncode != 0:
        raise AssertionError(f"{' '.join(map(str, cmd))} failed ({proc.returncode}):\n{proc.stdout}\n{proc.stderr}")
    return proc


def kubectl_json(*args):
    return json.loads(sh("kubectl", *args, "-o", "json").stdout)


def history(namespace):
    proc = sh(HELM, "history", "coder", "-n", namespace, "-o", "json", check=False)
    if proc.returncode != 0:
        if "not found" in proc.stderr:
            return []
        raise AssertionError(proc.stderr)
    return json.loads(proc.stdout)


def values_of(namespace, revision, all_values=False):
    args = ["get", "values", "coder", "-n", namespace, "--revision", str(revision), "-o", "json"]
    return json.loads(sh(HELM, *args, *(["--all"] if all_values else [])).stdout) or {}


def deployment(namespace):
    return kubectl_json("get", "-n", namespace, "deployment/coderd")


def comparable(template):
    t = json.loads(json.dumps(template))
    (t.get("metadata") or {}).pop("creationTimestamp", None)
    return t


def wait_for(predicate, timeout, what):
    deadline = time.monotonic() + timeout
    last = None
    while time.monotonic() < deadline:
        last = predicate()
        if last:
            return last
        time.sleep(1)
    raise AssertionError(f"timed out after {timeout} s waiting for {what} (last: {last!r})")


def available(namespace, replicas):
    dep = deployment(namespace)
    st = dep.get("status", {})
    return (st.get("observedGeneration", 0) >= dep["metadata"]["generation"]
            and st.get("readyReplicas", 0) == replicas == st.get("updatedReplicas", 0) == st.get("replicas", 0))


def new_namespace():
    return f"awx-{secrets.token_hex(3)}"


def delete_namespace(namespace):
    sh("kubectl", "delete", "namespace", namespace, "--wait=false", "--ignore-not-found", check=False)


def password():
    with open(bed()["CODER_TEST_PG_PASSWORD_FILE"], encoding="utf-8") as fh:
        return fh.read()


def flat_kubeconfig():
    """The test bed's kubeconfig with its certificates and key embedded, as one pastes it into AWX."""
    return sh("kubectl", "config", "view", "--raw", "--flatten", "--minify").stdout


def kubeconfig_key_data(kubeconfig):
    users = yaml.safe_load(kubeconfig)["users"]
    return users[0]["user"]["client-key-data"]


def pg_inputs(pw=None):
    """Inputs of the "Coder PostgreSQL" credential for the test bed's server "main"."""
    env = bed()
    with open(env["CODER_TEST_PG_MAIN_SSLROOTCERT"], encoding="utf-8") as fh:
        ca = fh.read()
    return {"host": env["CODER_TEST_PG_MAIN_HOST"], "port": env["CODER_TEST_PG_MAIN_PORT"],
            "user": env["CODER_TEST_PG_MAIN_USER"], "database": env["CODER_TEST_PG_MAIN_DATABASE"],
            "password": password() if pw is None else pw, "sslmode": "verify-full", "sslrootcert": ca}


# -- a job ----------------------------------------------------------------------------------------

class Job:
    """One job of a job template: its private data directory and its ansible-runner process."""

    def __init__(self, root, key, answers, launch_vars=None, verbosity=0, diff=False, pg=None, kube=None):
        self.defs = awx_definitions()
        self.key = key
        self.jt = job_template(self.defs, key)
        self.job_id = next(_JOB_IDS)
        self.dir = Path(root) / f"job-{self.job_id}"
        (self.dir / "env").mkdir(parents=True)
        env = {}
        if self.jt["pg"]:
            env.update(inject_custom_credential(self.defs["awx_coder_pg_credential_type"], pg or pg_inputs(), self.dir))
        kube = kube or {"type": "kubeconfig", "kubeconfig": flat_kubeconfig()}
        if kube["type"] == "kubeconfig":
            env.update(inject_custom_credential(self.defs["awx_coder_kubeconfig_credential_type"],
                                                {"kubeconfig": kube["kubeconfig"]}, self.dir))
        else:
            env.update(inject_kubernetes_bearer_token(kube, self.dir))
        self.extravars = launch_extra_vars(self.defs, key, answers, launch_vars)
        build_private_data_dir(self.dir, self.defs, key, env, self.extravars, verbosity, diff, job_id=self.job_id)
        self.home = Path(root) / f"home-{self.job_id}"
        self.home.mkdir()
        self.proc = None
        self.log = None

    def answers_path(self, rel):
        """A path inside the job's project checkout (AWX: /runner/project/...)."""
        return str(self.dir / "project" / rel)

    def start(self):
        env = {"PATH": f"{VENV_BIN}:{Path(bed()['CODER_TESTBED_DIR']) / 'bin'}:/usr/local/bin:/usr/bin:/bin",
               "LANG": "C.UTF-8", "HOME": str(self.home), "CODER_TEST_HELM": HELM}
        self.log = open(self.dir / "runner.log", "w", encoding="utf-8")  # noqa: SIM115 - closed in wait()
        self.proc = subprocess.Popen(
            [VENV_BIN / "ansible-runner", "run", self.dir, "-p", self.jt["playbook"], "--ident", str(self.job_id)],
            stdin=subprocess.DEVNULL, stdout=self.log, stderr=subprocess.STDOUT, env=env, start_new_session=True)
        return self

    def wait(self, timeout=JOB_TIMEOUT):
        try:
            self.proc.wait(timeout)
        except subprocess.TimeoutExpired:
            os.killpg(self.proc.pid, signal.SIGKILL)
            self.proc.wait(30)
            raise AssertionError(f"job {self.job_id} ({self.key}) ran longer than {timeout} s") from None
        finally:
            self.log.close()
        return self

    def run(self, timeout=JOB_TIMEOUT):
        return self.start().wait(timeout)

    @property
    def artifacts(self):
        return self.dir / "artifacts" / str(self.job_id)

    @property
    def status(self):
        path = self.artifacts / "status"
        return path.read_text().strip() if path.exists() else None

    @property
    def stdout(self):
        return (self.artifacts / "stdout").read_text(errors="replace")

    def events(self):
        return [json.loads(p.read_text()) for p in sorted((self.artifacts / "job_events").glob("*.json"))]

    def explain(self):
        return f"job {self.job_id} ({self.key}) status {self.status}; stdout tail:\n{self.stdout[-6000:]}"

    def leak_report(self, secret):
        """Where the secret is in the artifacts: (in stdout or job events, elsewhere, in `command`)."""
        outputs = [self.artifacts / "stdout", *sorted((self.artifacts / "job_events").glob("*.json"))]
        others = [p for p in self.artifacts.rglob("*") if p.is_file() and p not in outputs
                  and p.name != "command"]
        needles = leaks.forms(secret)
        return (leaks.scan_files(outputs, needles), leaks.scan_files(others, needles),
                leaks.scan_files([self.artifacts / "command", self.dir / "env" / "envvars"], needles))

    def assert_no_leak(self, secret, what, in_env=True):
        outputs, others, env = self.leak_report(secret)
        assert not outputs, f"{what} found in the job's stdout or job events: {outputs}"
        assert not others, f"{what} found in other artifacts: {others}"
        # The command line ansible-runner ran (not its environment), and whatever the job left in
        # its HOME (~/.ansible/tmp ...).
        command = json.loads((self.artifacts / "command").read_text())
        needles = leaks.forms(secret)
        assert not leaks.scan_text(json.dumps([command["command"], command["cwd"]]), needles, "command"), what
        left = [p for p in self.home.rglob("*") if p.is_file()]
        assert not leaks.scan_files(left, needles), f"{what} found in files the job left in HOME"
        if in_env:
            # The control: the search finds it where it must be (the injected environment).
            assert env, f"{what} is not in env/envvars nor artifacts/*/command: the search itself is broken"
        # The outputs are not empty: something was searched.
        assert "PLAY RECAP" in self.stdout or "PLAY [" in self.stdout, self.explain()
        assert len(self.events()) > 10


def deploy_answers(job_root_hint, namespace, **more):
    # The test bed's kwok pods serve nothing behind the Service: no health gate (docs/testbed.md).
    answers = {"coder_namespace": namespace, "coder_create_namespace": "true", "coder_chart_repo_url": "",
               "coder_chart_ref": job_root_hint, "coder_helm_timeout": 120, "coder_replicas": 1,
               "coder_health_check": "false"}
    answers.update(more)
    return answers


def deploy_job(root, namespace, verbosity=0, diff=False, launch_vars=None, pg=None, kube=None, **answers):
    """A "Deploy Coder" job; the chart is the stand-in chart of the job's project checkout."""
    job = Job(root, "deploy_coder", {"coder_namespace": namespace}, verbosity=verbosity, diff=diff, pg=pg, kube=kube)
    # Now that the project is there, answer with its chart path (as a survey answer would).
    job.extravars = launch_extra_vars(job.defs, "deploy_coder",
                                      deploy_answers(job.answers_path("tests/charts/coder-v1"), namespace, **answers),
                                      launch_vars)
    (job.dir / "env" / "extravars").write_text(json.dumps(job.extravars))
    return job


def secret_password(namespace):
    data = kubectl_json("get", "secret", "coder-db-password", "-n", namespace)["data"]
    return base64.b64decode(data["password"]).decode()


# -- the tests ------------------------------------------------------------------------------------

@pytest.fixture(scope="module")
def root(tmp_path_factory):
    return tmp_path_factory.mktemp("awx-jobs")


@pytest.fixture(scope="module")
def namespace():
    ns = new_namespace()
    yield ns
    sh(HELM, "uninstall", "coder", "-n", ns, "--wait", "--timeout", "60s", check=False)
    sh("kubectl", "delete", "clusterrolebinding", f"{ns}-deployer", "--ignore-not-found", check=False)
    delete_namespace(ns)


@pytest.mark.reliability(
    section="Leaks", case="AWX job, verbosity 0",
    done="deploy_coder.yml through ansible-runner laid out as AWX does (credentials as env/envvars, survey as "
         "env/extravars)",
    expected="deployed; the password and the kubeconfig's key in no artifacts/*/stdout, job_events/*.json, "
             "extravars or Helm values, in any encoding")
def test_deploy_verbosity_0(root, namespace):
    job = deploy_job(root, namespace).run()
    assert job.status == "successful", job.explain()
    pw = password()
    # The password is not an extra variable: env/extravars holds only the lookup expression.
    assert not leaks.scan_files([job.dir / "env" / "extravars"], leaks.forms(pw))
    # No extra variable maps the credential: the roles read CODER_PG_* themselves.
    fed = {"coder_db_host", "coder_db_port", "coder_db_user", "coder_db_name", "coder_db_password", "coder_db_ssl_mode",
           "coder_db_ssl_ca_file", "coder_db_ssl_cert_file", "coder_db_ssl_key_file", "coder_kubeconfig"}
    assert not fed & set(job.extravars), sorted(fed & set(job.extravars))
    newest = history(namespace)[-1]
    assert newest["status"] == "deployed", newest
    # The password came from the credential (env/envvars) and reached the cluster, only as the Secret.
    assert secret_password(namespace) == pw
    values = json.dumps(values_of(namespace, newest["revision"], all_values=True))
    assert not leaks.scan_text(values, leaks.forms(pw), "values")
    job.assert_no_leak(pw, "the database password")
    job.assert_no_leak(kubeconfig_key_data(flat_kubeconfig()), "the kubeconfig's client key", in_env=False)
    wait_for(lambda: available(namespace, 1), 120, "coderd to be available")


@pytest.mark.reliability(
    section="Leaks", case="AWX job, verbosity 4 with diff",
    done="the same job at -vvvv with --diff (an upgrade to 2 replicas)",
    expected="upgraded; the password and the kubeconfig's key in no job stdout or job event, in any encoding")
def test_deploy_verbosity_4_with_diff(root, namespace):
    before = history(namespace)[-1]["revision"]
    job = deploy_job(root, namespace, verbosity=4, diff=True, coder_replicas=2).run()
    assert job.status == "successful", job.explain()
    # Verbosity 4 and diff were in force (so the search covered what they print).
    command = json.loads((job.artifacts / "command").read_text())["command"]
    assert "-vvvv" in command and "--diff" in command, command
    # The modules ran in the worker (the inventory's interpreter is ansible_playbook_python) and said so.
    assert "runs in this worker process" in job.stdout, job.explain()
    newest = history(namespace)[-1]
    assert newest["status"] == "deployed" and newest["revision"] > before, newest
    assert values_of(namespace, newest["revision"])["coderd"]["replicas"] == 2
    pw = password()
    assert secret_password(namespace) == pw
    job.assert_no_leak(pw, "the database password")
    job.assert_no_leak(kubeconfig_key_data(flat_kubeconfig()), "the kubeconfig's client key", in_env=False)
    wait_for(lambda: available(namespace, 2), 120, "coderd to be available")


def test_rollback_job(root, namespace):
    first = history(namespace)[0]
    answers = {"coder_namespace": namespace, "coder_rollback_revision": first["revision"],
               "coder_health_check": "false"}
    job = Job(root, "rollback_coder", answers).run()
    assert job.status == "successful", job.explain()
    newest = history(namespace)[-1]
    assert newest["status"] == "deployed" and newest["description"].startswith("Rollback to"), newest
    assert values_of(namespace, newest["revision"]) == values_of(namespace, first["revision"])
    wait_for(lambda: available(namespace, 1), 120, "coderd to be available after the rollback")
    job.assert_no_leak(kubeconfig_key_data(flat_kubeconfig()), "the kubeconfig's client key", in_env=False)


def test_wrong_password_is_refused_and_never_shown(root, namespace):
    """A wrong, awkward password from the credential: the job stops at the preflight, changes
    nothing, and the password is in no output at verbosity 4 with diff."""
    canary = f"Wr0ng pa ss'\"=@%\\:Ünï {secrets.token_hex(4)}"
    before = history(namespace)
    secret_before = secret_password(namespace)
    job = deploy_job(root, namespace, verbosity=4, diff=True, coder_replicas=2, pg=pg_inputs(canary)).run()
    assert job.status == "failed", job.explain()
    assert "PostgreSQL check failed" in job.stdout, job.explain()
    job.assert_no_leak(canary, "the wrong password")
    assert history(namespace) == before
    assert secret_password(namespace) == secret_before


def test_deploy_with_the_bearer_token_credential(root, namespace):
    """AWX's built-in "OpenShift or Kubernetes API Bearer Token" credential and no kubeconfig at all:
    a ServiceAccount's token in K8S_AUTH_API_KEY, the API server in K8S_AUTH_HOST, its CA in the file
    K8S_AUTH_SSL_CA_CERT names. helm and the modules authenticate as the ServiceAccount (without its
    RBAC binding the job is refused as that user), and the token is in no artifact."""
    sa = "awx-deployer"
    sh("kubectl", "create", "serviceaccount", sa, "-n", namespace)
    token = sh("kubectl", "create", "token", sa, "-n", namespace, "--duration=15m").stdout.strip()
    cluster = yaml.safe_load(flat_kubeconfig())["clusters"][0]["cluster"]
    kube = {"type": "bearer", "host": bed()["CODER_TEST_KUBE_APISERVER"], "bearer_token": token, "verify_ssl": True,
            "ssl_ca_cert": base64.b64decode(cluster["certificate-authority-data"]).decode()}
    before = history(namespace)

    # The control: without RBAC the ServiceAccount may do nothing, and the job says who it was.
    job = deploy_job(root, namespace, coder_replicas=2, kube=kube).run()
    envvars = json.loads((job.dir / "env" / "envvars").read_text())
    assert envvars["K8S_AUTH_API_KEY"] == token and envvars["K8S_AUTH_VERIFY_SSL"] == "True"
    assert not any(k in envvars for k in ("KUBECONFIG", "K8S_AUTH_KUBECONFIG")), sorted(envvars)
    assert job.status == "failed", job.explain()
    assert f"system:serviceaccount:{namespace}:{sa}" in job.stdout, job.explain()
    job.assert_no_leak(token, "the bearer token")
    assert history(namespace) == before

    sh("kubectl", "create", "clusterrolebinding", f"{namespace}-deployer", "--clusterrole=cluster-admin",
       f"--serviceaccount={namespace}:{sa}")
    try:
        job = deploy_job(root, namespace, verbosity=4, diff=True, coder_replicas=2, kube=kube).run()
        assert job.status == "successful", job.explain()
        job.assert_no_leak(token, "the bearer token")
        job.assert_no_leak(password(), "the database password")
    finally:
        sh("kubectl", "delete", "clusterrolebinding", f"{namespace}-deployer", "--ignore-not-found", check=False)
    newest = history(namespace)[-1]
    assert newest["status"] == "deployed" and newest["revision"] > before[-1]["revision"], newest
    assert values_of(namespace, newest["revision"])["coderd"]["replicas"] == 2
    values = json.dumps(values_of(namespace, newest["revision"], all_values=True))
    assert not leaks.scan_text(values, leaks.forms(token), "values")
    wait_for(lambda: available(namespace, 2), 120, "coderd to be available")


def test_uninstall_job(root, namespace):
    job = Job(root, "uninstall_coder", {"coder_namespace": namespace, "coder_uninstall_delete_secrets": "true"},
              verbosity=4, diff=True).run()
    assert job.status == "successful", job.explain()
    assert history(namespace) == []
    proc = sh("kubectl", "get", "secret", "coder-db-password", "-n", namespace, check=False)
    assert proc.returncode != 0 and "NotFound" in proc.stderr, proc.stdout + proc.stderr
    job.assert_no_leak(kubeconfig_key_data(flat_kubeconfig()), "the kubeconfig's client key", in_env=False)


# -- cancel ---------------------------------------------------------------------------------------

def _helm_processes(namespace):
    """pids of helm processes working on this test's namespace (started by this test's jobs)."""
    pids = []
    for proc in Path("/proc").iterdir():
        if not proc.name.isdigit():
            continue
        try:
            cmd = (proc / "cmdline").read_bytes().split(b"\0")
        except OSError:
            continue
        if cmd and cmd[0].endswith(b"helm") and namespace.encode() in cmd:
            pids.append(int(proc.name))
    return pids


@pytest.fixture()
def cancel_namespace():
    ns = new_namespace()
    yield ns
    for pid in _helm_processes(ns):
        try:
            os.kill(pid, signal.SIGKILL)
        except ProcessLookupError:
            pass
    sh(HELM, "uninstall", "coder", "-n", ns, "--no-hooks", "--timeout", "60s", check=False)
    delete_namespace(ns)


@pytest.mark.reliability(
    section="Faults", case="AWX job cancelled mid-upgrade (SIGTERM to ansible-runner)",
    done="a deploy job upgrading to pods that never become ready, cancelled as AWX cancels: SIGTERM to "
         "ansible-runner while helm waits",
    expected="job canceled; the last good revision deployed (as a rollback) and live; no password in the artifacts")
def test_cancelled_job_ends_at_the_last_good_revision(root, cancel_namespace, observe):
    """AWX cancels a job by signalling ansible-runner (SIGTERM/SIGINT), which then kills the
    ansible-playbook process group. Cancelled mid-upgrade (the new pods never become ready), the
    release must end at its last good revision, live."""
    ns = cancel_namespace
    good_job = deploy_job(root, ns, coder_replicas=2).run()
    assert good_job.status == "successful", good_job.explain()
    wait_for(lambda: available(ns, 2), 120, "the good release to be available")
    good = history(ns)[-1]
    good_values = values_of(ns, good["revision"])
    good_template = comparable(deployment(ns)["spec"]["template"])

    job = deploy_job(root, ns, coder_replicas=2, coder_helm_timeout=240,
                     launch_vars={"coder_values_overrides": {"testing": {"failPods": "not-ready"}}}).start()
    wait_for(lambda: job.proc.poll() is not None or history(ns)[-1]["status"] == "pending-upgrade", 180,
             "the upgrade to be running")
    assert job.proc.poll() is None, job.wait().explain()
    time.sleep(3)
    sent = time.monotonic()
    job.proc.send_signal(signal.SIGTERM)  # to ansible-runner only, as AWX's cancel reaches it
    job.wait(120)
    assert job.status == "canceled", job.explain()
    job.assert_no_leak(password(), "the database password")

    def back_to_good():
        hist = history(ns)
        newest = hist[-1]
        if newest["status"] != "deployed" or newest["chart"] != good["chart"]:
            return None
        if values_of(ns, newest["revision"]) != good_values:
            return None
        if comparable(deployment(ns)["spec"]["template"]) != good_template or not available(ns, 2):
            return None
        return newest

    try:
        newest = wait_for(back_to_good, 150, "the last good revision to be deployed and live again")
    except AssertionError as exc:
        hist = [(h["revision"], h["status"], h["description"][:80]) for h in history(ns)]
        raise AssertionError(f"{exc}\nhelm history: {hist}\nhelm still running: {_helm_processes(ns)}\n"
                             f"{job.explain()}") from None
    # helm's rollback copies the good revision into a new one: the release did move and came back.
    assert newest["revision"] > good["revision"] and newest["description"].startswith("Rollback to"), newest
    seconds = round(time.monotonic() - sent, 1)
    observe(f"job {job.status}; {newest['description'][:40]} as revision {newest['revision']}, deployed and live "
            f"{seconds} s after SIGTERM; no password in the artifacts")
    MEASUREMENTS.parent.mkdir(parents=True, exist_ok=True)
    with open(MEASUREMENTS, "a", encoding="utf-8") as fh:
        fh.write(json.dumps({"name": "awx_cancel_back_to_good", "seconds_after_sigterm": seconds,
                             "revision": newest["revision"], "description": newest["description"]}) + "\n")
