# Copyright (c) 2026, coderops maintainers
# GNU General Public License v3.0+ (see LICENSE or https://www.gnu.org/licenses/gpl-3.0.txt)
# SPDX-License-Identifier: GPL-3.0-or-later

# Note that this module util is **PRIVATE** to the collection. It can have breaking changes at any time.
# Do not use this from other collections or standalone plugins/modules!

"""The few Kubernetes API calls the collection makes, on Python's standard library.

Why not the kubernetes Python library: importing it costs about 1 s of CPU on every module run
(its 700 generated models, urllib3, google-auth, oauthlib ...; ``python -X importtime``), and
three modules run on every deploy, so that it was a third of a no-op run. The collection calls
about twenty endpoints. They are below, under the library's method names and arguments, and the
answers are `Resource` objects that read like the library's models (snake_case attributes, the
timestamps as datetimes), so the code written against the library reads the same.

The connection (server, CA, client certificate, token) comes from `_kubeconfig.Connection`.
"""

from __future__ import annotations

import datetime
import http.client
import json
import os
import re
import ssl
import tempfile
import threading
import urllib.parse

DEFAULT_TIMEOUT = 20

# Fields whose value is a time (RFC 3339; MicroTime has microseconds): datetimes, as the library gives.
_TIME_FIELDS = frozenset((
    "creationTimestamp", "deletionTimestamp", "lastTimestamp", "firstTimestamp", "eventTime",
    "renewTime", "acquireTime", "lastTransitionTime", "lastProbeTime", "startTime", "finishedAt",
    "startedAt", "completionTime", "lastUpdateTime",
))


class ApiException(Exception):
    """An answer of the API server that is not a success (the library's class of that name)."""

    def __init__(self, status=None, reason=None, body=None, headers=None):
        self.status = status
        self.reason = reason
        self.body = body
        self.headers = headers or {}
        super().__init__(f"({status}) Reason: {reason}")


def _camel(name):
    head, *rest = name.split("_")
    return head + "".join(part[:1].upper() + part[1:] for part in rest)


def _time(value):
    if not isinstance(value, str):
        return value
    try:
        return datetime.datetime.fromisoformat(value.replace("Z", "+00:00"))
    except ValueError:
        return value


# Fields that are maps of strings (read with .get and .items), not objects.
_MAP_FIELDS = frozenset(("labels", "annotations", "data", "stringData", "binaryData", "matchLabels",
                         "nodeSelector"))


class Resource:
    """A JSON object of the API, read as ``obj.metadata.owner_references`` (the library's
    snake_case names for the API's camelCase fields). A field the object does not have reads as
    None, as in the library's models; labels, annotations and data are plain dicts."""

    __slots__ = ("_data",)

    def __init__(self, data):
        self._data = data

    def __getattr__(self, name):
        if name.startswith("__"):
            raise AttributeError(name)
        key = _camel(name)
        value = self._data.get(key)
        if key in _TIME_FIELDS:
            return _time(value)
        if key in _MAP_FIELDS:
            return value
        return wrap(value)

    def __repr__(self):
        return f"Resource(kind={self._data.get('kind')!r})"  # never the data (a Secret's)


def wrap(value):
    if isinstance(value, dict):
        return Resource(value)
    if isinstance(value, list):
        return [wrap(item) for item in value]
    return value


class Client:
    """HTTPS (or HTTP) to one API server; a kept-alive connection per thread (the Lease is
    renewed from a thread while the main one watches the pods)."""

    def __init__(self, connection):
        self.connection = connection
        url = urllib.parse.urlsplit(connection.host)
        self._https = url.scheme == "https"
        self._netloc = (url.hostname, url.port or (443 if self._https else 80))
        self._prefix = url.path.rstrip("/")
        self._context = self._ssl_context() if self._https else None
        self._local = threading.local()

    def _ssl_context(self):
        conn = self.connection
        ctx = ssl.create_default_context(cafile=conn.ca_file,
                                         cadata=conn.ca_data.decode() if conn.ca_data else None)
        # Python 3.13 verifies strictly (VERIFY_X509_STRICT: a CA without keyUsage is refused);
        # helm and kubectl (Go) do not, and they read the same kubeconfig.
        ctx.verify_flags &= ~getattr(ssl, "VERIFY_X509_STRICT", 0)
        if conn.verify is False:
            ctx.check_hostname = False
            ctx.verify_mode = ssl.CERT_NONE
        if conn.cert_file or conn.cert_data:
            _load_client_certificate(ctx, conn)
        return ctx

    def _new_connection(self, timeout):
        host, port = self._netloc
        proxy = self.connection.proxy_url
        if proxy:
            purl = urllib.parse.urlsplit(proxy)
            target = (purl.hostname, purl.port or 80)
        else:
            target = (host, port)
        if self._https:
            server_name = self.connection.tls_server_name
            if server_name and not proxy:
                # The name to verify differs from the address: connect to the address, verify the name.
                conn = _NamedHTTPSConnection(target[0], target[1], context=self._context, timeout=timeout,
                                             server_name=server_name)
            else:
                conn = http.client.HTTPSConnection(target[0], target[1], context=self._context, timeout=timeout)
        else:
            conn = http.client.HTTPConnection(target[0], target[1], timeout=timeout)
        if proxy:
            conn.set_tunnel(host, port)
        return conn

    def request(self, method, path, query=None, body=None, content_type="application/json",
                timeout=DEFAULT_TIMEOUT, raw=False):
        """The answer's JSON as a Resource (or its text, raw=True); ApiException for non-2xx;
        OSError and http.client's errors when the server does not answer."""
        url = self._prefix + path
        query = {k: v for k, v in (query or {}).items() if v is not None}
        if query:
            url += "?" + urllib.parse.urlencode(query)
        # Logs and proxied answers are text: the API server refuses them to a JSON-only Accept.
        headers = {"Accept": "*/*" if raw else "application/json", "User-Agent": "coderops.deploy"}
        data = None if body is None else json.dumps(body).encode()
        if data is not None:
            headers["Content-Type"] = content_type
        token = self.connection.bearer_token()
        if token:
            headers["Authorization"] = f"Bearer {token}"
        elif self.connection.basic_auth:
            headers["Authorization"] = "Basic " + self.connection.basic_auth
        for attempt in (1, 2):
            conn = getattr(self._local, "conn", None)
            fresh = conn is None
            if fresh:
                conn = self._local.conn = self._new_connection(timeout)
            else:
                conn.timeout = timeout
                if conn.sock is not None:
                    conn.sock.settimeout(timeout)
            try:
                conn.request(method, url, body=data, headers=headers)
                resp = conn.getresponse()
                payload = resp.read()
            except (http.client.RemoteDisconnected, BrokenPipeError, ConnectionResetError,
                    http.client.CannotSendRequest):
                # A kept-alive connection the server closed meanwhile: once more on a new one.
                conn.close()
                self._local.conn = None
                if fresh or attempt == 2:
                    raise
                continue
            except Exception:
                conn.close()
                self._local.conn = None
                raise
            break
        text = payload.decode("utf-8", "replace")
        if not 200 <= resp.status < 300:
            raise ApiException(status=resp.status, reason=resp.reason, body=text,
                               headers=dict(resp.getheaders()))
        if raw:
            return text
        return wrap(json.loads(text)) if text else None


class _NamedHTTPSConnection(http.client.HTTPSConnection):
    """Connects to the address in the URL and verifies the certificate for tls-server-name."""

    def __init__(self, *args, server_name=None, **kwargs):
        super().__init__(*args, **kwargs)
        self._server_name = server_name

    def connect(self):
        http.client.HTTPConnection.connect(self)  # pylint: disable=non-parent-init-called
        self.sock = self._context.wrap_socket(self.sock, server_hostname=self._server_name)


def _load_client_certificate(ctx, conn):
    """load_cert_chain reads files only. Key material that came as data (a kubeconfig's
    client-key-data) goes through an anonymous in-memory file (memfd)
    where the system has one, else a 0600 temporary file deleted as soon as it is read."""
    if conn.cert_file:
        ctx.load_cert_chain(conn.cert_file, conn.key_file)
        return
    pem = conn.cert_data + b"\n" + conn.key_data
    if hasattr(os, "memfd_create"):
        fd = os.memfd_create("coderops-client-cert", getattr(os, "MFD_CLOEXEC", 0))
        try:
            os.write(fd, pem)
            ctx.load_cert_chain(f"/proc/self/fd/{fd}")
        finally:
            os.close(fd)
        return
    fd, path = tempfile.mkstemp(prefix="coderops-client-cert-")
    try:
        os.write(fd, pem)
        os.close(fd)
        ctx.load_cert_chain(path)
    finally:
        os.unlink(path)


# -- the endpoints, by the library's method names --------------------------------------------------

_GROUPS = {
    "core": "/api/v1", "apps": "/apis/apps/v1", "batch": "/apis/batch/v1",
    "networking": "/apis/networking.k8s.io/v1", "coordination": "/apis/coordination.k8s.io/v1",
}
# kind (as in the library's method names) -> (group, resource)
_KINDS = {
    "secret": ("core", "secrets"), "pod": ("core", "pods"), "event": ("core", "events"),
    "service": ("core", "services"), "deployment": ("apps", "deployments"),
    "stateful_set": ("apps", "statefulsets"), "replica_set": ("apps", "replicasets"),
    "job": ("batch", "jobs"), "ingress": ("networking", "ingresses"), "lease": ("coordination", "leases"),
}
_METHOD = re.compile(r"^(read|list|create|replace|patch|delete)_namespaced_(\w+)$")


class Api:
    """``read_namespaced_secret(name, namespace)``, ``list_namespaced_pod(namespace,
    label_selector=...)`` and so on for the kinds in _KINDS, plus namespaces and the server's
    version: the library's CoreV1Api, AppsV1Api, BatchV1Api, NetworkingV1Api, CoordinationV1Api
    and VersionApi in one object, for what the collection uses."""

    def __init__(self, client):
        self.client = client

    def __getattr__(self, name):
        match = _METHOD.match(name)
        if not match or match.group(2) not in _KINDS:
            raise AttributeError(name)
        verb, kind = match.groups()
        group, resource = _KINDS[kind]

        def call(*args, **kwargs):
            return self._namespaced(verb, _GROUPS[group], resource, *args, **kwargs)

        return call

    def _namespaced(self, verb, prefix, resource, *args, body=None, dry_run=None, label_selector=None,
                    propagation_policy=None, _request_timeout=DEFAULT_TIMEOUT):
        if verb in ("list", "create"):
            namespace, rest = args[0], args[1:]
            name = None
        else:
            name, namespace, rest = args[0], args[1], args[2:]
        if rest:
            body = rest[0]
        path = f"{prefix}/namespaces/{namespace}/{resource}" + (f"/{name}" if name else "")
        method = {"read": "GET", "list": "GET", "create": "POST", "replace": "PUT",
                  "patch": "PATCH", "delete": "DELETE"}[verb]
        if verb == "delete" and propagation_policy:
            body = dict(body or {}, propagationPolicy=propagation_policy)
        content_type = "application/merge-patch+json" if verb == "patch" else "application/json"
        return self.client.request(method, path, query={"labelSelector": label_selector, "dryRun": dry_run},
                                   body=body, content_type=content_type, timeout=_request_timeout)

    def read_namespace(self, name, _request_timeout=DEFAULT_TIMEOUT):
        return self.client.request("GET", f"/api/v1/namespaces/{name}", timeout=_request_timeout)

    def create_namespace(self, body, dry_run=None, _request_timeout=DEFAULT_TIMEOUT):
        return self.client.request("POST", "/api/v1/namespaces", query={"dryRun": dry_run}, body=body,
                                   timeout=_request_timeout)

    def read_namespaced_pod_log(self, name, namespace, container=None, previous=None, tail_lines=None,
                                _request_timeout=DEFAULT_TIMEOUT):
        """A container's log as text (the kubelet's, through the API server); previous=True for
        the instance that ran before the last restart."""
        return self.client.request("GET", f"/api/v1/namespaces/{namespace}/pods/{name}/log",
                                   query={"container": container, "previous": "true" if previous else None,
                                          "tailLines": tail_lines},
                                   timeout=_request_timeout, raw=True)

    def connect_get_namespaced_service_proxy_with_path(self, name, namespace, path,
                                                       _request_timeout=DEFAULT_TIMEOUT):
        """GET `path` of a Service through the API server's service proxy, as text. `name` may
        carry a port (`coder:http`)."""
        return self.client.request("GET", f"/api/v1/namespaces/{namespace}/services/{name}/proxy/"
                                   f"{path.lstrip('/')}", timeout=_request_timeout, raw=True)

    def get_code(self, _request_timeout=DEFAULT_TIMEOUT):
        """The server's version (GET /version: git_version, major, minor ...)."""
        return self.client.request("GET", "/version", timeout=_request_timeout)

    def readyz(self, _request_timeout=DEFAULT_TIMEOUT):
        return self.client.request("GET", "/readyz", timeout=_request_timeout, raw=True)
