# Copyright (c) 2025, coderops maintainers
# GNU General Public License v3.0+ (see LICENSE or https://www.gnu.org/licenses/gpl-3.0.txt)
# SPDX-License-Identifier: GPL-3.0-or-later
"""The connection options of coder_helm_release(_info): kubernetes.core's options and K8S_AUTH_*
variables, how helm and the API client get them, and that the token never reaches helm's command
line (unit tests: a stand-in helm script records its arguments and environment)."""

from __future__ import annotations

import os
import stat
import textwrap

import pytest
import yaml
from ansible_collections.coderops.deploy.plugins.module_utils import _helm_cli as cli
from ansible_collections.coderops.deploy.plugins.module_utils import _kube as kube
from ansible_collections.coderops.deploy.plugins.module_utils._release_params import (
    connection_argument_spec,
    release_argument_spec,
)

TOKEN = "eyJhbGciOiJSUzI1NiJ9.c2VjcmV0LXRva2Vu.sig-" + "x" * 20

# kubernetes.core's names (doc fragments k8s_auth_options and helm_common_options).
KUBERNETES_CORE = {
    "kubeconfig": "K8S_AUTH_KUBECONFIG", "context": "K8S_AUTH_CONTEXT", "host": "K8S_AUTH_HOST",
    "api_key": "K8S_AUTH_API_KEY", "validate_certs": "K8S_AUTH_VERIFY_SSL", "ca_cert": "K8S_AUTH_SSL_CA_CERT",
}


def _fragment():
    from ansible_collections.coderops.deploy.plugins.doc_fragments._k8s_auth import ModuleDocFragment

    return yaml.safe_load(ModuleDocFragment.DOCUMENTATION)


# -- the spec and its documentation ---------------------------------------------------------------

def test_spec_uses_kubernetes_core_names_and_variables():
    spec = kube.auth_argument_spec()
    assert kube.AUTH_ENV == KUBERNETES_CORE
    for option, var in KUBERNETES_CORE.items():
        assert spec[option]["fallback"][1] == [var], option
    assert spec["api_key"]["no_log"] is True
    assert spec["validate_certs"]["aliases"] == ["verify_ssl"]
    assert spec["ca_cert"]["aliases"] == ["ssl_ca_cert"]
    # The spec both modules take holds them.
    assert set(KUBERNETES_CORE) <= set(connection_argument_spec()) <= set(release_argument_spec())


def test_doc_fragment_matches_the_spec():
    docs = _fragment()
    spec = kube.auth_argument_spec()
    assert set(docs["options"]) == set(spec)
    notes = " ".join(docs["notes"])
    for name, option in spec.items():
        doc = docs["options"][name]
        assert doc.get("type", "str") == option.get("type", "str"), name
        assert doc.get("default") == option.get("default"), name
        assert doc.get("aliases", []) == option.get("aliases", []), name
        var = option["fallback"][1][0]
        assert f"E({var})" in " ".join(doc["description"]), name
        assert f"E({var})" in notes, name


def test_spec_is_a_fresh_copy():
    a = kube.auth_argument_spec()
    a["host"]["fallback"][1].append("X")
    assert kube.auth_argument_spec()["host"]["fallback"][1] == ["K8S_AUTH_HOST"]


# -- resolving the options ------------------------------------------------------------------------

def test_options_win_then_the_variables_and_empty_is_unset(tmp_path):
    env = {"K8S_AUTH_HOST": "https://from-env:6443/", "K8S_AUTH_API_KEY": TOKEN, "K8S_AUTH_CONTEXT": "",
           "K8S_AUTH_VERIFY_SSL": "False", "K8S_AUTH_KUBECONFIG": "  "}
    auth = kube.KubeAuth({"host": None, "context": None}, env)
    assert auth.host == "https://from-env:6443"  # the trailing slash goes, as in kubernetes.core
    assert auth.api_key == TOKEN and auth.validate_certs is False
    assert auth.context is None and auth.kubeconfig is None  # AWX injects empty variables too
    assert auth.token_only
    auth = kube.KubeAuth({"host": "https://option:6443", "api_key": "", "validate_certs": True}, env)
    assert auth.host == "https://option:6443" and auth.api_key == TOKEN and auth.validate_certs is True


@pytest.mark.parametrize("value,expected", [("True", True), ("true", True), ("1", True), ("yes", True),
                                            ("False", False), ("false", False), ("0", False), ("no", False)])
def test_verify_ssl_variable(value, expected):
    assert kube.KubeAuth({}, {"K8S_AUTH_VERIFY_SSL": value}).validate_certs is expected


def test_verify_ssl_garbage_names_the_option():
    with pytest.raises(kube.KubeError) as exc:
        kube.KubeAuth({}, {"K8S_AUTH_VERIFY_SSL": "perhaps"})
    assert exc.value.field == "validate_certs" and "K8S_AUTH_VERIFY_SSL" in exc.value.message


def test_repr_never_shows_the_token():
    auth = kube.KubeAuth({"host": "https://h", "api_key": TOKEN}, {})
    assert TOKEN not in repr(auth) and TOKEN not in str(auth) and "<set>" in repr(auth)


@pytest.mark.parametrize("params,field", [
    ({"host": "api.example.com:6443", "api_key": TOKEN}, "host"),
    ({"host": "https://h", "api_key": TOKEN, "ca_cert": "/nonexistent/ca.crt"}, "ca_cert"),
    ({"kubeconfig": "/nonexistent/kubeconfig"}, "kubeconfig"),
    ({"host": "https://h"}, "kubeconfig"),  # a host alone still needs a kubeconfig for the user
])
def test_bad_input_names_the_option(params, field, tmp_path):
    with pytest.raises(kube.KubeError) as exc:
        kube.KubeAuth(params, {"HOME": str(tmp_path), "KUBECONFIG": str(tmp_path / "missing")}).check()
    assert exc.value.field == field
    assert TOKEN not in exc.value.message


def test_host_and_token_read_no_kubeconfig(tmp_path):
    ca = tmp_path / "ca.crt"
    ca.write_text("-----BEGIN CERTIFICATE-----\n")
    auth = kube.KubeAuth({}, {"K8S_AUTH_HOST": "https://h:6443", "K8S_AUTH_API_KEY": TOKEN,
                              "K8S_AUTH_SSL_CA_CERT": str(ca), "K8S_AUTH_VERIFY_SSL": "True",
                              "KUBECONFIG": str(tmp_path / "missing")})
    assert auth.check() is None  # no kubeconfig needed, none looked for
    assert auth.helm_flags() == []
    assert auth.helm_env() == {"KUBECONFIG": os.devnull, "HELM_KUBEAPISERVER": "https://h:6443",
                               "HELM_KUBETOKEN": TOKEN, "HELM_KUBECAFILE": str(ca),
                               "HELM_KUBEINSECURE_SKIP_TLS_VERIFY": "false"}


def test_no_tls_check_means_no_ca_file_for_helm(tmp_path):
    auth = kube.KubeAuth({"host": "https://h", "api_key": TOKEN, "validate_certs": False,
                          "ca_cert": str(tmp_path)}, {})
    env = auth.helm_env()
    assert env["HELM_KUBEINSECURE_SKIP_TLS_VERIFY"] == "true" and "HELM_KUBECAFILE" not in env


def test_kubeconfig_and_context_are_flags_and_nothing_else_is_set(tmp_path):
    kc = tmp_path / "kc"
    kc.write_text("apiVersion: v1\n")
    auth = kube.KubeAuth({}, {"K8S_AUTH_KUBECONFIG": str(kc), "K8S_AUTH_CONTEXT": "prod"})
    assert auth.check() == str(kc)
    assert auth.helm_flags() == ["--kubeconfig", str(kc), "--kube-context", "prod"]
    assert auth.helm_env() == {}


# -- the API client -------------------------------------------------------------------------------

KUBECONFIG = textwrap.dedent("""\
    apiVersion: v1
    kind: Config
    clusters:
    - name: c
      cluster: {server: "https://from-kubeconfig:6443", insecure-skip-tls-verify: true}
    users:
    - name: u
      user: {token: kubeconfig-token}
    contexts:
    - name: ctx
      context: {cluster: c, user: u}
    current-context: ctx
    """)


def test_client_with_host_and_token_only(tmp_path):
    ca = tmp_path / "ca.crt"
    ca.write_text("x")
    conn = kube.KubeAuth({"host": "https://h:6443/", "api_key": TOKEN, "ca_cert": str(ca)},
                         {"KUBECONFIG": str(tmp_path / "missing")}).connection()
    assert conn.host == "https://h:6443"
    assert conn.bearer_token() == TOKEN and TOKEN not in repr(conn)
    assert conn.verify is True and conn.ca_file == str(ca)


def test_client_options_override_the_kubeconfig(tmp_path):
    kc = tmp_path / "kc"
    kc.write_text(KUBECONFIG)
    conn = kube.KubeAuth({"kubeconfig": str(kc)}, {}).connection()
    assert conn.host == "https://from-kubeconfig:6443" and conn.verify is False
    assert conn.bearer_token() == "kubeconfig-token"
    conn = kube.KubeAuth({"kubeconfig": str(kc), "api_key": TOKEN, "validate_certs": True}, {}).connection()
    assert conn.host == "https://from-kubeconfig:6443" and conn.verify is True
    assert conn.bearer_token() == TOKEN


def test_unknown_context_names_the_option(tmp_path):
    kc = tmp_path / "kc"
    kc.write_text(KUBECONFIG)
    with pytest.raises(kube.KubeError) as exc:
        kube.KubeAuth({"kubeconfig": str(kc), "context": "nope"}, {}).connection()
    assert exc.value.field == "context" and "(it has: ctx)" in exc.value.message


def test_garbage_kubeconfig_is_named_without_its_content(tmp_path):
    kc = tmp_path / "kc"
    kc.write_bytes(b"\x00\x01 token: s3cr3t-in-garbage [")
    with pytest.raises(kube.KubeError) as exc:
        kube.KubeAuth({"kubeconfig": str(kc)}, {}).connection()
    assert exc.value.field == "kubeconfig" and "is not a kubeconfig file" in exc.value.message
    assert "s3cr3t" not in exc.value.message


# -- helm -----------------------------------------------------------------------------------------

def _fake_helm(tmp_path, version="v3.17.2+gcc0bbbd"):
    """A helm that prints its version and records its arguments and the HELM_*/KUBECONFIG environment."""
    log = tmp_path / "calls.log"
    script = tmp_path / "helm"
    script.write_text(textwrap.dedent(f"""\
        #!/bin/sh
        printf 'ARGS %s\\n' "$*" >> {log}
        env | grep -E '^(HELM_KUBE|KUBECONFIG=)' | sort | sed 's/^/ENV /' >> {log}
        echo {version}
        """))
    script.chmod(script.stat().st_mode | stat.S_IXUSR)
    return script, log


def test_helm_gets_the_token_in_its_environment_never_as_an_argument(tmp_path):
    script, log = _fake_helm(tmp_path)
    ca = tmp_path / "ca.crt"
    ca.write_text("x")
    work = tmp_path / "work"
    work.mkdir()
    env = {"PATH": os.environ["PATH"], "TMPDIR": str(work), "K8S_AUTH_HOST": "https://h:6443",
           "K8S_AUTH_API_KEY": TOKEN, "K8S_AUTH_SSL_CA_CERT": str(ca), "K8S_AUTH_VERIFY_SSL": "True"}
    helm = cli.Helm(str(script), env=env, auth=kube.KubeAuth({}, env))
    helm.run(["list"], namespace="coder")
    cmd = helm.deploy_command("upgrade", "coder", "coder", "coder/coder", "/v.json", 60)
    helm.start(cmd).finish()
    helm.run_command(helm.rollback_command("coder", "coder", 1, 60), 60)
    calls = log.read_text()
    args = [line for line in calls.splitlines() if line.startswith("ARGS ")]
    assert len(args) == 4 and all(TOKEN not in a for a in args), args
    assert "--kubeconfig" not in calls and "--kube-context" not in calls
    assert calls.count(f"ENV HELM_KUBETOKEN={TOKEN}") == 4
    assert calls.count("ENV HELM_KUBEAPISERVER=https://h:6443") == 4
    assert calls.count(f"ENV HELM_KUBECAFILE={ca}") == 4 and calls.count(f"ENV KUBECONFIG={os.devnull}") == 4
    # No file holds the token (helm gets no kubeconfig written for it).
    assert not list(work.iterdir())
    assert TOKEN not in " ".join(helm.deploy_command("install", "coder", "coder", "c", "/v", 1))
    # The caller's environment is not changed.
    assert "HELM_KUBETOKEN" not in env


def test_helm_with_a_kubeconfig_gets_flags(tmp_path):
    script, log = _fake_helm(tmp_path)
    kc = tmp_path / "kc"
    kc.write_text(KUBECONFIG)
    env = {"PATH": os.environ["PATH"]}
    helm = cli.Helm(str(script), env=env, auth=kube.KubeAuth({"kubeconfig": str(kc), "context": "ctx"}, env))
    helm.run(["list"])
    calls = log.read_text()
    assert f"--kubeconfig {kc} --kube-context ctx" in calls and "HELM_KUBETOKEN" not in calls


@pytest.mark.parametrize("version,params,field", [
    ("v3.4.2", {"ca_cert": "CA"}, "ca_cert"),
    ("v3.9.4", {"validate_certs": False}, "validate_certs"),
])
def test_old_helm_is_refused_for_what_it_cannot_read(tmp_path, version, params, field):
    script = _fake_helm(tmp_path, version)[0]
    ca = tmp_path / "ca.crt"
    ca.write_text("x")
    params = {k: (str(ca) if v == "CA" else v) for k, v in params.items()}
    params.update(host="https://h", api_key=TOKEN)
    with pytest.raises(cli.HelmError) as exc:
        cli.Helm(str(script), env={"PATH": os.environ["PATH"]}, auth=kube.KubeAuth(params, {}))
    assert exc.value.field == field and TOKEN not in exc.value.message


def test_helm_refuses_bad_auth_before_running(tmp_path):
    script, log = _fake_helm(tmp_path)
    with pytest.raises(cli.HelmError) as exc:
        cli.Helm(str(script), env={"PATH": os.environ["PATH"]},
                 auth=kube.KubeAuth({"host": "ftp://h", "api_key": TOKEN}, {}))
    assert exc.value.field == "host"
    assert not log.exists()
