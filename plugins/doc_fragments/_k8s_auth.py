# Copyright (c) 2025, coderops maintainers
# GNU General Public License v3.0+ (see LICENSE or https://www.gnu.org/licenses/gpl-3.0.txt)
# SPDX-License-Identifier: GPL-3.0-or-later

# Note that this doc fragment is **PRIVATE** to the collection. It can have breaking changes at any time.
# Do not use this from other collections or standalone plugins/modules!
#
# Paired one-to-one with auth_argument_spec() in plugins/module_utils/_kube.py; a unit test keeps
# the two in step. The options and their environment variables are kubernetes.core's (its
# k8s_auth_options and helm doc fragments), so that one AWX credential serves both collections.

from __future__ import annotations


class ModuleDocFragment:
    DOCUMENTATION = r"""
options:
  kubeconfig:
    description:
      - Path of the kubeconfig file for helm and the Kubernetes API client.
      - When not set, E(K8S_AUTH_KUBECONFIG) (what a kubeconfig credential of AWX injects), then
        E(KUBECONFIG), then C(~/.kube/config). The file must exist and be readable.
      - Not read when O(host) and O(api_key) are both set (as with kubernetes.core).
    type: path
  context:
    description:
      - Context of the kubeconfig to use; its current context when not set.
      - Can also be specified via the E(K8S_AUTH_CONTEXT) environment variable.
    type: str
  host:
    description:
      - URL of the API server, for example V(https://api.example.com:6443).
      - Can also be specified via the E(K8S_AUTH_HOST) environment variable (AWX's
        C(OpenShift or Kubernetes API Bearer Token) credential injects it).
      - With O(api_key), the whole connection is O(host), O(api_key), O(ca_cert) and
        O(validate_certs), and no kubeconfig is read. Without it, overrides the kubeconfig's server.
      - Given to helm as E(HELM_KUBEAPISERVER).
    type: str
  api_key:
    description:
      - Bearer token used to authenticate with the API server, for example a ServiceAccount token.
      - Can also be specified via the E(K8S_AUTH_API_KEY) environment variable (the bearer-token
        credential of AWX injects it).
      - Given to helm as E(HELM_KUBETOKEN) in its environment, never on its command line nor in a
        file; never printed or returned.
    type: str
  validate_certs:
    description:
      - Whether to verify the API server's TLS certificate. When not set, what the kubeconfig says
        (verified unless it has C(insecure-skip-tls-verify)).
      - Can also be specified via the E(K8S_AUTH_VERIFY_SSL) environment variable.
      - V(false) is given to helm as E(HELM_KUBEINSECURE_SKIP_TLS_VERIFY) (helm 3.10 or newer).
    type: bool
    aliases: [verify_ssl]
  ca_cert:
    description:
      - Path of the CA certificate that signed the API server's certificate (the full chain).
      - Can also be specified via the E(K8S_AUTH_SSL_CA_CERT) environment variable (the
        bearer-token credential of AWX writes it to a file and injects its path).
      - Given to helm as E(HELM_KUBECAFILE) (helm 3.5 or newer). The file must exist and be readable.
    type: path
    aliases: [ssl_ca_cert]
notes:
  - "The connection options are those of kubernetes.core, with the same environment variables
    (E(K8S_AUTH_KUBECONFIG), E(K8S_AUTH_CONTEXT), E(K8S_AUTH_HOST), E(K8S_AUTH_API_KEY),
    E(K8S_AUTH_VERIFY_SSL), E(K8S_AUTH_SSL_CA_CERT)): an option set in the task wins, then its
    variable. An empty value counts as not set."
"""
