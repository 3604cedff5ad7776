#!/usr/bin/python
# Copyright (c) 2025, coderops maintainers
# GNU General Public License v3.0+ (see LICENSE or https://www.gnu.org/licenses/gpl-3.0.txt)
# SPDX-License-Identifier: GPL-3.0-or-later

from __future__ import annotations

DOCUMENTATION = r"""
module: coder_helm_release_info
short_description: Check helm, the kubeconfig and the chart, and read a Helm release's state
version_added: 0.1.0
description:
  - The read-only checks to run before a Coder deployment changes anything - that the helm binary
    works (and whether it is helm 3 or 4), that the kubeconfig reaches the API server, that the
    chart and its version exist, and what state the release is in - its newest revision and
    status, the deployed and last good revisions, whether it is stuck C(pending-*), and whether a
    coderops run holds its Lease right now.
  - Each failure names the option at fault in RV(field).
  - "Written because M(kubernetes.core.helm_info) reports the current status only: not the
    history, the last good revision, the Lease of a running operation, nor whether the chart
    version exists."
author:
  - coderops maintainers (@coderops)
extends_documentation_fragment:
  - coderops.deploy._helm
  - coderops.deploy._k8s_auth
  - coderops.deploy._attributes
  - coderops.deploy._attributes.info_module
options:
  chart_ref:
    description:
      - The chart to check, as M(coderops.deploy.coder_helm_release) takes it. Not checked when not set.
    type: str
  chart_repo_url:
    description:
      - URL of the chart repository (C(helm --repo)).
    type: str
  chart_version:
    description:
      - The chart version that must exist; the newest when not set.
    type: str
seealso:
  - module: coderops.deploy.coder_helm_release
"""

EXAMPLES = r"""
- name: Check helm, the cluster and the chart; read the release's state
  coderops.deploy.coder_helm_release_info:
    name: coder
    namespace: coder
    chart_ref: coder/coder
    chart_repo_url: https://helm.coder.com
    chart_version: 1.44.0
  register: coder_release_info

- name: Stop when the release is stuck
  ansible.builtin.fail:
    msg: "release is {{ coder_release_info.release.status }}"
  when: coder_release_info.release.pending and not coder_release_info.lock.held
"""

RETURN = r"""
helm:
  description: The helm binary.
  returned: success
  type: dict
  contains:
    path:
      description: Its full path.
      type: str
      sample: /usr/local/bin/helm
    version:
      description: Its version.
      type: str
      sample: 3.17.2
    major:
      description: 3 or 4.
      type: int
      sample: 3
kubernetes:
  description: The cluster.
  returned: success
  type: dict
  contains:
    server_version:
      description: The API server's version.
      type: str
      sample: v1.34.4
    namespace_exists:
      description: Whether the namespace exists (V(true) when the user may not read namespaces).
      type: bool
chart:
  description: The chart's name, version and app_version; V(null) without O(chart_ref).
  returned: success
  type: dict
  sample: {"name": "coder", "version": "1.44.0", "app_version": "1.44.0"}
release:
  description: The release's state.
  returned: success
  type: dict
  contains:
    exists:
      description: Whether helm knows the release.
      type: bool
    status:
      description: Status of the newest revision (V(deployed), V(failed), V(pending-upgrade) ...).
      type: str
    revision:
      description: The newest revision.
      type: int
    chart:
      description: Chart of the newest revision.
      type: str
    pending:
      description: Whether the newest revision is C(pending-install), C(pending-upgrade) or C(pending-rollback).
      type: bool
    deployed_revision:
      description: The newest C(deployed) revision.
      type: int
    deployed_app_version:
      description: The chart C(appVersion) of the newest C(deployed) revision, the Coder version it runs.
      type: str
      sample: 2.30.0
    running_coder_version:
      description:
        - The Coder version that runs now, read from the image tag of Coder's container (C(coder) in
          the v2 chart, C(coderd) in v1) in the release's Deployment; an image tag set in the values
          counts, unlike RV(release.deployed_app_version). After a failed upgrade it is the failed
          version, whose migrations may have run. Without that container, RV(release.deployed_app_version).
        - V(null) when the release does not exist, or the tag is not a version (C(latest), a digest).
      type: str
      sample: 2.30.0
      version_added: 0.2.0
    last_good_revision:
      description: The newest C(deployed) or C(superseded) revision, where a rollback goes.
      type: int
    history:
      description:
        - The last 10 revisions - revision, status, chart, app_version (the chart's appVersion),
          updated, description.
      type: list
      elements: dict
lock:
  description: The release's Lease, held by a coderops run while it changes the release.
  returned: success
  type: dict
  contains:
    held:
      description: Whether a run holds it now (present and not expired).
      type: bool
    holder:
      description: Who holds (or last held) it.
      type: str
    renewed:
      description: When it was last renewed.
      type: str
    operation:
      description: What the holder does.
      type: str
    expired:
      description: Whether its holder stopped renewing it.
      type: bool
reason:
  description: V(invalid_options) or V(error).
  returned: failure
  type: str
field:
  description: The option at fault.
  returned: failure, when one is to blame
  type: str
  sample: helm_binary
"""

from ansible.module_utils.basic import AnsibleModule
from ansible_collections.coderops.deploy.plugins.module_utils._helm_cli import HelmError
from ansible_collections.coderops.deploy.plugins.module_utils._helm_release import InputError, release_info
from ansible_collections.coderops.deploy.plugins.module_utils._kube import KubeError
from ansible_collections.coderops.deploy.plugins.module_utils._release_params import connection_argument_spec


def main():
    argument_spec = connection_argument_spec()
    argument_spec.update(
        chart_ref={"type": "str"},
        chart_repo_url={"type": "str"},
        chart_version={"type": "str"},
    )
    module = AnsibleModule(argument_spec=argument_spec, supports_check_mode=True)
    try:
        info = release_info(module.params)
    except InputError as exc:
        module.fail_json(msg=exc.message, field=exc.field, reason="invalid_options")
    except (HelmError, KubeError) as exc:
        module.fail_json(msg=exc.message, field=exc.field, reason="error")
    module.exit_json(changed=False, **info)


if __name__ == "__main__":
    main()
