# Copyright (c) 2026, coderops maintainers
# GNU General Public License v3.0+ (see LICENSE or https://www.gnu.org/licenses/gpl-3.0.txt)
# SPDX-License-Identifier: GPL-3.0-or-later

# Note that this module util is **PRIVATE** to the collection. It can have breaking changes at any time.
# Do not use this from other collections or standalone plugins/modules!

"""Where the API server is and how to log in to it, from a kubeconfig (or from options alone).

Reads what kubectl and helm read: the context's cluster (``server``, ``certificate-authority``
or ``-data``, ``insecure-skip-tls-verify``, ``tls-server-name``, ``proxy-url``) and user
(``token``, ``tokenFile``, ``client-certificate``/``client-key`` or their ``-data``,
``username``/``password``). Relative paths are relative to the kubeconfig's directory. A user
with an ``exec`` credential plugin (``aws eks get-token`` ...) or a legacy ``auth-provider``
(oidc ...) is left to the kubernetes library's loader, imported only then (see _kube_rest for
why not always): it runs the plugin, and again when the credential it gave expires, as kubectl
does.

The kubeconfig is parsed from the open file, so that a YAML error names a position in the file,
never its content (which holds tokens and keys).
"""

from __future__ import annotations

import base64
import dataclasses
import os

try:
    import yaml
except ImportError:  # pragma: no cover - ansible-core needs PyYAML
    yaml = None


class KubeconfigError(Exception):
    """``not_yaml`` when the file is not YAML at all; ``field`` is the option to fix."""

    def __init__(self, message, field="kubeconfig", not_yaml=False):
        super().__init__(message)
        self.message = message
        self.field = field
        self.not_yaml = not_yaml


@dataclasses.dataclass(repr=False)
class Connection:  # pylint: disable=too-many-instance-attributes  # the kubeconfig's own fields
    """One API server and one login. The secrets (token, key, password) never appear in repr."""

    host: str
    ca_file: str = None
    ca_data: bytes = None
    verify: bool = True
    cert_file: str = None
    key_file: str = None
    cert_data: bytes = None
    key_data: bytes = None
    token: str = None
    token_file: str = None
    basic_auth: str = None
    tls_server_name: str = None
    proxy_url: str = None
    token_source: object = None  # a callable giving the current token (exec plugins, auth-providers)

    def __post_init__(self):
        self.host = (self.host or "").rstrip("/")

    def __repr__(self):
        return (f"Connection(host={self.host!r}, ca_file={self.ca_file!r}, verify={self.verify!r},"
                f" token={'<set>' if self.token or self.token_file else None},"
                f" client_certificate={bool(self.cert_file or self.cert_data)})")

    def bearer_token(self):
        """The token for this request: a tokenFile is read each time (projected service account
        tokens rotate); an exec plugin's or auth-provider's comes from the library, which fetches
        it again once it expired."""
        if self.token_source:
            self.token = self.token_source()
        if self.token:
            return self.token
        if self.token_file:
            try:
                with open(self.token_file, encoding="utf-8") as handle:
                    return handle.read().strip()
            except OSError as exc:
                raise KubeconfigError(f"its tokenFile {self.token_file} cannot be read ({exc.strerror})") from None
        return None


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
    if user.get("auth-provider") or user.get("exec"):
        return _from_library(path, name)
    conn = {"host": cluster["server"], "verify": not cluster.get("insecure-skip-tls-verify", False),
            "tls_server_name": cluster.get("tls-server-name"), "proxy_url": cluster.get("proxy-url")}
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
    return Connection(**conn)


def _from_library(path, context):
    """An exec or auth-provider user, through the kubernetes library's loader (which runs the
    plugin, and its refresh hook again when the token expired)."""
    try:
        from kubernetes import client, config  # pylint: disable=import-outside-toplevel
    except ImportError:
        raise KubeconfigError("its user has an exec credential plugin or an auth-provider, which needs the"
                              " Python library kubernetes where the play runs (pip install kubernetes)") from None
    cfg = client.Configuration()
    try:
        config.load_kube_config(config_file=path, context=context, client_configuration=cfg)
    except Exception as exc:  # pylint: disable=broad-exception-caught  # the library's own errors
        raise KubeconfigError(str(exc)) from None

    def token():
        if cfg.refresh_api_key_hook is not None:
            cfg.refresh_api_key_hook(cfg)
        value = (cfg.api_key or {}).get("authorization") or ""
        return value[len("Bearer "):] if value.startswith("Bearer ") else None

    return Connection(cfg.host, ca_file=cfg.ssl_ca_cert, verify=cfg.verify_ssl, cert_file=cfg.cert_file,
                      key_file=cfg.key_file, tls_server_name=getattr(cfg, "tls_server_name", None),
                      proxy_url=cfg.proxy, token_source=token)
