# Copyright (c) 2026, coderops maintainers
# GNU General Public License v3.0+ (see LICENSE or https://www.gnu.org/licenses/gpl-3.0.txt)
# SPDX-License-Identifier: GPL-3.0-or-later

# Note that this module util is **PRIVATE** to the collection. It can have breaking changes at any time.
# Do not use this from other collections or standalone plugins/modules!

"""Where the API server is and how to log in to it, from a kubeconfig (or from options alone).

Reads what kubectl and helm read: the context's cluster (``server``, ``certificate-authority``
or ``-data``, ``insecure-skip-tls-verify``, ``tls-server-name``, ``proxy-url``) and user
(``token``, ``tokenFile``, ``client-certificate``/``client-key`` or their ``-data``,
``username``/``password``, and ``exec`` credential plugins such as ``aws eks get-token``, run
again when the credential they gave expires). Relative paths are relative to the kubeconfig's
directory. The legacy ``auth-provider`` plugins (oidc ...) are left to the kubernetes library,
imported only then (see _kube_rest for why not always).

The kubeconfig is parsed from the open file, so that a YAML error names a position in the file,
never its content (which holds tokens and keys).
"""

from __future__ import annotations

import base64
import datetime
import json
import os
import subprocess

try:
    import yaml
except ImportError:  # pragma: no cover - ansible-core needs PyYAML
    yaml = None

EXEC_TIMEOUT = 60


class KubeconfigError(Exception):
    """``yaml`` is True when the file is not YAML at all; ``field`` is the option to fix."""

    def __init__(self, message, field="kubeconfig", not_yaml=False):
        super().__init__(message)
        self.message = message
        self.field = field
        self.not_yaml = not_yaml


class Connection:
    """One API server and one login. The secrets (token, key, password) never appear in repr."""

    def __init__(self, host, ca_file=None, ca_data=None, verify=True, cert_file=None, key_file=None,
                 cert_data=None, key_data=None, token=None, token_file=None, basic_auth=None,
                 tls_server_name=None, proxy_url=None, exec_spec=None, base_dir=None):
        self.host = (host or "").rstrip("/")
        self.ca_file = ca_file
        self.ca_data = ca_data
        self.verify = verify
        self.cert_file = cert_file
        self.key_file = key_file
        self.cert_data = cert_data
        self.key_data = key_data
        self.token = token
        self.token_file = token_file
        self.basic_auth = basic_auth
        self.tls_server_name = tls_server_name
        self.proxy_url = proxy_url
        self._exec = exec_spec
        self._base_dir = base_dir
        self._expires = None
        if exec_spec:
            self._run_exec()

    def __repr__(self):
        return (f"Connection(host={self.host!r}, ca_file={self.ca_file!r}, verify={self.verify!r},"
                f" token={'<set>' if self.token or self.token_file else None},"
                f" client_certificate={bool(self.cert_file or self.cert_data)}, exec={bool(self._exec)})")

    def bearer_token(self):
        """The token for this request: a tokenFile is read each time (projected service account
        tokens rotate), an exec plugin's token is fetched again once it expired."""
        if self._exec and self._expires and datetime.datetime.now(datetime.UTC) >= self._expires:
            self._run_exec()
        if self.token:
            return self.token
        if self.token_file:
            try:
                with open(self.token_file, encoding="utf-8") as handle:
                    return handle.read().strip()
            except OSError as exc:
                raise KubeconfigError(f"its tokenFile {self.token_file} cannot be read ({exc.strerror})") from None
        return None

    def _run_exec(self):
        spec = self._exec
        command = spec.get("command")
        if not command:
            raise KubeconfigError("its user's exec plugin has no command")
        if os.sep in command and not os.path.isabs(command) and self._base_dir:
            command = os.path.join(self._base_dir, command)
        api_version = spec.get("apiVersion") or "client.authentication.k8s.io/v1"
        env = dict(os.environ)
        env.update({item["name"]: item["value"] for item in spec.get("env") or [] if "name" in item})
        env["KUBERNETES_EXEC_INFO"] = json.dumps({"apiVersion": api_version, "kind": "ExecCredential",
                                                  "spec": {"interactive": False}})
        try:
            proc = subprocess.run([command] + [str(a) for a in spec.get("args") or []], env=env,
                                  stdin=subprocess.DEVNULL, capture_output=True, timeout=EXEC_TIMEOUT,
                                  check=False)
        except (OSError, subprocess.TimeoutExpired) as exc:
            raise KubeconfigError(f"its exec plugin {command} cannot run: {exc}") from None
        if proc.returncode != 0:
            # stderr only: the plugin prints the credential on stdout.
            tail = " ".join(proc.stderr.decode("utf-8", "replace").split())[-300:]
            raise KubeconfigError(f"its exec plugin {command} exited with {proc.returncode}: {tail}")
        try:
            status = json.loads(proc.stdout)["status"]
        except (ValueError, KeyError, TypeError):
            raise KubeconfigError(f"its exec plugin {command} printed no ExecCredential with a status") from None
        if status.get("token"):
            self.token = status["token"]
        elif status.get("clientCertificateData") and status.get("clientKeyData"):
            self.cert_data = status["clientCertificateData"].encode()
            self.key_data = status["clientKeyData"].encode()
        else:
            raise KubeconfigError(f"its exec plugin {command} gave neither a token nor a client certificate")
        expires = status.get("expirationTimestamp")
        self._expires = None
        if expires:
            try:
                self._expires = (datetime.datetime.fromisoformat(expires.replace("Z", "+00:00"))
                                 - datetime.timedelta(seconds=30))
            except ValueError:
                self._expires = None


def _named(items, name, what, field):
    for item in items or []:
        if isinstance(item, dict) and item.get("name") == name:
            return item.get(what) or {}
    names = ", ".join(sorted(str(i.get("name")) for i in items or [] if isinstance(i, dict))) or "none"
    raise KubeconfigError(f"it has no {what} named {name!r} (it has: {names})", field=field)


def _data(value, key):
    try:
        return base64.b64decode(value, validate=True)
    except (ValueError, TypeError):
        raise KubeconfigError(f"its {key} is not base64") from None


def load(path, context=None):
    """The Connection that `context` (else the current-context) of the kubeconfig at `path` gives."""
    try:
        with open(path, "rb") as stream:
            doc = yaml.safe_load(stream)
    except yaml.YAMLError as exc:
        raise KubeconfigError(str(exc), not_yaml=True) from None
    if not isinstance(doc, dict):
        raise KubeconfigError("not a mapping with clusters, users and contexts", not_yaml=True)
    name = context or doc.get("current-context")
    if not name:
        raise KubeconfigError("it has no current-context; set context to one of its contexts", field="context")
    ctx = _named(doc.get("contexts"), name, "context", "context" if context else "kubeconfig")
    cluster = _named(doc.get("clusters"), ctx.get("cluster"), "cluster", "kubeconfig")
    user = _named(doc.get("users"), ctx.get("user"), "user", "kubeconfig") if ctx.get("user") else {}
    base = os.path.dirname(os.path.abspath(path))

    def rel(value):
        return value if not value or os.path.isabs(value) else os.path.join(base, value)

    if not cluster.get("server"):
        raise KubeconfigError(f"its cluster {ctx.get('cluster')!r} has no server")
    if user.get("auth-provider"):
        return _from_library(path, name)
    conn = {"host": cluster["server"], "verify": not cluster.get("insecure-skip-tls-verify", False),
            "tls_server_name": cluster.get("tls-server-name"), "proxy_url": cluster.get("proxy-url"),
            "base_dir": base}
    if cluster.get("certificate-authority-data"):
        conn["ca_data"] = _data(cluster["certificate-authority-data"], "certificate-authority-data")
    elif cluster.get("certificate-authority"):
        conn["ca_file"] = rel(cluster["certificate-authority"])
    if user.get("client-certificate-data") or user.get("client-key-data"):
        conn["cert_data"] = _data(user.get("client-certificate-data") or "", "client-certificate-data")
        conn["key_data"] = _data(user.get("client-key-data") or "", "client-key-data")
    elif user.get("client-certificate") or user.get("client-key"):
        conn["cert_file"] = rel(user.get("client-certificate"))
        conn["key_file"] = rel(user.get("client-key"))
    if bool(conn.get("cert_file") or conn.get("cert_data")) != bool(conn.get("key_file") or conn.get("key_data")):
        raise KubeconfigError("its user has a client certificate without its key, or the reverse")
    if user.get("token"):
        conn["token"] = user["token"]
    elif user.get("tokenFile"):
        conn["token_file"] = rel(user["tokenFile"])
    elif user.get("username") and user.get("password"):
        conn["basic_auth"] = base64.b64encode(f"{user['username']}:{user['password']}".encode()).decode()
    if user.get("exec"):
        conn["exec_spec"] = user["exec"]
    return Connection(**conn)


def _from_library(path, context):
    """An auth-provider user (oidc and the like), through the kubernetes library's loader."""
    try:
        from kubernetes import client, config  # pylint: disable=import-outside-toplevel
    except ImportError:
        raise KubeconfigError("its user has an auth-provider, which needs the Python library kubernetes"
                              " (pip install kubernetes), or use an exec credential plugin") from None
    cfg = client.Configuration()
    try:
        config.load_kube_config(config_file=path, context=context, client_configuration=cfg)
    except Exception as exc:  # pylint: disable=broad-exception-caught  # the library's own errors
        raise KubeconfigError(str(exc)) from None
    token = (cfg.api_key or {}).get("authorization", "")
    return Connection(cfg.host, ca_file=cfg.ssl_ca_cert, verify=cfg.verify_ssl, cert_file=cfg.cert_file,
                      key_file=cfg.key_file, token=token[len("Bearer "):] if token.startswith("Bearer ") else None)
