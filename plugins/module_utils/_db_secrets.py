# Copyright (c) 2026, coderops maintainers
# GNU General Public License v3.0+ (see LICENSE or https://www.gnu.org/licenses/gpl-3.0.txt)
# SPDX-License-Identifier: GPL-3.0-or-later

# Note that this module util is **PRIVATE** to the collection. It can have breaking changes at any time.
# Do not use this from other collections or standalone plugins/modules!

"""The namespace and the database Secrets of one Coder release, in one run.

* the password Secret of the v1 chart (key ``password``), patched in place, or immutable and
  versioned (``<name>-v<N>``: the version that holds this password is reused, else the next one
  is created, and ``cleanup`` removes the older ones after a good rollout);
* the connection URL Secret of the v2 chart (key ``url``, the URL that coder_pg_url builds);
* the client certificate (a ``kubernetes.io/tls`` Secret) and the CA bundle (key ``ca.crt``).

Why not kubernetes.core.k8s: each of its runs loads the client and the API discovery again (1.2
to 2.1 s, three to five runs per deploy), it returns the object it wrote, data included, so that
the role had to hide it and rebuild an error from parts, and choosing a version took a read, Jinja
and a write. Here the data never leaves this file: the results, the diff and the errors name
Secrets and keys only, and an API message that holds any form of a value is not shown.

Every input rule is checked before anything is written. Messages name what the caller sets:
``names`` maps an option to the variable that sets it (the db_secret role passes its variables).
"""

from __future__ import annotations

import base64
import json
import os
import re

from ansible_collections.coderops.deploy.plugins.module_utils._inputs import (
    InputError,
    check_secret_name,
)
from ansible_collections.coderops.deploy.plugins.module_utils._kube import (
    REQUEST_TIMEOUT,
    ApiException,
    describe_unreachable,
)
from ansible_collections.coderops.deploy.plugins.module_utils._pg_errors import scrub
from ansible_collections.coderops.deploy.plugins.module_utils._pg_url import pg_url

MANAGED_BY = "app.kubernetes.io/managed-by"
FAMILY_LABEL = "coderops.io/secret-family"
RELEASE_LABEL = "coderops.io/release"
# Immutable mode appends -v<N> (up to 5 characters for the versions a release will ever see), and
# the chart names a volume after the Secret with noPasswordEnv: a label of at most 63.
VERSIONED_MAX_LEN = 58
_VERSION = re.compile(r"-v([0-9]+)$")
_CONTROL = re.compile(r"[\x00-\x1f\x7f]")
# Lines of a PEM file at least this long are hidden from API messages on their own too.
_HIDE_FRAGMENT_LEN = 16


class SecretsError(Exception):
    """An error whose message names the variable to fix (``field`` is the option)."""

    def __init__(self, message, field=None):
        super().__init__(message)
        self.message = message
        self.field = field


class Names:
    """How messages name an option: the caller's variable for it, else the option itself."""

    def __init__(self, mapping=None):
        self._mapping = dict(mapping or {})

    def __call__(self, option):
        return self._mapping.get(option, option)


class Desired:
    """One Secret to write: its name, type and data (bytes), and whether it is immutable."""

    def __init__(self, name, kind, data, option, immutable=False, labels=None, hidden=()):
        self.name = name
        self.type = kind
        self.data = data
        self.option = option  # the option that names it, for messages
        self.immutable = immutable
        self.labels = labels or {}
        self.hidden = list(hidden)

    def encoded(self):
        return {key: base64.b64encode(value).decode("ascii") for key, value in self.data.items()}


def _read_file(names, option, path):
    try:
        with open(path, "rb") as fh:
            return fh.read()
    except OSError as exc:
        raise SecretsError(f"{names(option)} {path} cannot be read ({exc.strerror}); fix the path or"
                           f" its permissions. Nothing was changed.", option) from None


def check_input(params, names):
    """Every input rule, before anything is written; raises SecretsError naming the variable."""
    password = params.get("db_password")
    given = password not in (None, "")
    v2 = params["chart_generation"] == "v2"
    if given:
        if password != password.strip():
            raise SecretsError(f"{names('db_password')} has leading or trailing white space (a space, a tab"
                               f" or a newline, often from a file or a prompt): Coder would send it as it"
                               f" is and fail to log in. Remove it. Nothing was changed.", "db_password")
        if v2 and _CONTROL.search(password):
            raise SecretsError(f"{names('db_password')} contains a control character (a line break or a"
                               f" tab, say), which cannot go into the connection URL of the Coder v2 chart"
                               f" ({names('chart_generation')} v2); remove it. Nothing was changed.",
                               "db_password")
        if params["db_connector"] == "awsiamrds":
            raise SecretsError(f"{names('db_connector')} is awsiamrds, which logs in with an AWS IAM token"
                               f" and takes no password Secret: remove {names('db_password')} (or set"
                               f" {names('db_connector')} to postgres). Nothing was changed.", "db_password")
    if v2 and params["immutable_versions"]:
        raise SecretsError(f"{names('immutable_versions')} is true, but immutable, versioned password"
                           f" Secrets are a feature of the Coder v1 chart's password Secret only; with"
                           f" {names('chart_generation')} v2 the password is in the connection URL Secret"
                           f" {names('url_secret')}, which is updated in place. Set"
                           f" {names('immutable_versions')} to false (or {names('chart_generation')} to"
                           f" v1). Nothing was changed.", "immutable_versions")
    if v2 and params.get("url_options") is None:
        raise SecretsError(f"{names('url_options')} is needed with {names('chart_generation')} v2: the"
                           f" connection_url_options of coderops.deploy.coder_values. Nothing was"
                           f" changed.", "url_options")
    if bool(params.get("ssl_cert_file")) != bool(params.get("ssl_key_file")):
        given_opt, missing = (("ssl_cert_file", "ssl_key_file") if params.get("ssl_cert_file")
                              else ("ssl_key_file", "ssl_cert_file"))
        raise SecretsError(f"{names(given_opt)} is set but {names(missing)} is not: a client"
                           f" certificate needs its private key and the reverse; set both or neither."
                           f" Nothing was changed.", given_opt)
    for option in ("ssl_cert_file", "ssl_key_file", "ssl_ca_file"):
        path = params.get(option)
        if path and not (os.path.isfile(path) and os.access(path, os.R_OK)):
            raise SecretsError(f"{names(option)} {path} does not exist or is not a readable file; fix"
                               f" the path. Nothing was changed.", option)
    _check_names(params, names, given)


def _check_names(params, names, given):
    checks = []
    if params["chart_generation"] == "v1" and params["db_connector"] == "postgres" and given:
        immutable = params["immutable_versions"]
        as_file = params["password_as_file"]
        why = (", which immutable mode extends with -v<N>" if immutable
               else ", which noPasswordEnv needs: the chart names a volume after it" if as_file else "")
        checks.append(("password_secret", immutable or as_file,
                       VERSIONED_MAX_LEN if immutable else 63, why))
    if params["chart_generation"] == "v2":
        checks.append(("url_secret", False, 63, ""))
    if params.get("ssl_cert_file"):
        checks.append(("ssl_client_secret", False, 63, ""))
    if params.get("ssl_ca_file"):
        checks.append(("ssl_ca_secret", False, 63, ""))
    for option, label, max_len, why in checks:
        try:
            check_secret_name(names(option), params[option], label=label, why=why, max_len=max_len)
        except InputError as exc:
            raise SecretsError(f"{exc} Nothing was changed.", option) from None


def _secret_texts(values):
    """The values as text, and each long line of a PEM file on its own: what _pg_errors.scrub
    looks for (in every encoding) in an API message."""
    texts = []
    for value in values:
        text = value.decode("utf-8", "replace") if isinstance(value, bytes) else value
        texts.append(text)
        texts.extend(line.strip() for line in text.splitlines() if len(line.strip()) >= _HIDE_FRAGMENT_LEN)
    return [t for t in texts if t]


def desired_secrets(params, names):
    """The Secrets this run writes (the versioned password Secret's name is chosen later)."""
    labels = {MANAGED_BY: "coderops.deploy", "app.kubernetes.io/part-of": "coder",
              RELEASE_LABEL: params["release_name"]}
    labels.update(params.get("extra_labels") or {})
    password = params.get("db_password") or None
    out = []
    if params["chart_generation"] == "v1":
        if password and params["db_connector"] == "postgres":
            extra = {FAMILY_LABEL: params["password_secret"]} if params["immutable_versions"] else {}
            out.append(Desired(params["password_secret"], "Opaque", {"password": password.encode("utf-8")},
                               "password_secret", immutable=params["immutable_versions"],
                               labels=dict(labels, **extra)))
    else:
        opts = params["url_options"]
        try:
            url = pg_url(opts.get("host"), opts.get("port"), opts.get("user"), opts.get("database"),
                         password=password, ssl_mode=opts.get("ssl_mode") or "require",
                         search_path=opts.get("search_path"), params=opts.get("params"))
        except InputError as exc:
            # Never the password: the message names the part of url_options at fault.
            field = "db_password" if exc.field == "password" else "url_options"
            raise SecretsError(f"{names(field)}: {exc}. Nothing was changed.", field) from None
        # The password on its own too: scrub also looks for its percent-encoded form.
        out.append(Desired(params["url_secret"], "Opaque", {"url": url.encode("utf-8")}, "url_secret",
                           labels=labels, hidden=[password] if password else []))
    if params.get("ssl_cert_file"):
        out.append(Desired(params["ssl_client_secret"], "kubernetes.io/tls",
                           {"tls.crt": _read_file(names, "ssl_cert_file", params["ssl_cert_file"]),
                            "tls.key": _read_file(names, "ssl_key_file", params["ssl_key_file"])},
                           "ssl_client_secret", labels=labels))
    if params.get("ssl_ca_file"):
        out.append(Desired(params["ssl_ca_secret"], "Opaque",
                           {"ca.crt": _read_file(names, "ssl_ca_file", params["ssl_ca_file"])},
                           "ssl_ca_secret", labels=labels))
    return out


def _shape(secret):
    """What the diff shows of a Secret: never its data."""
    return {"type": secret.type, "keys": sorted(secret.data or {}),
            "immutable": bool(getattr(secret, "immutable", False))}


class DbSecrets:
    """Reads and writes the Secrets; ``kube`` is a _kube.Kube (its CoreV1Api is used)."""

    def __init__(self, kube, namespace, names, check_mode=False):
        self.core = kube.core
        self.namespace = namespace
        self.names = names
        self.check_mode = check_mode
        self.dry_run = "All" if check_mode else None
        self.hidden = []
        self.done = []  # (name, action) of what this run changed, for messages after a failure
        self.diff = {"before": {"secrets": {}}, "after": {"secrets": {}}}

    # -- errors ----------------------------------------------------------------------------

    def _error(self, exc, what, option=None):
        if not isinstance(exc, ApiException) or getattr(exc, "status", None) in (None, 0):
            return SecretsError(f"{what} failed: the API server cannot be reached"
                                f" ({describe_unreachable(exc)}).{self._so_far()}", "kubeconfig")
        status, reason = exc.status, (exc.reason or "")
        try:
            detail = str(json.loads(exc.body).get("message", ""))
        except (ValueError, TypeError, AttributeError):
            detail = str(exc.body or "")
        if scrub(detail, self.hidden) != detail:
            detail = "(hidden: it contains the Secret data)"
        hint = ""
        if status == 403:
            hint = (" The kubeconfig user lacks an RBAC verb on secrets (it needs get, list, create,"
                    " patch and delete).")
        elif status == 404 and option != "namespace":
            hint = (f" Does namespace {self.namespace} exist? Create it, or set"
                    f" {self.names('create_namespace')} to true.")
        return SecretsError(f"{what} in namespace {self.namespace} failed (HTTP {status} {reason}):"
                            f" {detail}.{hint}{self._so_far()} The release was not touched.",
                            option)

    def _so_far(self):
        if not self.done:
            return ""
        return " Done before that: " + ", ".join(f"{name} {action}" for name, action in self.done) + "."

    # -- namespace -------------------------------------------------------------------------

    def ensure_namespace(self):
        """Create the namespace when it is missing; returns True when this run creates it."""
        try:
            self.core.read_namespace(self.namespace, _request_timeout=REQUEST_TIMEOUT)
            self.diff["before"]["namespace"] = self.diff["after"]["namespace"] = self.namespace
            return False
        except ApiException as exc:
            if exc.status != 404:
                if exc.status == 403:
                    return False  # reading namespaces is often not allowed; writing will tell
                raise self._error(exc, f"Reading namespace {self.namespace}", "namespace") from None
        except Exception as exc:  # pylint: disable=duplicate-except  # socket and http.client errors
            raise self._error(exc, f"Reading namespace {self.namespace}", "namespace") from None
        body = {"apiVersion": "v1", "kind": "Namespace", "metadata": {"name": self.namespace}}
        try:
            self.core.create_namespace(body, dry_run=self.dry_run, _request_timeout=REQUEST_TIMEOUT)
        except Exception as exc:  # pylint: disable=broad-exception-caught
            raise self._error(exc, f"Creating namespace {self.namespace}", "namespace") from None
        self.diff["before"]["namespace"] = None
        self.diff["after"]["namespace"] = self.namespace
        self.done.append((f"namespace {self.namespace}", "created"))
        return True

    # -- reading ---------------------------------------------------------------------------

    def read(self, name, option):
        try:
            return self.core.read_namespaced_secret(name, self.namespace, _request_timeout=REQUEST_TIMEOUT)
        except ApiException as exc:
            if exc.status == 404:
                return None
            raise self._error(exc, f"Reading the Secret {name}", option) from None
        except Exception as exc:  # pylint: disable=duplicate-except
            raise self._error(exc, f"Reading the Secret {name}", option) from None

    def listed(self, selector, option):
        try:
            return self.core.list_namespaced_secret(self.namespace, label_selector=selector,
                                                    _request_timeout=REQUEST_TIMEOUT).items
        except Exception as exc:  # pylint: disable=broad-exception-caught
            raise self._error(exc, f"Listing the Secrets {selector}", option) from None

    def family(self, base):
        """The versions of a versioned Secret, as (number, Secret), oldest first."""
        selector = f"{MANAGED_BY}=coderops.deploy,{FAMILY_LABEL}={base}"
        out = []
        for secret in self.listed(selector, "password_secret"):
            match = _VERSION.search(secret.metadata.name)
            if secret.metadata.name.startswith(base + "-v") and match:
                out.append((int(match.group(1)), secret))
        return sorted(out, key=lambda pair: pair[0])

    def choose_version(self, desired):
        """Name the versioned Secret: the newest version that holds this data, else the next."""
        base = desired.name
        versions = self.family(base)
        wanted = desired.encoded()
        for secret in reversed([pair[1] for pair in versions]):
            if (secret.data or {}).get("password") == wanted["password"]:
                desired.name = secret.metadata.name
                return False
        desired.name = f"{base}-v{max([pair[0] for pair in versions] + [0]) + 1}"
        return True

    # -- writing ---------------------------------------------------------------------------

    def write(self, desired, namespace_pending=False):
        """Create or patch one Secret; returns created, updated or unchanged."""
        self.hidden.extend(_secret_texts(list(desired.data.values()) + desired.hidden))
        what = f"Writing the Secret {desired.name}"
        wanted = desired.encoded()
        after = {"type": desired.type, "keys": sorted(wanted), "immutable": desired.immutable}
        existing = None if namespace_pending else self.read(desired.name, desired.option)
        if existing is not None:
            self.diff["before"]["secrets"][desired.name] = _shape(existing)
            current = existing.data or {}
            changed_keys = sorted(k for k, v in wanted.items() if current.get(k) != v)
            labels = existing.metadata.labels or {}
            if (existing.type or "Opaque") != desired.type:
                raise SecretsError(f"{what} failed: it exists with type {existing.type}, not"
                                   f" {desired.type}, and a Secret's type cannot change. Delete it, or set"
                                   f" {self.names(desired.option)} to another name.{self._so_far()}"
                                   f" The release was not touched.", desired.option)
            if not changed_keys and all(labels.get(k) == v for k, v in desired.labels.items()):
                self.diff["after"]["secrets"][desired.name] = _shape(existing)
                return "unchanged"
            if existing.immutable:
                raise SecretsError(f"{what} failed: it is immutable and holds other data. Delete it,"
                                   f" or set {self.names(desired.option)} to another name.{self._so_far()}"
                                   f" The release was not touched.", desired.option)
            after["changed_keys"] = changed_keys
            self.diff["after"]["secrets"][desired.name] = after
            body = {"metadata": {"labels": desired.labels}, "data": wanted}
            try:
                self.core.patch_namespaced_secret(desired.name, self.namespace, body, dry_run=self.dry_run,
                                                  _request_timeout=REQUEST_TIMEOUT)
            except Exception as exc:  # pylint: disable=broad-exception-caught
                raise self._error(exc, what, desired.option) from None
            self.done.append((desired.name, "updated"))
            return "updated"
        after["changed_keys"] = sorted(wanted)
        self.diff["after"]["secrets"][desired.name] = after
        if not namespace_pending:
            # Base64 data, never stringData; no client-side apply, so no last-applied annotation.
            body = {"apiVersion": "v1", "kind": "Secret", "type": desired.type,
                    "metadata": {"name": desired.name, "namespace": self.namespace, "labels": desired.labels},
                    "data": wanted}
            if desired.immutable:
                body["immutable"] = True
            try:
                self.core.create_namespaced_secret(self.namespace, body, dry_run=self.dry_run,
                                                   _request_timeout=REQUEST_TIMEOUT)
            except Exception as exc:  # pylint: disable=broad-exception-caught
                raise self._error(exc, what, desired.option) from None
        self.done.append((desired.name, "created"))
        return "created"

    def delete(self, names, option):
        for name in names:
            self.diff["before"]["secrets"][name] = {"deleted": False}
            self.diff["after"]["secrets"][name] = {"deleted": True}
            try:
                self.core.delete_namespaced_secret(name, self.namespace, dry_run=self.dry_run,
                                                   _request_timeout=REQUEST_TIMEOUT)
            except ApiException as exc:
                if exc.status != 404:
                    raise self._error(exc, f"Deleting the Secret {name}", option) from None
            except Exception as exc:  # pylint: disable=duplicate-except
                raise self._error(exc, f"Deleting the Secret {name}", option) from None
            self.done.append((name, "deleted"))


def _summary(result, check_mode):
    """One line: what happened to the namespace and to each Secret."""
    would = "would be " if check_mode else ""
    parts = [f"namespace {result['namespace']['name']}: {would}created"] if result["namespace"]["created"] else []
    for secret in result["secrets"]:
        action = secret["action"]
        text = "unchanged" if action == "unchanged" else f"{would}written"
        if secret["name"] == result["password_secret_name"] and secret["action"] == "created" \
                and result["password_secret_new"]:
            text += " (a new immutable version: the pods roll to it; older ones go after a good rollout)"
        parts.append(f"Secret {secret['name']}: {text}")
    return "; ".join(parts) or "no Secret to write"


def _deleted_summary(names, check_mode, what):
    if not names:
        return f"no {what} to delete"
    return f"{'would delete' if check_mode else 'deleted'} {what}: {', '.join(names)}"


def run(params, make_kube, check_mode=False):
    """The module's work; returns its result (without data). ``make_kube`` returns a _kube.Kube;
    it is called after the input checks, so that bad input is reported first."""
    names = Names(params.get("names"))
    state = params["state"]
    if state == "present":
        check_input(params, names)
        wanted = desired_secrets(params, names)
    secrets = DbSecrets(make_kube(), params["namespace"], names, check_mode)
    result = {"changed": False, "namespace": {"name": params["namespace"], "created": False},
              "secrets": [], "password_secret_name": None, "password_secret_new": False,
              "deleted": []}
    if state == "present":
        pending = False
        if params["create_namespace"]:
            created = secrets.ensure_namespace()
            result["namespace"]["created"] = created
            # In check mode a namespace that this run would create does not exist yet: the API
            # cannot dry-run the Secrets inside it, so they are reported as to be written.
            pending = created and check_mode
        for desired in wanted:
            if desired.immutable and not pending:
                result["password_secret_new"] = secrets.choose_version(desired)
            elif desired.immutable:
                desired.name += "-v1"
                result["password_secret_new"] = True
            action = secrets.write(desired, pending)
            if desired.option == "password_secret":
                result["password_secret_name"] = desired.name
            result["secrets"].append({"name": desired.name, "type": desired.type,
                                      "keys": sorted(desired.data), "action": action})
        result["changed"] = result["namespace"]["created"] or any(
            s["action"] != "unchanged" for s in result["secrets"])
        result["summary"] = _summary(result, check_mode)
    elif state == "cleanup":
        keep = params.get("keep_password_secret")
        if not keep:
            raise SecretsError(f"{names('keep_password_secret')} is needed with state cleanup: the"
                               f" version the release names now. Nothing was deleted.",
                               "keep_password_secret")
        old = [pair[1].metadata.name for pair in secrets.family(params["password_secret"])
               if pair[1].metadata.name != keep]
        secrets.delete(old, "password_secret")
        result["deleted"] = old
        result["changed"] = bool(old)
        result["summary"] = _deleted_summary(old, check_mode, "superseded versions")
    else:
        selector = f"{MANAGED_BY}=coderops.deploy,{RELEASE_LABEL}={params['release_name']}"
        found = sorted(s.metadata.name for s in secrets.listed(selector, "release_name"))
        secrets.delete(found, "release_name")
        result["deleted"] = found
        result["changed"] = bool(found)
        result["summary"] = _deleted_summary(found, check_mode, "Secrets")
    result["diff"] = secrets.diff
    return result
