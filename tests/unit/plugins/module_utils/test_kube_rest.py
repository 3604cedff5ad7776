# Copyright (c) 2026, coderops maintainers
# GNU General Public License v3.0+ (see LICENSE or https://www.gnu.org/licenses/gpl-3.0.txt)
# SPDX-License-Identifier: GPL-3.0-or-later
"""_kube_rest and _kubeconfig: the paths, verbs, queries and bodies of the API calls (against an
HTTP server on loopback that records them), answers read like the library's models, errors, and
the kubeconfig's ways to log in (data, files, relative paths, exec plugins and their expiry).
The real API server is the deploy suite's (tests/deploy)."""

from __future__ import annotations

import base64
import datetime
import http.server
import json
import shutil
import ssl
import stat
import textwrap
import threading

import pytest
from ansible_collections.coderops.deploy.plugins.module_utils import _kube_rest as rest
from ansible_collections.coderops.deploy.plugins.module_utils import _kubeconfig as kc


class Recorder(http.server.BaseHTTPRequestHandler):
    protocol_version = "HTTP/1.1"  # keep-alive, as an API server
    calls = []
    answers = {}

    def _answer(self):
        length = int(self.headers.get("Content-Length") or 0)
        body = self.rfile.read(length) if length else b""
        self.calls.append({"method": self.command, "path": self.path, "body": json.loads(body) if body else None,
                           "content_type": self.headers.get("Content-Type"),
                           "authorization": self.headers.get("Authorization")})
        status, payload = self.answers.get((self.command, self.path.split("?")[0]), (200, {"kind": "Status"}))
        data = payload.encode() if isinstance(payload, str) else json.dumps(payload).encode()
        self.send_response(status)
        self.send_header("Content-Type", "application/json")
        self.send_header("Content-Length", str(len(data)))
        self.end_headers()
        self.wfile.write(data)

    do_GET = do_POST = do_PUT = do_PATCH = do_DELETE = _answer

    def log_message(self, *args):
        pass


@pytest.fixture
def server():
    Recorder.calls = []
    Recorder.answers = {}
    srv = http.server.ThreadingHTTPServer(("127.0.0.1", 0), Recorder)
    thread = threading.Thread(target=srv.serve_forever, daemon=True)
    thread.start()
    yield srv
    srv.shutdown()
    srv.server_close()


def api(server, token="t0ken"):
    conn = kc.Connection(f"http://127.0.0.1:{server.server_address[1]}/", token=token)
    return rest.Api(rest.Client(conn))


def test_calls_go_to_the_library_paths_with_queries_and_bodies(server):
    a = api(server)
    a.read_namespaced_secret("s", "ns")
    a.list_namespaced_pod("ns", label_selector="app=coder,x=y")
    a.create_namespaced_secret("ns", {"metadata": {"name": "s"}}, dry_run="All")
    a.patch_namespaced_secret("s", "ns", {"data": {"k": "dg=="}})
    a.delete_namespaced_job("j", "ns", propagation_policy="Background")
    a.replace_namespaced_lease("l", "ns", {"spec": {}})
    a.delete_namespaced_lease("l", "ns", body={"preconditions": {"resourceVersion": "7"}})
    a.list_namespaced_stateful_set("ns")
    a.list_namespaced_ingress("ns")
    a.create_namespace({"metadata": {"name": "n"}}, dry_run="All")
    got = [(c["method"], c["path"]) for c in Recorder.calls]
    assert got == [
        ("GET", "/api/v1/namespaces/ns/secrets/s"),
        ("GET", "/api/v1/namespaces/ns/pods?labelSelector=app%3Dcoder%2Cx%3Dy"),
        ("POST", "/api/v1/namespaces/ns/secrets?dryRun=All"),
        ("PATCH", "/api/v1/namespaces/ns/secrets/s"),
        ("DELETE", "/apis/batch/v1/namespaces/ns/jobs/j"),
        ("PUT", "/apis/coordination.k8s.io/v1/namespaces/ns/leases/l"),
        ("DELETE", "/apis/coordination.k8s.io/v1/namespaces/ns/leases/l"),
        ("GET", "/apis/apps/v1/namespaces/ns/statefulsets"),
        ("GET", "/apis/networking.k8s.io/v1/namespaces/ns/ingresses"),
        ("POST", "/api/v1/namespaces?dryRun=All"),
    ]
    assert Recorder.calls[3]["content_type"] == "application/merge-patch+json"
    assert Recorder.calls[4]["body"] == {"propagationPolicy": "Background"}
    assert Recorder.calls[6]["body"] == {"preconditions": {"resourceVersion": "7"}}
    assert all(c["authorization"] == "Bearer t0ken" for c in Recorder.calls)
    with pytest.raises(AttributeError):
        getattr(a, "read_namespaced_configmap")  # noqa: B009  # not a kind the collection uses


def test_logs_and_the_service_proxy_are_text(server):
    Recorder.answers[("GET", "/api/v1/namespaces/ns/pods/p/log")] = (200, "line 1\nline 2\n")
    Recorder.answers[("GET", "/api/v1/namespaces/ns/services/coder:http/proxy/api/v2/buildinfo")] = (
        200, '{"version": "v2.31.0"}')
    a = api(server)
    assert a.read_namespaced_pod_log("p", "ns", container="coder", previous=True, tail_lines=20) == "line 1\nline 2\n"
    assert a.read_namespaced_pod_log("p", "ns", container="coder") == "line 1\nline 2\n"
    assert a.connect_get_namespaced_service_proxy_with_path("coder:http", "ns", "/api/v2/buildinfo") == \
        '{"version": "v2.31.0"}'
    assert [c["path"] for c in Recorder.calls] == [
        "/api/v1/namespaces/ns/pods/p/log?container=coder&previous=true&tailLines=20",
        "/api/v1/namespaces/ns/pods/p/log?container=coder",
        "/api/v1/namespaces/ns/services/coder:http/proxy/api/v2/buildinfo",
    ]


def test_answers_read_like_the_library_models(server):
    Recorder.answers[("GET", "/apis/coordination.k8s.io/v1/namespaces/ns/leases/l")] = (200, {
        "metadata": {"name": "l", "resourceVersion": "42", "annotations": {"a/b": "c"},
                     "ownerReferences": [{"uid": "u1"}]},
        "spec": {"holderIdentity": "me", "renewTime": "2026-12-01T10:00:00.123456Z", "leaseDurationSeconds": 30}})
    lease = api(server).read_namespaced_lease("l", "ns")
    assert lease.metadata.resource_version == "42" and lease.metadata.annotations == {"a/b": "c"}
    assert lease.metadata.owner_references[0].uid == "u1"
    assert lease.spec.renew_time == datetime.datetime(2026, 12, 1, 10, 0, 0, 123456, tzinfo=datetime.UTC)
    assert lease.spec.acquire_time is None and lease.metadata.labels is None
    Recorder.answers[("GET", "/api/v1/namespaces/ns/pods")] = (200, {"items": [{"metadata": {"name": "p"}}]})
    assert [p.metadata.name for p in api(server).list_namespaced_pod("ns").items] == ["p"]


def test_errors_are_api_exceptions_with_status_and_body(server):
    Recorder.answers[("GET", "/api/v1/namespaces/ns/secrets/s")] = (
        403, {"kind": "Status", "message": "secrets \"s\" is forbidden"})
    with pytest.raises(rest.ApiException) as exc:
        api(server).read_namespaced_secret("s", "ns")
    assert exc.value.status == 403 and json.loads(exc.value.body)["message"].startswith("secrets")


def test_a_closed_server_is_an_os_error():
    srv = http.server.ThreadingHTTPServer(("127.0.0.1", 0), Recorder)
    port = srv.server_address[1]
    srv.server_close()
    conn = kc.Connection(f"http://127.0.0.1:{port}")
    with pytest.raises(OSError):
        rest.Api(rest.Client(conn)).get_code(_request_timeout=2)


# -- kubeconfig ------------------------------------------------------------------------------------

def _write(tmp_path, text, name="config"):
    path = tmp_path / name
    path.write_text(textwrap.dedent(text))
    return path


def test_data_and_relative_files(tmp_path):
    ca = base64.b64encode(b"-----BEGIN CERTIFICATE-----\n").decode()
    path = _write(tmp_path, f"""\
        apiVersion: v1
        clusters:
        - name: a
          cluster: {{server: "https://a:6443/", certificate-authority-data: {ca}, tls-server-name: api.a}}
        - name: b
          cluster: {{server: "https://b:6443", certificate-authority: pki/ca.crt}}
        users:
        - name: files
          user: {{client-certificate: pki/u.crt, client-key: /abs/u.key}}
        - name: tokfile
          user: {{tokenFile: tok}}
        contexts:
        - {{name: one, context: {{cluster: a, user: files}}}}
        - {{name: two, context: {{cluster: b, user: tokfile}}}}
        current-context: one
        """)
    conn = kc.load(str(path))
    assert conn.host == "https://a:6443" and conn.ca_data.startswith(b"-----BEGIN") and conn.tls_server_name == "api.a"
    assert conn.cert_file == str(tmp_path / "pki" / "u.crt") and conn.key_file == "/abs/u.key"
    (tmp_path / "tok").write_text("rotating-1\n")
    conn = kc.load(str(path), "two")
    assert conn.ca_file == str(tmp_path / "pki" / "ca.crt")
    assert conn.bearer_token() == "rotating-1"
    (tmp_path / "tok").write_text("rotating-2")
    assert conn.bearer_token() == "rotating-2"  # read again: projected tokens rotate


@pytest.mark.parametrize("text,field,words", [
    ("[1, 2]", "kubeconfig", "not a mapping"),
    ("contexts: []\n", "context", "no current-context"),
    ("current-context: x\ncontexts: [{name: y, context: {cluster: c}}]\n", "kubeconfig", "(it has: y)"),
    ("current-context: x\ncontexts: [{name: x, context: {cluster: c}}]\nclusters: [{name: c, cluster: {}}]\n",
     "kubeconfig", "has no server"),
    ("current-context: x\ncontexts: [{name: x, context: {cluster: c, user: u}}]\n"
     "clusters: [{name: c, cluster: {server: 'https://c'}}]\nusers: [{name: u, user: {client-key-data: 'eA=='}}]\n",
     "kubeconfig", "without its key"),
])
def test_bad_kubeconfigs_say_what_is_wrong(tmp_path, text, field, words):
    with pytest.raises(kc.KubeconfigError) as exc:
        kc.load(str(_write(tmp_path, text)))
    assert exc.value.field == field and words in exc.value.message


def test_exec_plugin_users_go_through_the_library(tmp_path):
    pytest.importorskip("kubernetes")
    counter = tmp_path / "n"
    counter.write_text("0")
    script = tmp_path / "plugin.sh"
    script.write_text(textwrap.dedent(f"""\
        #!/bin/sh
        n=$(($(cat {counter}) + 1)); echo $n > {counter}
        test "$EXTRA" = yes || exit 3
        v=client.authentication.k8s.io/v1
        printf '{{"apiVersion":"%s","kind":"ExecCredential","status":{{"token":"tok-%s"}}}}' $v $n
        """))
    script.chmod(script.stat().st_mode | stat.S_IXUSR)
    path = _write(tmp_path, f"""\
        current-context: x
        contexts: [{{name: x, context: {{cluster: c, user: u}}}}]
        clusters: [{{name: c, cluster: {{server: "https://c:6443"}}}}]
        users:
        - name: u
          user:
            exec:
              apiVersion: client.authentication.k8s.io/v1
              command: {script}
              env: [{{name: EXTRA, value: "yes"}}]
              interactiveMode: Never
        """)
    conn = kc.load(str(path))
    assert conn.host == "https://c:6443"
    assert conn.bearer_token().startswith("tok-") and "tok-" not in repr(conn)


# -- TLS: the CA and client certificate as data, tls-server-name -----------------------------------

def _openssl(tmp_path, *args):
    import subprocess  # pylint: disable=import-outside-toplevel

    subprocess.run(["openssl", *args], cwd=tmp_path, check=True, capture_output=True)


def _pki(tmp_path):
    """A CA, a server certificate for api.test only, and a client certificate."""
    if not shutil.which("openssl"):
        pytest.skip("needs the openssl command")
    ec = ["-newkey", "ec", "-pkeyopt", "ec_paramgen_curve:P-256", "-nodes"]
    # A CA without keyUsage, which Python 3.13's strict verification would refuse and Go's (helm,
    # kubectl) accepts: the client must accept it too.
    _openssl(tmp_path, "req", "-x509", *ec, "-keyout", "ca.key", "-out", "ca.crt", "-subj", "/CN=test-ca", "-days", "1")
    (tmp_path / "san.ext").write_text("subjectAltName=DNS:api.test\n")
    for name, cn in (("srv", "api.test"), ("client", "deployer")):
        _openssl(tmp_path, "req", *ec, "-keyout", f"{name}.key", "-out", f"{name}.csr", "-subj", f"/CN={cn}")
        _openssl(tmp_path, "x509", "-req", "-in", f"{name}.csr", "-CA", "ca.crt", "-CAkey", "ca.key",
                 "-CAcreateserial", "-out", f"{name}.crt", "-days", "1", "-extfile", "san.ext")
    return {name: (tmp_path / name).read_bytes() for name in ("ca.crt", "client.crt", "client.key")}


@pytest.fixture
def tls_server(tmp_path):
    pki = _pki(tmp_path)
    ctx = ssl.SSLContext(ssl.PROTOCOL_TLS_SERVER)
    ctx.load_cert_chain(tmp_path / "srv.crt", tmp_path / "srv.key")
    ctx.load_verify_locations(tmp_path / "ca.crt")
    ctx.verify_mode = ssl.CERT_REQUIRED  # no client certificate, no answer
    Recorder.calls = []
    Recorder.answers = {("GET", "/version"): (200, {"gitVersion": "v1.34.4"})}
    srv = http.server.ThreadingHTTPServer(("127.0.0.1", 0), Recorder)
    srv.socket = ctx.wrap_socket(srv.socket, server_side=True)
    thread = threading.Thread(target=srv.serve_forever, daemon=True)
    thread.start()
    yield srv.server_address[1], pki
    srv.shutdown()
    srv.server_close()


def test_client_certificate_as_data_and_tls_server_name(tls_server):
    port, pki = tls_server
    conn = kc.Connection(f"https://127.0.0.1:{port}", ca_data=pki["ca.crt"], cert_data=pki["client.crt"],
                         key_data=pki["client.key"], tls_server_name="api.test")
    assert rest.Api(rest.Client(conn)).get_code().git_version == "v1.34.4"
    # The certificate names api.test, not 127.0.0.1: without tls-server-name it is refused.
    conn = kc.Connection(f"https://127.0.0.1:{port}", ca_data=pki["ca.crt"], cert_data=pki["client.crt"],
                         key_data=pki["client.key"])
    with pytest.raises(ssl.SSLCertVerificationError):
        rest.Api(rest.Client(conn)).get_code()
