# Copyright (c) 2025, coderops maintainers
# GNU General Public License v3.0+ (see LICENSE or https://www.gnu.org/licenses/gpl-3.0.txt)
# SPDX-License-Identifier: GPL-3.0-or-later

# Note that this module util is **PRIVATE** to the collection. It can have breaking changes at any time.
# Do not use this from other collections or standalone plugins/modules!

"""The helm command line, for helm 3 and helm 4.

The one place that knows the flags of both majors:

* helm 3 waits with a plain ``--wait``; helm 4 takes a strategy, ``--wait=watcher`` (kstatus,
  the default strategy of ``--rollback-on-failure``) or ``--wait=legacy`` (helm 3's checks);
* helm 3's ``--atomic`` is ``--rollback-on-failure`` in helm 4 and missing on ``helm install``
  in 4.0 and 4.1. Neither is used here: the caller rolls back itself, to the revision it chose
  from ``helm history -o json`` (``--atomic`` cannot keep a failed first install, and it sits
  out the whole timeout where the caller stops early);
* helm 4 logs ``level=WARN ...`` lines on stderr besides the ``Error:`` line.

Values go to helm in a file (mode 0600, removed afterwards), never on the command line. They
only name Secrets, so no password ever reaches helm.

The credentials come from _kube.KubeAuth, the same object the API client uses: the kubeconfig
path and context as flags, the API server's URL, its CA file, the TLS check and the bearer token
as helm's own environment variables (HELM_KUBEAPISERVER, HELM_KUBECAFILE,
HELM_KUBEINSECURE_SKIP_TLS_VERIFY, HELM_KUBETOKEN; helm 3 and 4 both read them): the token is
never in a process argument (visible to every user in ps) nor in a file.
"""

from __future__ import annotations

import json
import os
import re
import shutil
import signal
import subprocess
import tempfile
import threading

try:
    import yaml
except ImportError:
    yaml = None
    HAS_YAML = False
else:
    HAS_YAML = True

from ansible_collections.coderops.deploy.plugins.module_utils._kube import KubeError

GOOD_STATUSES = ("deployed", "superseded")
PENDING_STATUSES = ("pending-install", "pending-upgrade", "pending-rollback")
WAIT_STRATEGIES = ("watcher", "legacy")
ERROR_LIMIT = 1500

_VERSION = re.compile(r"v?(\d+)\.(\d+)\.(\d+)")
_NOT_FOUND = ("release: not found", "release not found")


class HelmError(Exception):
    """A helm command failed; `field` names the option at fault when the input is to blame."""

    def __init__(self, message, field=None, stderr=""):
        super().__init__(message)
        self.message = message
        self.field = field
        self.stderr = stderr


def error_text(stderr, limit=ERROR_LIMIT):
    """helm's error, without helm 4's log lines; shortened to `limit` characters."""
    lines = [ln.strip() for ln in (stderr or "").splitlines() if ln.strip()]
    errors = [ln for ln in lines if ln.startswith("Error:")]
    if errors:
        text = " ".join(e[len("Error:"):].strip() for e in errors)
    else:
        text = " ".join(ln for ln in lines if not ln.startswith("level=")) or " ".join(lines)
    if len(text) > limit:
        text = text[:limit] + f" ... ({len(text) - limit} more characters)"
    return text


def chart_args(ref, repo_url=None):
    """(chart argument, --repo URL or None): with a repository URL, `repo/chart` becomes `chart`
    (helm looks the name up in that repository's index); a local path or an oci:// reference
    takes no repository."""
    if os.path.exists(ref) or ref.startswith(("oci://", "/", "./", "../")):
        return ref, None
    if repo_url:
        return ref.rstrip("/").split("/")[-1], repo_url
    return ref, None


def _parse_yaml(text, what):
    if not HAS_YAML:
        raise HelmError(f"reading {what} needs the Python library PyYAML on the host that runs helm")
    try:
        return yaml.safe_load(text)
    except yaml.YAMLError as exc:
        raise HelmError(f"helm printed {what} that is not YAML: {exc}") from None


def parse_yaml_documents(text):
    """Every document of a multi-document YAML stream (helm get hooks / manifest)."""
    if not HAS_YAML:
        return []
    try:
        return [d for d in yaml.safe_load_all(text or "") if isinstance(d, dict)]
    except yaml.YAMLError:
        return []


class Running:
    """A helm process started in its own session, with its output collected by threads."""

    def __init__(self, cmd, env):
        self.cmd = cmd
        self.proc = subprocess.Popen(cmd, stdin=subprocess.DEVNULL, stdout=subprocess.PIPE,
                                     stderr=subprocess.PIPE, env=env, text=True, errors="replace",
                                     start_new_session=True)
        self._out, self._err = [], []
        self._threads = [threading.Thread(target=self._pump, args=(s, b), daemon=True)
                         for s, b in ((self.proc.stdout, self._out), (self.proc.stderr, self._err))]
        for t in self._threads:
            t.start()

    @staticmethod
    def _pump(stream, buf):
        for line in stream:
            buf.append(line)

    def wait_up_to(self, seconds):
        """helm's exit status, or None when it still runs after `seconds`. Waits on the process
        rather than sleeping, so a command that ends is noticed at once, not at the next tick."""
        try:
            return self.proc.wait(seconds)
        except subprocess.TimeoutExpired:
            return None

    def stop(self, grace=20):
        """SIGTERM (helm marks the release failed and stops), then SIGKILL after `grace` s."""
        if self.proc.poll() is not None:
            return self.proc.returncode
        try:
            os.killpg(self.proc.pid, signal.SIGTERM)
        except OSError:
            pass
        try:
            return self.proc.wait(grace)
        except subprocess.TimeoutExpired:
            try:
                os.killpg(self.proc.pid, signal.SIGKILL)
            except OSError:
                pass
            return self.proc.wait(10)

    def finish(self):
        self.proc.wait()
        for t in self._threads:
            t.join(5)
        return self.proc.returncode, "".join(self._out), "".join(self._err)


# The first helm releases that read these variables (kubernetes.core.helm checks the same).
_ENV_SINCE = {"HELM_KUBECAFILE": ((3, 5), "ca_cert"),
              "HELM_KUBEINSECURE_SKIP_TLS_VERIFY": ((3, 10), "validate_certs")}


class Helm:
    """One helm binary, with the credentials every command gets."""

    def __init__(self, binary, auth, env=None, wait_strategy="watcher"):
        self.env = dict(os.environ if env is None else env)
        try:
            auth.check()
        except KubeError as exc:
            raise HelmError(exc.message, field=exc.field) from None
        self.auth = auth
        path = shutil.which(binary, path=self.env.get("PATH")) if binary else None
        if not path:
            raise HelmError(f"helm_binary {binary!r} was not found (PATH is searched for a bare"
                            f" name); install helm 3 or 4, or set helm_binary to its full path",
                            field="helm_binary")
        self.binary = path
        self.kubeconfig = auth.kubeconfig
        self.context = auth.context
        self.wait_strategy = wait_strategy
        self.env.update(auth.helm_env())
        self.version, self.major = self._version()
        numbers = tuple(int(n) for n in self.version.split(".")[:2])
        for var, (since, field) in _ENV_SINCE.items():
            if auth.helm_env().get(var) not in (None, "false") and numbers < since:
                raise HelmError(f"{field} needs helm {since[0]}.{since[1]} or newer ({var});"
                                f" {self.binary} is {self.version}", field=field)

    # -- plumbing --------------------------------------------------------------------------

    def _global(self, namespace=None):
        flags = self.auth.helm_flags()
        if namespace:
            flags += ["--namespace", namespace]
        return flags

    def run(self, args, namespace=None, timeout=120, check=True, what=None):
        cmd = [self.binary] + list(args) + self._global(namespace)
        try:
            proc = subprocess.run(cmd, stdin=subprocess.DEVNULL, capture_output=True, text=True,
                                  errors="replace", env=self.env, timeout=timeout, check=False)
        except subprocess.TimeoutExpired:
            raise HelmError(f"helm {args[0]} did not answer within {timeout} s") from None
        except OSError as exc:
            raise HelmError(f"cannot run {self.binary}: {exc.strerror}", field="helm_binary") from None
        if check and proc.returncode != 0:
            raise HelmError(f"{what or 'helm ' + args[0]} failed: {error_text(proc.stderr)}",
                            stderr=proc.stderr)
        return proc

    def _version(self):
        proc = self.run(["version", "--short"], timeout=30, check=False)
        match = _VERSION.search(proc.stdout or "")
        if proc.returncode != 0 or not match:
            raise HelmError(f"helm_binary {self.binary} does not work (helm version --short:"
                            f" {error_text(proc.stderr or proc.stdout)})", field="helm_binary")
        major = int(match.group(1))
        if major not in (3, 4):
            raise HelmError(f"helm_binary {self.binary} is helm {match.group(0)}; this collection"
                            f" supports helm 3 and helm 4", field="helm_binary")
        return match.group(0).lstrip("v"), major

    def wait_flags(self):
        """`--wait` for helm 3; `--wait=<strategy>` for helm 4."""
        return ["--wait"] if self.major == 3 else [f"--wait={self.wait_strategy}"]

    # -- reads -----------------------------------------------------------------------------

    def history(self, name, namespace):
        """All revisions, oldest first; [] when the release does not exist."""
        proc = self.run(["history", name, "--output", "json", "--max", "1000"], namespace,
                        check=False)
        if proc.returncode != 0:
            if any(s in (proc.stderr or "").lower() for s in _NOT_FOUND):
                return []
            raise HelmError(f"helm history {name} failed: {error_text(proc.stderr)}",
                            stderr=proc.stderr)
        try:
            revisions = json.loads(proc.stdout or "[]") or []
        except ValueError:
            raise HelmError("helm history printed something that is not JSON") from None
        return sorted(revisions, key=lambda r: int(r.get("revision", 0)))

    def values(self, name, namespace, revision):
        """The user-supplied values of one revision ({} when none)."""
        proc = self.run(["get", "values", name, "--revision", str(revision), "--output", "json"],
                        namespace)
        try:
            return json.loads(proc.stdout or "null") or {}
        except ValueError:
            raise HelmError("helm get values printed something that is not JSON") from None

    def hooks(self, name, namespace, revision):
        proc = self.run(["get", "hooks", name, "--revision", str(revision)], namespace, check=False)
        return parse_yaml_documents(proc.stdout) if proc.returncode == 0 else []

    def show_chart(self, ref, repo_url=None, version=None):
        """Chart.yaml of the chart that an install would use (proves that it exists)."""
        chart, repo = chart_args(ref, repo_url)
        args = ["show", "chart", chart]
        if repo:
            args += ["--repo", repo]
        if version and not os.path.exists(ref):
            args += ["--version", version]
        proc = self.run(args, timeout=120, check=False)
        if proc.returncode != 0:
            where = f" in {repo_url}" if repo_url else ""
            field = "chart_version" if version and "version" in (proc.stderr or "") else "chart_ref"
            raise HelmError(f"chart {ref!r}{' version ' + version if version else ''} was not"
                            f" found{where}: {error_text(proc.stderr)}; check chart_ref,"
                            f" chart_repo_url and chart_version", field=field, stderr=proc.stderr)
        meta = _parse_yaml(proc.stdout, "Chart.yaml") or {}
        if not isinstance(meta, dict) or not meta.get("name") or not meta.get("version"):
            raise HelmError(f"chart {ref!r} has no name or version in its Chart.yaml", field="chart_ref")
        chart = {"name": str(meta["name"]), "version": str(meta["version"]),
                 "app_version": str(meta.get("appVersion") or "")}
        if version and os.path.exists(ref) and chart["version"] != version:
            raise HelmError(f"chart_version {version} does not exist at {ref}, which holds"
                            f" {chart['name']} {chart['version']}; set chart_version to"
                            f" {chart['version']} or point chart_ref at the wanted version",
                            field="chart_version")
        return chart

    # -- writes ----------------------------------------------------------------------------

    def deploy_command(self, operation, name, namespace, chart_ref, values_file, timeout,
                       repo_url=None, version=None, history_max=10, description=None,
                       create_namespace=False):
        """helm install or helm upgrade, waiting up to `timeout` seconds; never --atomic."""
        chart, repo = chart_args(chart_ref, repo_url)
        args = [operation, name, chart, "--values", values_file, "--timeout", f"{timeout}s"]
        args += self.wait_flags()
        if operation == "upgrade":
            # Exactly the values given (no merge with the previous revision's values).
            args += ["--reset-values", "--history-max", str(history_max)]
        elif create_namespace:
            args += ["--create-namespace"]
        if repo:
            args += ["--repo", repo]
        if version and not os.path.exists(chart_ref):
            args += ["--version", version]
        if description:
            args += ["--description", description]
        return [self.binary] + args + self._global(namespace)

    def start(self, cmd):
        return Running(cmd, self.env)

    def rollback_command(self, name, namespace, revision, timeout, wait=True, history_max=10,
                         force=False):
        """helm rollback; `force` makes helm 3 replace the objects instead of patching them
        (--force), for when helm's record of the live objects is wrong. helm 4 applies server-side
        by default, which needs no such help (and refuses --force-replace with it)."""
        args = ["rollback", name, str(revision), "--timeout", f"{timeout}s",
                "--history-max", str(history_max)]
        if wait:
            args += self.wait_flags()
        if force and self.major == 3:
            args += ["--force"]
        return [self.binary] + args + self._global(namespace)

    def uninstall_command(self, name, namespace, timeout, wait=True):
        args = ["uninstall", name, "--timeout", f"{timeout}s"]
        if wait:
            args += self.wait_flags()
        return [self.binary] + args + self._global(namespace)

    def run_command(self, cmd, timeout):
        """Run a command built above to the end; returns (rc, stdout, stderr)."""
        try:
            proc = subprocess.run(cmd, stdin=subprocess.DEVNULL, capture_output=True, text=True,
                                  errors="replace", env=self.env, timeout=timeout + 60, check=False)
        except subprocess.TimeoutExpired:
            return 1, "", f"Error: {cmd[1]} did not finish within {timeout + 60} s"
        return proc.returncode, proc.stdout, proc.stderr


def write_values_file(values):
    """Write the values (JSON is YAML) to a private temporary file; returns (dir, path)."""
    directory = tempfile.mkdtemp(prefix="coderops-helm-")
    path = os.path.join(directory, "values.json")
    fd = os.open(path, os.O_WRONLY | os.O_CREAT | os.O_EXCL, 0o600)
    with os.fdopen(fd, "w", encoding="utf-8") as fh:
        json.dump(values, fh, sort_keys=True)
    return directory, path


def remove_values_file(directory):
    shutil.rmtree(directory, ignore_errors=True)
