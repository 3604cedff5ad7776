# Copyright (c) 2025, coderops maintainers
# GNU General Public License v3.0+ (see LICENSE or https://www.gnu.org/licenses/gpl-3.0.txt)
# SPDX-License-Identifier: GPL-3.0-or-later

# Note that this doc fragment is **PRIVATE** to the collection. It can have breaking changes at any time.
# Do not use this from other collections or standalone plugins/modules!
#
# Paired, together with coderops.deploy._k8s_auth (the connection options), one-to-one with
# connection_argument_spec() in plugins/module_utils/_release_params.py; a unit test keeps them in step.

from __future__ import annotations


class ModuleDocFragment:
    DOCUMENTATION = r"""
options:
  name:
    description:
      - Name of the Helm release (at most 53 characters).
    type: str
    required: true
  namespace:
    description:
      - Namespace of the release.
    type: str
    required: true
  helm_binary:
    description:
      - The helm binary, helm 3 or helm 4; a bare name is looked up in E(PATH).
      - The flags that differ between the two majors are mapped (C(--wait) takes a strategy in helm 4).
    type: str
    default: helm
requirements:
  - helm 3 or helm 4
  - the Python library C(kubernetes) only for a kubeconfig user with an C(exec) plugin or an C(auth-provider)
    (the modules talk to the API server with Python's standard library)
  - PyYAML
"""
