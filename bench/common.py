"""Plumbing of make bench: the test bed's environment, timed runs, samplers, statistics."""

from __future__ import annotations

import datetime
import json
import os
import shutil
import statistics
import subprocess
import threading
import time
from pathlib import Path

REPO = Path(__file__).resolve().parents[1]
VENV_BIN = REPO / ".venv" / "bin"
STATE = Path(os.environ.get("CODER_TESTBED_STATE") or REPO / ".testbed")
CHART = REPO / "tests" / "charts" / "coder-v1"
CONTENDERS = REPO / "bench" / "contenders"
HELM_NAMES = frozenset(("helm", "helm3", "helm4"))


class BenchError(Exception):
    pass


def load_env():
    """os.environ with the test bed's env.sh loaded (make bench has sourced it already)."""
    env = dict(os.environ)
    if "CODER_TEST_PG_PASSWORD_FILE" not in env or "KUBECONFIG" not in env:
        env_sh = STATE / "env.sh"
        if not env_sh.exists():
            raise BenchError(f"{env_sh} is missing: run `make bench` (it brings the test bed up)")
        out = subprocess.run(["bash", "-c", f". {env_sh} && env -0"], capture_output=True, check=True)
        env = dict(item.split("=", 1) for item in out.stdout.decode().split("\0") if "=" in item)
    env["PATH"] = f"{VENV_BIN}:{env['PATH']}"
    env["ANSIBLE_COLLECTIONS_PATH"] = str(REPO / "playbooks" / "collections")
    env.pop("ANSIBLE_COLLECTIONS_PATHS", None)
    env.update(ANSIBLE_NOCOLOR="1", ANSIBLE_FORCE_COLOR="0", ANSIBLE_DEPRECATION_WARNINGS="0",
               ANSIBLE_HOST_KEY_CHECKING="0", ANSIBLE_RETRY_FILES_ENABLED="0")
    # The collection's own libpq variables must not steer the contenders (PGPASSWORD is never set).
    for key in [k for k in env if k.startswith("CODER_PG_")]:
        env.pop(key)
    return env


def which(name, env):
    path = shutil.which(name, path=env["PATH"])
    if not path:
        raise BenchError(f"{name} is not on PATH; run `make bench` (it loads the test bed's env.sh)")
    return path


# -- statistics ---------------------------------------------------------------------------------

def summary(values):
    """median, min, max and n of a list of numbers (None when empty)."""
    values = [v for v in values if v is not None]
    if not values:
        return None
    return {"median": statistics.median(values), "min": min(values), "max": max(values), "n": len(values)}


def fmt_s(stat, digits=1):
    if not stat:
        return "-"
    return f"{stat['median']:.{digits}f} ({stat['min']:.{digits}f}-{stat['max']:.{digits}f})"


def ratio(a, b):
    if not a or not b or not b["median"]:
        return None
    return a["median"] / b["median"]


def loadavg():
    return tuple(round(x, 2) for x in os.getloadavg())


def now_iso():
    return datetime.datetime.now(datetime.UTC).strftime("%Y-%m-%dT%H:%M:%SZ")


# -- timed runs ---------------------------------------------------------------------------------

class Runs:
    """Runs commands, each with its output in a log file, and remembers every log written."""

    def __init__(self, log_dir: Path, env):
        self.log_dir = log_dir
        self.log_dir.mkdir(parents=True, exist_ok=True)
        self.env = env
        self.logs = []
        self._count = 0

    def log_path(self, tag):
        self._count += 1
        safe = "".join(c if c.isalnum() or c in "-_." else "_" for c in tag)[:100]
        path = self.log_dir / f"{self._count:04d}-{safe}.log"
        self.logs.append(path)
        return path

    def start(self, cmd, tag, env_extra=None, stdin=None):
        env = dict(self.env, **(env_extra or {}))
        log = self.log_path(tag)
        fh = open(log, "w", encoding="utf-8", errors="replace")
        fh.write("$ " + " ".join(map(str, cmd)) + "\n")
        fh.flush()
        start = time.monotonic()
        proc = subprocess.Popen([str(c) for c in cmd], stdout=fh, stderr=subprocess.STDOUT, env=env,
                                cwd=str(REPO), stdin=stdin if stdin is not None else subprocess.DEVNULL,
                                start_new_session=True)
        return Started(proc, fh, log, start)

    def timed(self, cmd, tag, env_extra=None, expect_ok=True, timeout=1800):
        started = self.start(cmd, tag, env_extra)
        rc, seconds = started.wait(timeout)
        if expect_ok and rc != 0:
            raise BenchError(f"{tag} failed (exit {rc}); see {started.log}")
        return rc, seconds, started.log


class Started:
    """A started process; a thread notes the moment it ends (even while nobody waits for it)."""

    def __init__(self, proc, fh, log, start):
        self.proc = proc
        self.fh = fh
        self.log = log
        self.start = start
        self.end = None
        self._waiter = threading.Thread(target=self._wait_end, daemon=True)
        self._waiter.start()

    def _wait_end(self):
        self.proc.wait()
        self.end = time.monotonic()

    def wait(self, timeout=1800):
        self._waiter.join(timeout)
        if self._waiter.is_alive():
            os.killpg(self.proc.pid, 9)
            self._waiter.join(30)
        rc = self.proc.wait(30)
        self.fh.close()
        return rc, self.end - self.start

    def poll(self):
        return self.proc.poll()


# -- the cluster and helm -------------------------------------------------------------------------

def kubectl(env, *args, check=True, timeout=300, input=None):
    proc = subprocess.run(["kubectl", *map(str, args)], capture_output=True, text=True, env=env,
                          timeout=timeout, input=input)
    if check and proc.returncode != 0:
        raise BenchError(f"kubectl {' '.join(map(str, args))} failed: {proc.stderr.strip()}")
    return proc


def helm_history(env, namespace, helm="helm3", name="coder"):
    proc = subprocess.run([helm, "history", name, "-n", namespace, "-o", "json", "--max", "1000"],
                          capture_output=True, text=True, env=env, timeout=120)
    if proc.returncode != 0:
        if "not found" in proc.stderr:
            return []
        raise BenchError(f"helm history {name} -n {namespace}: {proc.stderr.strip()}")
    return sorted(json.loads(proc.stdout or "[]"), key=lambda r: int(r["revision"]))


def delete_namespaces(env, namespaces, wait=True, timeout=300):
    """Delete namespaces (and with them the releases in them); wait until they are gone."""
    namespaces = sorted(set(namespaces))
    if not namespaces:
        return
    for i in range(0, len(namespaces), 50):
        kubectl(env, "delete", "namespace", "--ignore-not-found", "--wait=false", *namespaces[i:i + 50])
    if not wait:
        return
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        out = kubectl(env, "get", "namespaces", "-o", "jsonpath={.items[*].metadata.name}").stdout.split()
        left = [n for n in namespaces if n in out]
        if not left:
            return
        time.sleep(2)
    raise BenchError(f"namespaces still terminating after {timeout} s: {', '.join(left[:10])}")


class ReleaseWatch(threading.Thread):
    """Watches a release's storage Secrets (helm 3 and 4: sh.helm.release.v1.<name>.v<N>, labels
    owner=helm, name, version, status) and records when each revision reached each status."""

    def __init__(self, namespace, kubeconfig, name="coder"):
        super().__init__(daemon=True)
        from kubernetes import client, config, watch  # from the venv (requirements.txt)
        self.api = client.CoreV1Api(config.new_client_from_config(config_file=kubeconfig))
        self.watch_mod = watch
        self.namespace = namespace
        self.selector = f"owner=helm,name={name}"
        self.events = []  # (monotonic time, revision, status)
        self._halt = threading.Event()
        self._cond = threading.Condition()
        self.ready = threading.Event()

    def run(self):
        rv = None
        while not self._halt.is_set():
            w = self.watch_mod.Watch()
            try:
                kwargs = {"label_selector": self.selector, "timeout_seconds": 30}
                if rv:
                    kwargs["resource_version"] = rv
                else:
                    listing = self.api.list_namespaced_secret(self.namespace, label_selector=self.selector)
                    rv = listing.metadata.resource_version
                    self._record(listing.items, initial=True)
                    self.ready.set()
                    kwargs["resource_version"] = rv
                for ev in w.stream(self.api.list_namespaced_secret, self.namespace, **kwargs):
                    obj = ev["object"]
                    rv = obj.metadata.resource_version
                    if ev["type"] in ("ADDED", "MODIFIED"):
                        self._record([obj])
                    if self._halt.is_set():
                        break
            except Exception:  # a watch that expired (410) starts again from a fresh list
                rv = None
                time.sleep(0.2)

    def _record(self, items, initial=False):
        t = time.monotonic()
        with self._cond:
            for obj in items:
                labels = obj.metadata.labels or {}
                self.events.append((0.0 if initial else t, int(labels.get("version", 0)), labels.get("status")))
            self._cond.notify_all()

    def first(self, predicate):
        """Monotonic time of the first event with predicate(revision, status), or None."""
        with self._cond:
            for t, rev, status in self.events:
                if predicate(rev, status):
                    return t
        return None

    def stop(self):
        self._halt.set()


# -- samplers -------------------------------------------------------------------------------------

class Sampler(threading.Thread):
    """Every `interval` s: helm processes started by the run under test (from /proc: those with
    one of `roots()` among their ancestors; other jobs on the machine run helm too), the password
    in any process's argument list (/proc/<pid>/cmdline), and optionally PostgreSQL connections."""

    def __init__(self, password: bytes, interval=0.25, pg=None, roots=None):
        super().__init__(daemon=True)
        self.password = password
        self.interval = interval
        self.pg = pg
        self.roots = roots or (lambda: set())
        self.peak_helm = 0
        self.peak_pg = 0
        self.samples = 0
        self.leaks = []
        self._halt = threading.Event()

    @staticmethod
    def _ppid(pid):
        try:
            with open(f"/proc/{pid}/stat", "rb") as fh:
                stat = fh.read()
        except OSError:
            return None
        # pid (comm) state ppid ...: comm may hold spaces and brackets, so split after the last ')'.
        return int(stat.rsplit(b")", 1)[1].split()[1])

    def _descends(self, pid, roots):
        for _ in range(30):
            if pid in roots:
                return True
            pid = self._ppid(pid)
            if not pid or pid == 1:
                return False
        return False

    def _scan(self):
        helm = 0
        roots = self.roots()
        for entry in os.scandir("/proc"):
            if not entry.name.isdigit():
                continue
            try:
                with open(f"/proc/{entry.name}/cmdline", "rb") as fh:
                    cmdline = fh.read()
            except OSError:
                continue
            if not cmdline:
                continue
            argv0 = os.path.basename(cmdline.split(b"\0", 1)[0]).decode(errors="replace")
            if argv0 in HELM_NAMES and roots and self._descends(int(entry.name), roots):
                helm += 1
            if self.password and self.password in cmdline:
                self.leaks.append(f"pid {entry.name} ({argv0})")
        return helm

    def run(self):
        while not self._halt.is_set():
            self.peak_helm = max(self.peak_helm, self._scan())
            if self.pg is not None:
                try:
                    self.peak_pg = max(self.peak_pg, self.pg.count())
                except Exception:
                    pass
            self.samples += 1
            self._halt.wait(self.interval)

    def stop(self):
        self._halt.set()
        self.join(10)


class PgActivity:
    """Client connections of role `coder` on a server, read by the superuser over its socket."""

    def __init__(self, socket_dir, port):
        import psycopg2  # from the venv (requirements.txt)
        self.conn = psycopg2.connect(host=str(socket_dir), port=port, user="postgres", dbname="postgres")
        self.conn.autocommit = True

    def count(self):
        with self.conn.cursor() as cur:
            cur.execute("SELECT count(*) FROM pg_stat_activity WHERE backend_type = 'client backend'"
                        " AND usename = 'coder' AND pid <> pg_backend_pid()")
            return cur.fetchone()[0]

    def close(self):
        self.conn.close()


def json_task_durations(output):
    """{task name: seconds} from ansible's json stdout callback (the play's tasks, one host)."""
    start = output.find("{")
    data = json.loads(output[start:])
    out = {}
    for play in data.get("plays", []):
        for task in play.get("tasks", []):
            d = task["task"].get("duration") or {}
            if d.get("start") and d.get("end"):
                t0 = datetime.datetime.fromisoformat(d["start"].replace("Z", "+00:00"))
                t1 = datetime.datetime.fromisoformat(d["end"].replace("Z", "+00:00"))
                out[task["task"]["name"]] = out.get(task["task"]["name"], 0.0) + (t1 - t0).total_seconds()
    return out


class HealthPoller(threading.Thread):
    """Every `interval` s, what the collection's health gate asks (plugins/module_utils/_health_gate.py),
    through the API server's service proxy: /healthz answers 2xx and /api/v2/buildinfo reports
    `version`. Records (monotonic time, healthy, what it saw)."""

    def __init__(self, namespace, kubeconfig, version, service="coder:80", interval=1.0):
        super().__init__(daemon=True)
        from kubernetes import client, config  # from the venv (requirements.txt)
        self.api = client.CoreV1Api(config.new_client_from_config(config_file=kubeconfig))
        self.namespace = namespace
        self.service = service
        self.want = version if version.startswith("v") else f"v{version}"
        self.interval = interval
        self.samples = []  # (monotonic time, healthy, detail)
        self._halt = threading.Event()

    def ask(self):
        try:
            # _preload_content=False: the raw body (the client would turn JSON into a Python repr).
            self.api.connect_get_namespaced_service_proxy_with_path(self.service, self.namespace, "healthz",
                                                                    _request_timeout=5, _preload_content=False)
            raw = self.api.connect_get_namespaced_service_proxy_with_path(
                self.service, self.namespace, "api/v2/buildinfo", _request_timeout=5, _preload_content=False)
            version = json.loads(raw.data).get("version")
            return version == self.want, version
        except Exception as exc:  # not answering is the thing measured
            return False, f"{exc.__class__.__name__} {getattr(exc, 'status', '') or ''}".strip()

    def run(self):
        while not self._halt.is_set():
            t = time.monotonic()
            ok, detail = self.ask()
            self.samples.append((t, ok, detail))
            self._halt.wait(max(0.0, self.interval - (time.monotonic() - t)))

    def healthy_since(self):
        """Start of the current unbroken run of healthy samples (None when the last was not)."""
        since = None
        for t, ok, _ in self.samples:
            since = (since or t) if ok else None
        return since

    def down_seconds(self, start, end):
        """Seconds between start and end during which the samples said not healthy."""
        down, prev = 0.0, None
        for t, ok, _ in self.samples:
            if start <= t <= end:
                if prev is not None and not prev[1]:
                    down += t - prev[0]
                prev = (t, ok)
        return down

    def stop(self):
        self._halt.set()
        self.join(10)
