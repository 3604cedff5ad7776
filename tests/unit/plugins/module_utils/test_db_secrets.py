# Copyright (c) 2026, coderops maintainers
# GNU General Public License v3.0+ (see LICENSE or https://www.gnu.org/licenses/gpl-3.0.txt)
# SPDX-License-Identifier: GPL-3.0-or-later
"""coder_db_secrets' logic against a fake CoreV1Api: the input rules (checked before any call),
versions of immutable Secrets, idempotence, check mode, the diff without data, and API errors
that never quote the data. The real API server is tests/deploy (test_immutable_and_module.py,
test_no_leak.py, the RBAC case of test_bad_input.py)."""

from __future__ import annotations

import base64
import json
from types import SimpleNamespace

import pytest
from ansible_collections.coderops.deploy.plugins.module_utils import _db_secrets as dbs
from ansible_collections.coderops.deploy.plugins.module_utils._kube_rest import ApiException

PASSWORD = "s3cret p@ss/word%"
NAMES = {"db_password": "coder_db_password", "password_secret": "coder_db_password_secret",
         "immutable_versions": "db_secret_immutable", "chart_generation": "coder_chart_generation",
         "ssl_cert_file": "coder_db_ssl_cert_file", "ssl_key_file": "coder_db_ssl_key_file",
         "db_connector": "coder_db_connector", "create_namespace": "coder_create_namespace"}


def b64(text):
    return base64.b64encode(text.encode()).decode()


def api_error(status, reason, message):
    exc = ApiException(status=status, reason=reason)
    exc.body = json.dumps({"kind": "Status", "message": message})
    return exc


class FakeCore:
    """Namespaces and Secrets in dictionaries; records every call; dry runs change nothing."""

    def __init__(self, namespaces=("coder",)):
        self.namespaces = set(namespaces)
        self.secrets = {}
        self.calls = []
        self.fail = {}  # method name -> exception

    def _maybe_fail(self, method):
        self.calls.append(method)
        if method in self.fail:
            raise self.fail[method]

    def read_namespace(self, name, **kw):
        self._maybe_fail("read_namespace")
        if name not in self.namespaces:
            raise ApiException(status=404, reason="Not Found")

    def create_namespace(self, body, dry_run=None, **kw):
        self._maybe_fail("create_namespace")
        if not dry_run:
            self.namespaces.add(body["metadata"]["name"])

    def _obj(self, body):
        meta = body["metadata"]
        return SimpleNamespace(type=body.get("type", "Opaque"), data=dict(body["data"]),
                               immutable=body.get("immutable"),
                               metadata=SimpleNamespace(name=meta["name"], labels=dict(meta.get("labels") or {})))

    def read_namespaced_secret(self, name, namespace, **kw):
        self._maybe_fail("read_namespaced_secret")
        if (namespace, name) not in self.secrets:
            raise ApiException(status=404, reason="Not Found")
        return self.secrets[(namespace, name)]

    def list_namespaced_secret(self, namespace, label_selector="", **kw):
        self._maybe_fail("list_namespaced_secret")
        want = dict(part.split("=", 1) for part in label_selector.split(","))
        items = [s for key, s in self.secrets.items()
                 if key[0] == namespace and all(s.metadata.labels.get(k) == v for k, v in want.items())]
        return SimpleNamespace(items=items)

    def create_namespaced_secret(self, namespace, body, dry_run=None, **kw):
        self._maybe_fail("create_namespaced_secret")
        assert "stringData" not in body
        if namespace not in self.namespaces:
            raise ApiException(status=404, reason="Not Found")
        if not dry_run:
            self.secrets[(namespace, body["metadata"]["name"])] = self._obj(body)

    def patch_namespaced_secret(self, name, namespace, body, dry_run=None, **kw):
        self._maybe_fail("patch_namespaced_secret")
        if not dry_run:
            secret = self.secrets[(namespace, name)]
            secret.data.update(body["data"])
            secret.metadata.labels.update(body["metadata"]["labels"])

    def delete_namespaced_secret(self, name, namespace, dry_run=None, **kw):
        self._maybe_fail("delete_namespaced_secret")
        if not dry_run:
            self.secrets.pop((namespace, name), None)


def params(**over):
    out = {"state": "present", "namespace": "coder", "create_namespace": False, "release_name": "coder",
           "extra_labels": {}, "chart_generation": "v1", "db_connector": "postgres", "db_password": PASSWORD,
           "password_secret": "coder-db-password", "password_as_file": False, "immutable_versions": False,
           "url_secret": "coder-db-url", "url_options": None, "ssl_cert_file": None, "ssl_key_file": None,
           "ssl_client_secret": "coder-db-client-tls", "ssl_ca_file": None, "ssl_ca_secret": "coder-db-ca",
           "keep_password_secret": None, "names": NAMES}
    out.update(over)
    return out


def run(core, check_mode=False, **over):
    return dbs.run(params(**over), lambda: SimpleNamespace(core=core), check_mode)


def test_writes_then_changes_nothing():
    core = FakeCore()
    res = run(core)
    assert res["changed"] and res["password_secret_name"] == "coder-db-password"
    secret = core.secrets[("coder", "coder-db-password")]
    assert secret.data == {"password": b64(PASSWORD)}
    assert secret.metadata.labels["coderops.io/release"] == "coder"
    assert res["summary"] == "Secret coder-db-password: written"
    again = run(core)
    assert not again["changed"] and again["secrets"][0]["action"] == "unchanged"
    assert "patch_namespaced_secret" not in core.calls


def test_changed_password_is_patched_in_place():
    core = FakeCore()
    run(core)
    res = run(core, db_password="another-one")
    assert res["secrets"][0]["action"] == "updated"
    assert core.secrets[("coder", "coder-db-password")].data["password"] == b64("another-one")
    assert res["diff"]["after"]["secrets"]["coder-db-password"]["changed_keys"] == ["password"]


def test_result_and_diff_never_hold_the_data():
    core = FakeCore()
    res = run(core)
    text = json.dumps(res)
    assert PASSWORD not in text and b64(PASSWORD) not in text
    assert res["diff"]["after"]["secrets"]["coder-db-password"]["keys"] == ["password"]


def test_check_mode_writes_nothing():
    core = FakeCore()
    res = run(core, check_mode=True)
    assert res["changed"] and not core.secrets
    assert "would be written" in res["summary"]


def test_check_mode_in_a_namespace_to_be_created_reports_without_calls():
    core = FakeCore(namespaces=())
    res = run(core, check_mode=True, create_namespace=True, namespace="new")
    assert res["namespace"]["created"] and res["changed"]
    assert "create_namespaced_secret" not in core.calls and not core.namespaces


def test_creates_the_namespace():
    core = FakeCore(namespaces=())
    res = run(core, create_namespace=True)
    assert res["namespace"]["created"] and "coder" in core.namespaces
    assert not run(core, create_namespace=True)["changed"]


def test_immutable_versions():
    core = FakeCore()
    first = run(core, immutable_versions=True)
    assert first["password_secret_name"] == "coder-db-password-v1" and first["password_secret_new"]
    assert core.secrets[("coder", "coder-db-password-v1")].immutable is True
    same = run(core, immutable_versions=True)
    assert same["password_secret_name"] == "coder-db-password-v1" and not same["changed"]
    second = run(core, immutable_versions=True, db_password="new-password")
    assert second["password_secret_name"] == "coder-db-password-v2" and second["password_secret_new"]
    back = run(core, immutable_versions=True)
    assert back["password_secret_name"] == "coder-db-password-v1" and not back["changed"]
    cleaned = run(core, state="cleanup", keep_password_secret="coder-db-password-v2")
    assert cleaned["deleted"] == ["coder-db-password-v1"]
    assert set(core.secrets) == {("coder", "coder-db-password-v2")}


def test_absent_deletes_what_it_labelled_only():
    core = FakeCore()
    run(core, immutable_versions=True)
    core.secrets[("coder", "other")] = core._obj({"metadata": {"name": "other", "labels": {}}, "data": {}})
    res = run(core, state="absent")
    assert res["deleted"] == ["coder-db-password-v1"] and set(core.secrets) == {("coder", "other")}


def test_v2_url_secret_percent_encodes_the_password():
    core = FakeCore()
    opts = {"host": "db.example.com", "port": 5432, "user": "coder", "database": "coder",
            "ssl_mode": "verify-full", "search_path": None, "params": {}}
    res = run(core, chart_generation="v2", url_options=opts)
    url = base64.b64decode(core.secrets[("coder", "coder-db-url")].data["url"]).decode()
    assert url == "postgres://coder:s3cret%20p%40ss%2Fword%25@db.example.com:5432/coder?sslmode=verify-full"
    assert res["password_secret_name"] is None


def test_tls_secrets(tmp_path):
    cert, key, ca = (tmp_path / n for n in ("c.pem", "k.pem", "ca.pem"))
    for path in (cert, key, ca):
        path.write_text(f"-----BEGIN {path.name}-----\n")
    core = FakeCore()
    run(core, ssl_cert_file=str(cert), ssl_key_file=str(key), ssl_ca_file=str(ca))
    client = core.secrets[("coder", "coder-db-client-tls")]
    assert client.type == "kubernetes.io/tls" and sorted(client.data) == ["tls.crt", "tls.key"]
    assert sorted(core.secrets[("coder", "coder-db-ca")].data) == ["ca.crt"]


@pytest.mark.parametrize("over, words", [
    ({"db_password": " padded"}, ["coder_db_password has leading or trailing white space"]),
    ({"db_password": "a\tb", "chart_generation": "v2", "url_options": {}},
     ["coder_db_password contains a control character", "coder_chart_generation v2"]),
    ({"db_connector": "awsiamrds"}, ["coder_db_connector is awsiamrds", "remove coder_db_password"]),
    ({"chart_generation": "v2", "immutable_versions": True, "url_options": {}},
     ["db_secret_immutable", "coder_chart_generation v2"]),
    ({"ssl_cert_file": "/etc/hostname"}, ["coder_db_ssl_cert_file is set but coder_db_ssl_key_file is not"]),
    ({"ssl_cert_file": "/nonexistent/c", "ssl_key_file": "/nonexistent/k"},
     ["coder_db_ssl_cert_file /nonexistent/c does not exist"]),
    ({"password_as_file": True, "password_secret": "db.password"}, ["coder_db_password_secret", "DNS-1123 label"]),
    ({"immutable_versions": True, "password_secret": "p" * 59}, ["coder_db_password_secret", "at most 58"]),
])
def test_bad_input_is_refused_before_any_call(over, words):
    core = FakeCore()
    with pytest.raises(dbs.SecretsError) as err:
        run(core, **over)
    for word in words:
        assert word in err.value.message
    assert "Nothing was changed" in err.value.message and "\t" not in err.value.message
    assert not core.calls


@pytest.mark.parametrize("quoted", [
    str,                            # as it is
    json.dumps,                     # Go's %q / JSON escaping: \" and \\
    b64,                            # the data field
])
def test_api_error_quoting_the_data_is_hidden(quoted):
    password = 'pa"ss\\word-1234'
    core = FakeCore()
    core.fail["create_namespaced_secret"] = api_error(
        422, "Unprocessable Entity", f"Secret is invalid: data: Invalid value: {quoted(password)}")
    with pytest.raises(dbs.SecretsError) as err:
        run(core, db_password=password)
    assert "hidden: it contains the Secret data" in err.value.message
    assert "Invalid value" not in err.value.message


def test_api_error_without_data_is_quoted():
    core = FakeCore()
    core.fail["create_namespaced_secret"] = api_error(422, "Unprocessable Entity", "metadata.name: Invalid value")
    with pytest.raises(dbs.SecretsError) as err:
        run(core)
    assert "HTTP 422 Unprocessable Entity): metadata.name: Invalid value" in err.value.message


def test_forbidden_names_the_rbac_verbs_and_what_was_done():
    core = FakeCore(namespaces=())
    core.fail["create_namespaced_secret"] = api_error(403, "Forbidden", 'secrets is forbidden: User "x" cannot create')
    with pytest.raises(dbs.SecretsError) as err:
        run(core, create_namespace=True)
    msg = err.value.message
    assert "Writing the Secret coder-db-password" in msg and "HTTP 403" in msg and "lacks an RBAC verb" in msg
    assert "namespace coder created" in msg and "The release was not touched" in msg


def test_type_change_is_refused_naming_the_variable(tmp_path):
    core = FakeCore()
    run(core)
    core.secrets[("coder", "coder-db-client-tls")] = core._obj(
        {"metadata": {"name": "coder-db-client-tls"}, "data": {}, "type": "Opaque"})
    for name in ("c", "k"):
        (tmp_path / name).write_text("x")
    with pytest.raises(dbs.SecretsError) as err:
        run(core, ssl_cert_file=str(tmp_path / "c"), ssl_key_file=str(tmp_path / "k"),
            names={"ssl_client_secret": "coder_db_ssl_client_secret"})
    assert "type cannot change" in err.value.message and "coder_db_ssl_client_secret" in err.value.message
