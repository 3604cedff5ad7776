# Copyright (c) 2025, coderops maintainers
# GNU General Public License v3.0+ (see LICENSE or https://www.gnu.org/licenses/gpl-3.0.txt)
# SPDX-License-Identifier: GPL-3.0-or-later

# Note that this module util is **PRIVATE** to the collection. It can have breaking changes at any time.
# Do not use this from other collections or standalone plugins/modules!

"""What coder_helm_release reads and writes in the cluster besides helm.

* The pods of the release's workloads while helm waits: how many are ready, why the others are
  not, and whether one is in a state that will not heal by waiting (CrashLoopBackOff,
  ImagePullBackOff, Failed ...).
* Recent Events, for the failure summary.
* The access URL: an Ingress host, or a LoadBalancer Service's address.
* Failed hook Jobs that a failed revision left behind (they would make the next hook fail).
* A Lease that one run holds while it changes the release, so that a second run sees that
  another operation is in progress (and tells a live operation from a stuck pending-* release).

The calls go through _kube_rest (the standard library, not the kubernetes Python library: see
there why); helm itself talks to the API server with the same credentials (see KubeAuth).

The connection options are kubernetes.core's, with its environment variables (K8S_AUTH_*), so
that AWX's built-in "OpenShift or Kubernetes API Bearer Token" credential (K8S_AUTH_HOST,
K8S_AUTH_API_KEY, K8S_AUTH_VERIFY_SSL, K8S_AUTH_SSL_CA_CERT) and a kubeconfig credential
(K8S_AUTH_KUBECONFIG) work without extra variables.
"""

from __future__ import annotations

import copy
import datetime
import json
import os
import re
import socket
import time
import uuid

from ansible.module_utils.basic import env_fallback
from ansible.module_utils.parsing.convert_bool import boolean
from ansible_collections.coderops.deploy.plugins.module_utils._kube_rest import Api, ApiException, Client
from ansible_collections.coderops.deploy.plugins.module_utils._kubeconfig import (
    Connection,
    KubeconfigError,
    load,
)

RELEASE_NAME_ANNOTATION = "meta.helm.sh/release-name"
# A container that crashed this often and runs, unready, again will crash again.
CRASH_RESTARTS = 2
FATAL_REASONS = frozenset((
    "CrashLoopBackOff", "ImagePullBackOff", "ErrImagePull", "InvalidImageName",
    "CreateContainerConfigError", "CreateContainerError", "RunContainerError",
    "ErrImageNeverPull",
))
LOCK_SUFFIX = "-coderops-lock"
REQUEST_TIMEOUT = 20
PING_TIMEOUT = 5

# What helm (Go's net/http, client-go) prints when the API server cannot be reached, as opposed to
# an answer from it. "timed out waiting for the condition" and "context deadline exceeded" are
# helm's own readiness timeout, not an unreachable server, and are deliberately not here.
_UNREACHABLE_TEXT = re.compile(
    r"connection refused|kubernetes cluster unreachable|no route to host|connection reset by peer"
    r"|broken pipe|tls handshake timeout|i/o timeout|client connection lost|http2: server sent goaway"
    r"|server is currently unable to handle the request|unexpected eof|dial tcp|max retries exceeded"
    r"|failed to establish a new connection|remote end closed connection",
    re.IGNORECASE)
_ERRNO = re.compile(r"\[Errno -?\d+\] [^\"')]+")


class KubeError(Exception):
    def __init__(self, message, field=None):
        super().__init__(message)
        self.message = message
        self.field = field


class LockBusy(Exception):
    """Another run holds the release's Lease."""

    def __init__(self, holder, renewed, operation):
        super().__init__(f"held by {holder}")
        self.holder = holder
        self.renewed = renewed
        self.operation = operation


def _now():
    return datetime.datetime.now(datetime.UTC)


def unreachable_text(text):
    """Whether an error text (helm's stderr, an exception's) says the API server did not answer."""
    return bool(_UNREACHABLE_TEXT.search(text or ""))


def unreachable(exc):
    """Whether an exception of the client means the API server did not answer (it is down,
    restarting, or the network to it is), rather than an answer such as 404 or 403.

    Socket errors (OSError: refused, reset, timed out, TLS) and http.client's (a closed or
    garbled connection) escape as they are; 502/503/504 come from an API server that is starting
    up or a proxy in front of one that is down.
    """
    if isinstance(exc, ApiException):
        return getattr(exc, "status", None) in (None, 0, 502, 503, 504)
    if isinstance(exc, OSError):  # ConnectionError, TimeoutError, socket and ssl errors
        return True
    if (type(exc).__module__ or "").startswith("http.client"):
        return True
    return unreachable_text(str(exc))


def describe_unreachable(exc_or_text, limit=200):
    """A short reason: '[Errno 111] Connection refused' rather than a whole exception text."""
    text = str(exc_or_text or "")
    match = _ERRNO.search(text)
    if match:
        return match.group(0).strip()
    text = " ".join(text.split())
    return text if len(text) <= limit else text[:limit] + " ..."


def _micro(ts):
    return ts.strftime("%Y-%m-%dT%H:%M:%S.%fZ")


def _api_error(exc, what):
    status = getattr(exc, "status", None)
    reason = getattr(exc, "reason", "") or ""
    body = getattr(exc, "body", "") or ""
    detail = body
    try:
        detail = json.loads(body).get("message", body)
    except (ValueError, TypeError, AttributeError):
        pass
    if status == 403:
        return KubeError(f"{what}: forbidden (403). The credentials' user (of the kubeconfig, or"
                         f" of api_key) lacks the RBAC verb: {detail}")
    return KubeError(f"{what}: {status or ''} {reason} {detail}".strip())


# kubernetes.core's connection options and their environment variables (its doc fragment
# kubernetes.core.k8s_auth_options and kubernetes.core.helm's options): the option wins, then the
# variable. Paired with doc fragment coderops.deploy._k8s_auth (a unit test keeps them in step).
AUTH_ENV = {
    "kubeconfig": "K8S_AUTH_KUBECONFIG",
    "context": "K8S_AUTH_CONTEXT",
    "host": "K8S_AUTH_HOST",
    "api_key": "K8S_AUTH_API_KEY",
    "validate_certs": "K8S_AUTH_VERIFY_SSL",
    "ca_cert": "K8S_AUTH_SSL_CA_CERT",
}

_AUTH_SPEC = {
    "kubeconfig": {"type": "path", "fallback": (env_fallback, [AUTH_ENV["kubeconfig"]])},
    "context": {"type": "str", "fallback": (env_fallback, [AUTH_ENV["context"]])},
    "host": {"type": "str", "fallback": (env_fallback, [AUTH_ENV["host"]])},
    "api_key": {"type": "str", "no_log": True, "fallback": (env_fallback, [AUTH_ENV["api_key"]])},
    "validate_certs": {"type": "bool", "aliases": ["verify_ssl"],
                       "fallback": (env_fallback, [AUTH_ENV["validate_certs"]])},
    "ca_cert": {"type": "path", "aliases": ["ssl_ca_cert"],
                "fallback": (env_fallback, [AUTH_ENV["ca_cert"]])},
}


def auth_argument_spec():
    """A fresh copy of the connection options (paired with doc fragment coderops.deploy._k8s_auth)."""
    return copy.deepcopy(_AUTH_SPEC)


class KubeAuth:
    """How helm and the client reach the API server: the options, else their K8S_AUTH_* variable.

    Empty values count as not set: AWX injects every variable of a credential type, empty ones too.
    With ``host`` and ``api_key`` both set, no kubeconfig is read at all (as kubernetes.core does):
    the token, the URL and ``ca_cert``/``validate_certs`` are the whole connection. Otherwise the
    kubeconfig (``kubeconfig``, then E(KUBECONFIG), then ~/.kube/config) and ``context`` are loaded
    and ``host``, ``api_key``, ``ca_cert`` and ``validate_certs`` override what they say.

    The token never leaves this object but as the client's Authorization header and helm's
    HELM_KUBETOKEN environment variable: never a process argument, a file or a message.
    """

    def __init__(self, params=None, env=None):
        params = params or {}
        env = os.environ if env is None else env
        values = {}
        for option, var in AUTH_ENV.items():
            value = params.get(option)
            source = option
            if value is None or (isinstance(value, str) and not value.strip()):
                value = env.get(var)
                source = var
            if isinstance(value, str):
                value = value.strip() or None
            if value is not None and option == "validate_certs" and not isinstance(value, bool):
                try:
                    value = boolean(value, strict=True)
                except TypeError:
                    raise KubeError(f"{source} is {value!r}, which is not a boolean; set validate_certs"
                                    f" ({AUTH_ENV['validate_certs']}) to true or false",
                                    field="validate_certs") from None
            if value is not None and option in ("kubeconfig", "ca_cert"):
                value = os.path.expanduser(value)
            values[option] = value
        self.env = env
        self.kubeconfig = values["kubeconfig"]
        self.context = values["context"]
        self.host = values["host"].rstrip("/") if values["host"] else None
        self._api_key = values["api_key"]
        self.validate_certs = values["validate_certs"]
        self.ca_cert = values["ca_cert"]

    def __repr__(self):
        # Never the token.
        return (f"KubeAuth(kubeconfig={self.kubeconfig!r}, context={self.context!r}, host={self.host!r},"
                f" api_key={'<set>' if self._api_key else None}, validate_certs={self.validate_certs!r},"
                f" ca_cert={self.ca_cert!r})")

    @property
    def api_key(self):
        return self._api_key

    @property
    def token_only(self):
        """host and api_key together: no kubeconfig is read."""
        return bool(self.host and self._api_key)

    def where(self):
        """Where the API server comes from, for messages (no secret)."""
        if self.host:
            return f"at {self.host} (host or {AUTH_ENV['host']})"
        return "in the kubeconfig"

    def check(self):
        """Bad input raises KubeError naming the option, before anything runs; returns the
        kubeconfig path to load (None when only host and api_key are used)."""
        if self.host and not self.host.startswith(("https://", "http://")):
            raise KubeError(f"host {self.host!r} is not the URL of an API server; set host"
                            f" ({AUTH_ENV['host']}) to one such as https://api.example.com:6443",
                            field="host")
        if self.ca_cert:
            if not os.path.isfile(self.ca_cert):
                raise KubeError(f"ca_cert {self.ca_cert} does not exist; set ca_cert"
                                f" ({AUTH_ENV['ca_cert']}) to the API server's CA certificate file",
                                field="ca_cert")
            if not os.access(self.ca_cert, os.R_OK):
                raise KubeError(f"ca_cert {self.ca_cert} is not readable by this user; fix its"
                                f" permissions", field="ca_cert")
        if self.token_only:
            return None
        return check_kubeconfig(self.kubeconfig, self.env)

    def helm_env(self):
        """The variables that hand helm the options (helm 3 and 4 read them: `helm env`), so that
        the token is never on helm's command line nor in a file."""
        out = {}
        if self.token_only:
            # As the client: nothing from a kubeconfig (an empty one, so that helm does not fall
            # back to ~/.kube/config and mix in its user or cluster).
            out["KUBECONFIG"] = os.devnull
        if self.host:
            out["HELM_KUBEAPISERVER"] = self.host
        if self._api_key:
            out["HELM_KUBETOKEN"] = self._api_key
        if self.validate_certs is False:
            out["HELM_KUBEINSECURE_SKIP_TLS_VERIFY"] = "true"
        else:
            if self.validate_certs is True:
                out["HELM_KUBEINSECURE_SKIP_TLS_VERIFY"] = "false"
            if self.ca_cert:
                out["HELM_KUBECAFILE"] = self.ca_cert
        return out

    def helm_flags(self):
        """--kubeconfig and --kube-context (paths and names, no secret)."""
        flags = []
        if self.token_only:
            return flags
        if self.kubeconfig:
            flags += ["--kubeconfig", self.kubeconfig]
        if self.context:
            flags += ["--kube-context", self.context]
        return flags

    def connection(self):
        """The _kubeconfig.Connection for these options (raises KubeError)."""
        path = self.check()
        if path is None:
            conn = Connection(self.host, token=self._api_key)
        else:
            name = self.kubeconfig or path
            try:
                conn = load(name, self.context)
            except KubeconfigError as exc:
                if exc.not_yaml:
                    # Not YAML at all (a truncated or binary file). The error names a position in the
                    # file, never the file's content (which may hold a token).
                    raise KubeError(f"kubeconfig {name} is not a kubeconfig file ({exc.message}); point"
                                    f" kubeconfig ({AUTH_ENV['kubeconfig']}, or KUBECONFIG) at the cluster's"
                                    " kubeconfig file", field="kubeconfig") from None
                raise KubeError(f"kubeconfig {name} cannot be used"
                                f"{' with context ' + self.context if self.context else ''}: {exc.message}",
                                field="context" if self.context else exc.field) from None
            if self.host:
                conn.host = self.host
            if self._api_key:
                conn.token, conn.token_file = self._api_key, None
        if self.validate_certs is not None:
            conn.verify = self.validate_certs
        if self.ca_cert:
            conn.ca_file, conn.ca_data = self.ca_cert, None
        return conn


def check_kubeconfig(kubeconfig, env=None):
    """The kubeconfig file that helm and the client will use must exist and be readable."""
    env = os.environ if env is None else env
    if kubeconfig:
        paths = [kubeconfig]
    elif env.get("KUBECONFIG"):
        paths = env["KUBECONFIG"].split(os.pathsep)
    else:
        paths = [os.path.expanduser("~/.kube/config")]
    for path in paths:
        if not path:
            continue
        if not os.path.exists(path):
            raise KubeError(f"kubeconfig {path} does not exist; set kubeconfig"
                            f" ({AUTH_ENV['kubeconfig']}, or KUBECONFIG) to the cluster's kubeconfig"
                            f" file, or host and api_key ({AUTH_ENV['host']}, {AUTH_ENV['api_key']})",
                            field="kubeconfig")
        if not os.access(path, os.R_OK):
            raise KubeError(f"kubeconfig {path} is not readable by this user; fix its permissions",
                            field="kubeconfig")
    return paths[0]


class Kube:
    def __init__(self, auth):
        self.auth = auth
        connection = auth.connection()
        try:
            self.client = Client(connection)
        except (OSError, ValueError) as exc:  # ssl: a CA or client certificate file that cannot be used
            raise KubeError(f"the API server's TLS settings cannot be used: {exc}",
                            field="ca_cert" if auth.ca_cert else "kubeconfig") from None
        # One object serves the calls of the library's CoreV1Api, AppsV1Api ... (see _kube_rest).
        self.core = self.apps = self.batch = self.net = self.coord = Api(self.client)

    # -- cluster ---------------------------------------------------------------------------

    def server_version(self):
        try:
            info = self.core.get_code(_request_timeout=REQUEST_TIMEOUT)
        except ApiException as exc:
            raise _api_error(exc, "reading the API server's version") from None
        except Exception as exc:  # pylint: disable=duplicate-except  # socket and http.client errors
            raise KubeError(f"the API server {self.auth.where()} cannot be reached: {exc}",
                            field="host" if self.auth.host else "kubeconfig") from None
        return info.git_version

    @property
    def server_url(self):
        """The API server's URL, for messages (no secret)."""
        return self.client.connection.host or self.auth.host or "(unknown)"

    def ping(self):
        """None when the API server answers, else why it does not (a short text).

        /readyz says whether it serves requests (a restarting kube-apiserver answers /version
        before it does); 401, 403 and 404 are answers too (RBAC or an old server without /readyz).
        """
        try:
            self.core.readyz(_request_timeout=PING_TIMEOUT)
            return None
        except ApiException as exc:
            if getattr(exc, "status", None) in (401, 403, 404):
                return None
            return describe_unreachable(f"{exc.status} {exc.reason}".strip())
        except Exception as exc:  # pylint: disable=duplicate-except  # socket and http.client errors
            return describe_unreachable(exc)

    def namespace_exists(self, namespace):
        try:
            self.core.read_namespace(namespace, _request_timeout=REQUEST_TIMEOUT)
            return True
        except ApiException as exc:
            if exc.status == 404:
                return False
            if exc.status == 403:
                # Reading namespaces is often not allowed; assume it exists, helm will tell.
                return True
            raise _api_error(exc, f"reading namespace {namespace}") from None

    # -- workloads and pods ----------------------------------------------------------------

    def _release_objects(self, lister, namespace, release):
        try:
            items = lister(namespace, _request_timeout=REQUEST_TIMEOUT).items
        except ApiException as exc:
            raise _api_error(exc, "listing the release's objects") from None
        return [o for o in items
                if (o.metadata.annotations or {}).get(RELEASE_NAME_ANNOTATION) == release]

    def pods_report(self, namespace, release):
        """Ready pods out of desired for every Deployment/StatefulSet of the release, and why not.

        Only the pods of the newest template count (the new ReplicaSet, the StatefulSet's update
        revision). Returns {"desired", "ready", "workloads": [...], "problems": [...]}, each
        problem {"pod", "reason", "message", "fatal"}.
        """
        report = {"desired": 0, "ready": 0, "workloads": [], "problems": []}
        for dep in self._release_objects(self.apps.list_namespaced_deployment, namespace, release):
            self._deployment(namespace, dep, report)
        for sts in self._release_objects(self.apps.list_namespaced_stateful_set, namespace, release):
            self._statefulset(namespace, sts, report)
        return report

    def container_images(self, namespace, release):
        """{container name: image} of the release's Deployments, as the API server has them now."""
        images = {}
        for dep in self._release_objects(self.apps.list_namespaced_deployment, namespace, release):
            for container in dep.spec.template.spec.containers or []:
                images[container.name] = container.image
        return images

    def _selector(self, obj):
        labels = (obj.spec.selector.match_labels or {}) if obj.spec.selector else {}
        return ",".join(f"{k}={v}" for k, v in sorted(labels.items()))

    def _deployment(self, namespace, dep, report):
        desired = dep.spec.replicas if dep.spec.replicas is not None else 1
        st = dep.status
        revision = (dep.metadata.annotations or {}).get("deployment.kubernetes.io/revision")
        pods = []
        try:
            rsets = self.apps.list_namespaced_replica_set(
                namespace, label_selector=self._selector(dep), _request_timeout=REQUEST_TIMEOUT).items
        except ApiException as exc:
            raise _api_error(exc, "listing ReplicaSets") from None
        newest = [rs for rs in rsets
                  if any(o.uid == dep.metadata.uid for o in (rs.metadata.owner_references or []))
                  and (rs.metadata.annotations or {}).get("deployment.kubernetes.io/revision") == revision]
        if newest:
            hash_ = (newest[0].metadata.labels or {}).get("pod-template-hash")
            if hash_:
                pods = self._pods(namespace, f"{self._selector(dep)},pod-template-hash={hash_}")
        ready = sum(1 for p in pods if _pod_ready(p))
        report["desired"] += desired
        report["ready"] += min(ready, desired)
        report["workloads"].append({
            "kind": "Deployment", "name": dep.metadata.name, "desired": desired, "ready": ready,
            "updated": st.updated_replicas or 0, "available": st.available_replicas or 0,
            "generation_observed": (st.observed_generation or 0) >= (dep.metadata.generation or 0),
        })
        for pod in pods:
            report["problems"].extend(_pod_problems(pod))

    def _statefulset(self, namespace, sts, report):
        desired = sts.spec.replicas if sts.spec.replicas is not None else 1
        rev = sts.status.update_revision
        selector = self._selector(sts)
        if rev:
            selector += f",controller-revision-hash={rev}"
        pods = self._pods(namespace, selector)
        ready = sum(1 for p in pods if _pod_ready(p))
        report["desired"] += desired
        report["ready"] += min(ready, desired)
        report["workloads"].append({"kind": "StatefulSet", "name": sts.metadata.name,
                                    "desired": desired, "ready": ready,
                                    "updated": sts.status.updated_replicas or 0,
                                    "available": sts.status.available_replicas or 0,
                                    "generation_observed": True})
        for pod in pods:
            report["problems"].extend(_pod_problems(pod))

    def _pods(self, namespace, selector):
        try:
            return self.core.list_namespaced_pod(namespace, label_selector=selector,
                                                 _request_timeout=REQUEST_TIMEOUT).items
        except ApiException as exc:
            raise _api_error(exc, "listing pods") from None

    def log_tail(self, namespace, pod, container, previous, lines=20):
        """The last `lines` lines of a container's log, or None when the log cannot be read
        (the pod is gone, the kubelet does not answer): a summary must not fail over it."""
        try:
            return self.core.read_namespaced_pod_log(pod, namespace, container=container, previous=previous,
                                                     tail_lines=lines, _request_timeout=REQUEST_TIMEOUT)
        except ApiException:
            return None

    # -- events ----------------------------------------------------------------------------

    def recent_events(self, namespace, since, limit=10):
        """The newest Events of the namespace since `since` (a datetime): Warnings first, then
        the newest others, at most `limit`, oldest first."""
        try:
            items = self.core.list_namespaced_event(namespace, _request_timeout=REQUEST_TIMEOUT).items
        except ApiException:
            return []
        cutoff = since - datetime.timedelta(seconds=5)
        events = []
        for ev in items:
            when = ev.last_timestamp or ev.event_time or ev.first_timestamp or ev.metadata.creation_timestamp
            if when is None or when < cutoff:
                continue
            obj = ev.involved_object
            events.append({"time": when.isoformat(), "type": ev.type or "", "reason": ev.reason or "",
                           "object": f"{(obj.kind or '').lower()}/{obj.name}",
                           "message": " ".join((ev.message or "").split())[:300],
                           "count": ev.count or 1})
        events.sort(key=lambda e: e["time"])
        warnings = [e for e in events if e["type"] == "Warning"][-limit:]
        others = [e for e in events if e["type"] != "Warning"]
        room = limit - len(warnings)
        chosen = warnings + (others[-room:] if room > 0 else [])
        return sorted(chosen, key=lambda e: e["time"])

    # -- access URL ------------------------------------------------------------------------

    def access_url(self, namespace, release):
        """The Ingress host (https when it has TLS), else a LoadBalancer Service's address."""
        try:
            ingresses = self._release_objects(self.net.list_namespaced_ingress, namespace, release)
        except KubeError:
            ingresses = []
        for ing in ingresses:
            tls_hosts = {h for t in (ing.spec.tls or []) for h in (t.hosts or [])}
            for rule in ing.spec.rules or []:
                if rule.host:
                    scheme = "https" if rule.host in tls_hosts else "http"
                    return f"{scheme}://{rule.host}"
        for svc in self._release_objects(self.core.list_namespaced_service, namespace, release):
            if svc.spec.type != "LoadBalancer":
                continue
            for ing in (svc.status.load_balancer.ingress or []) if svc.status.load_balancer else []:
                address = ing.hostname or ing.ip
                if not address:
                    continue
                port = next((p.port for p in svc.spec.ports or []), 80)
                if ":" in address:
                    address = f"[{address}]"
                scheme = "https" if port == 443 else "http"
                suffix = "" if port in (80, 443) else f":{port}"
                return f"{scheme}://{address}{suffix}"
        return None

    # -- hook Jobs -------------------------------------------------------------------------

    def delete_failed_jobs(self, namespace, names):
        """Delete the Jobs among `names` that failed; returns the names deleted."""
        deleted = []
        for name in names:
            try:
                job = self.batch.read_namespaced_job(name, namespace, _request_timeout=REQUEST_TIMEOUT)
            except ApiException as exc:
                if exc.status == 404:
                    continue
                raise _api_error(exc, f"reading Job {name}") from None
            conditions = {c.type: c.status for c in (job.status.conditions or [])}
            if conditions.get("Complete") == "True":
                continue
            if conditions.get("Failed") != "True" and not (job.status.failed or 0):
                continue
            try:
                self.batch.delete_namespaced_job(name, namespace, propagation_policy="Background",
                                                 _request_timeout=REQUEST_TIMEOUT)
            except ApiException as exc:
                if exc.status != 404:
                    raise _api_error(exc, f"deleting the failed hook Job {name}") from None
            deleted.append(name)
        return deleted

    def failed_jobs_summary(self, namespace, names):
        out = []
        for name in names:
            try:
                job = self.batch.read_namespaced_job(name, namespace, _request_timeout=REQUEST_TIMEOUT)
            except ApiException:
                continue
            for c in job.status.conditions or []:
                if c.type == "Failed" and c.status == "True":
                    out.append({"job": name, "reason": c.reason or "Failed", "message": c.message or ""})
        return out

    # -- the Lease -------------------------------------------------------------------------

    def lock_name(self, release):
        return f"{release}{LOCK_SUFFIX}"

    def read_lock(self, namespace, release):
        """{"holder", "renewed", "operation", "expired"} of the release's Lease, or None."""
        try:
            lease = self.coord.read_namespaced_lease(self.lock_name(release), namespace,
                                                     _request_timeout=REQUEST_TIMEOUT)
        except ApiException as exc:
            if exc.status == 404:
                return None
            raise _api_error(exc, "reading the release's Lease") from None
        return _lease_state(lease)


def _lease_state(lease):
    spec = lease.spec
    renewed = spec.renew_time or spec.acquire_time
    ttl = spec.lease_duration_seconds or 0
    expired = renewed is None or (_now() - renewed).total_seconds() > ttl
    return {"holder": spec.holder_identity or "", "renewed": renewed.isoformat() if renewed else None,
            "operation": (lease.metadata.annotations or {}).get("coderops.io/operation", ""),
            "expired": expired, "resource_version": lease.metadata.resource_version}


class Lock:
    """The release's Lease, held while one run changes the release.

    Acquired with create (or, when the holder stopped renewing it for longer than its duration,
    a replace with the Lease's resourceVersion), so two runs cannot both get it. Renewed every
    few seconds by the holder, and deleted at the end.
    """

    def __init__(self, kube, namespace, release, ttl, operation):
        self.kube = kube
        self.namespace = namespace
        self.name = kube.lock_name(release)
        self.release_name = release
        self.ttl = ttl
        self.operation = operation
        self.holder = f"{socket.gethostname()}/pid-{os.getpid()}/{uuid.uuid4().hex[:8]}"
        self.held = False
        self._rv = None

    def _body(self, rv=None):
        now = _micro(_now())
        meta = {"name": self.name,
                "labels": {"app.kubernetes.io/managed-by": "coderops.deploy",
                           "coderops.io/release": self.release_name},
                "annotations": {"coderops.io/operation": self.operation}}
        if rv:
            meta["resourceVersion"] = rv
        return {"apiVersion": "coordination.k8s.io/v1", "kind": "Lease", "metadata": meta,
                "spec": {"holderIdentity": self.holder, "leaseDurationSeconds": self.ttl,
                         "acquireTime": now, "renewTime": now}}

    def acquire(self):
        coord = self.kube.coord
        try:
            lease = coord.create_namespaced_lease(self.namespace, self._body(),
                                                  _request_timeout=REQUEST_TIMEOUT)
        except ApiException as exc:
            if exc.status != 409:
                raise _api_error(exc, f"creating the Lease {self.name} (the run's lock)") from None
            try:
                current = coord.read_namespaced_lease(self.name, self.namespace,
                                                      _request_timeout=REQUEST_TIMEOUT)
            except ApiException as exc2:
                raise _api_error(exc2, f"reading the Lease {self.name}") from None
            state = _lease_state(current)
            if not state["expired"]:
                raise LockBusy(state["holder"], state["renewed"], state["operation"]) from None
            try:
                lease = coord.replace_namespaced_lease(
                    self.name, self.namespace, self._body(current.metadata.resource_version),
                    _request_timeout=REQUEST_TIMEOUT)
            except ApiException as exc2:
                if exc2.status == 409:
                    raise LockBusy("another run that took over the expired lock", None, "") from None
                raise _api_error(exc2, f"taking over the expired Lease {self.name}") from None
        self._rv = lease.metadata.resource_version
        self.held = True

    def renew(self):
        if not self.held:
            return
        body = self._body(self._rv)
        try:
            lease = self.kube.coord.replace_namespaced_lease(self.name, self.namespace, body,
                                                             _request_timeout=REQUEST_TIMEOUT)
            self._rv = lease.metadata.resource_version
        except ApiException as exc:
            if exc.status == 409:
                # Someone changed it: re-read, keep it only if it is still ours.
                try:
                    current = self.kube.coord.read_namespaced_lease(
                        self.name, self.namespace, _request_timeout=REQUEST_TIMEOUT)
                except ApiException:
                    return
                if current.spec.holder_identity == self.holder:
                    self._rv = current.metadata.resource_version
        except Exception:  # pylint: disable=duplicate-except  # a missed renewal is retried at the next tick
            return

    def release(self, wait=0, poll=2.0):
        """Delete the Lease if it is still ours. Returns True when it is gone (or not ours).

        While the API server does not answer, tries again every `poll` s for up to `wait` s: a
        Lease left behind makes every run wait for its TTL (and tells operators a run is going).
        Other errors are not retried: the Lease expires by itself.
        """
        if not self.held:
            return True
        deadline = time.monotonic() + wait
        while True:
            try:
                current = self.kube.coord.read_namespaced_lease(self.name, self.namespace,
                                                                _request_timeout=REQUEST_TIMEOUT)
                if current.spec.holder_identity == self.holder:
                    self.kube.coord.delete_namespaced_lease(
                        self.name, self.namespace,
                        body={"preconditions": {"resourceVersion": current.metadata.resource_version}},
                        _request_timeout=REQUEST_TIMEOUT)
                self.held = False
                return True
            except ApiException as exc:
                if getattr(exc, "status", None) == 404:
                    self.held = False
                    return True
                if not unreachable(exc) or time.monotonic() >= deadline:
                    break
            except Exception as exc:  # pylint: disable=duplicate-except  # socket and http.client errors
                if not unreachable(exc) or time.monotonic() >= deadline:
                    break
            time.sleep(poll)
        self.held = False  # it expires by itself, lease_duration_seconds after its last renewal
        return False


def _pod_ready(pod):
    return any(c.type == "Ready" and c.status == "True" for c in (pod.status.conditions or []))


def _pod_problems(pod):
    """Why a pod is not ready: one entry (the most telling reason), or none when it is."""
    if pod.metadata.deletion_timestamp is not None or _pod_ready(pod):
        return []
    name = pod.metadata.name
    status = pod.status
    if status.phase == "Failed":
        return [{"pod": name, "reason": status.reason or "Failed",
                 "message": status.message or "the pod failed", "fatal": True}]
    for kind, statuses in (("init container", status.init_container_statuses),
                           ("container", status.container_statuses)):
        for cs in statuses or []:
            state = cs.state
            if state and state.waiting and state.waiting.reason and state.waiting.reason != "PodInitializing":
                reason = state.waiting.reason
                return [{"pod": name, "reason": reason,
                         "message": f"{kind} {cs.name}: {state.waiting.message or reason}"
                                    f" (restarts: {cs.restart_count or 0})",
                         "fatal": reason in FATAL_REASONS,
                         # Whose log tells why: the instance that ran before the restart.
                         "container": cs.name, "previous_log": bool(cs.restart_count)}]
            last = cs.last_state.terminated if cs.last_state else None
            if (state and state.running and not cs.ready and (cs.restart_count or 0) >= CRASH_RESTARTS
                    and last and last.exit_code not in (0, None)):
                # Running again after crashing: Coder retries its database for 30 s before it
                # exits, so its CrashLoopBackOff windows are short and a poll can miss them.
                return [{"pod": name, "reason": "Restarting",
                         "message": f"{kind} {cs.name} restarted {cs.restart_count} times, last exit code"
                                    f" {last.exit_code} ({last.reason or 'Error'})",
                         "fatal": True, "container": cs.name, "previous_log": True}]
            if (kind == "init container" and state and state.terminated
                    and state.terminated.exit_code not in (0, None)):
                return [{"pod": name, "reason": state.terminated.reason or "Error",
                         "message": f"{kind} {cs.name} exited with {state.terminated.exit_code}",
                         "fatal": (cs.restart_count or 0) >= 2,
                         "container": cs.name, "previous_log": False}]
    for cond in status.conditions or []:
        if cond.type == "PodScheduled" and cond.status == "False":
            return [{"pod": name, "reason": cond.reason or "Unschedulable",
                     "message": cond.message or "not scheduled", "fatal": False}]
    for cond in status.conditions or []:
        if cond.type == "Ready" and cond.status != "True":
            return [{"pod": name, "reason": cond.reason or "NotReady",
                     "message": cond.message or f"phase {status.phase}", "fatal": False}]
    return [{"pod": name, "reason": status.phase or "Pending", "message": "not ready yet",
             "fatal": False}]
