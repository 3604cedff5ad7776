# Copyright (c) 2026, coderops maintainers
# GNU General Public License v3.0+ (see LICENSE or https://www.gnu.org/licenses/gpl-3.0.txt)
# SPDX-License-Identifier: GPL-3.0-or-later

from __future__ import annotations

DOCUMENTATION = r"""
name: coder_upgrade_refusal
short_description: Why a Coder upgrade must not run (a downgrade, a skipped stepping stone), or nothing
version_added: 0.2.0
author: coderops maintainers (@coderops)
description:
  - Compares the Coder version that runs (the input) with the one a run would deploy (O(target)),
    and returns why that must not happen, or an empty string.
  - A downgrade is refused - Coder's migrations only go forward, and an older Coder does not start
    on the schema a newer one migrated.
  - So is an upgrade that skips a stepping stone of O(stones). The collection's stones are in
    C(roles/preflight/vars/stepping_stones.yml), with their sources.
  - Unknown versions (an empty input for a fresh install, an image tag such as C(latest)) are not
    refused.
options:
  _input:
    description: The running Coder version (C(2.30.0) or C(v2.30.0)); empty when none runs.
    type: str
    required: true
  target:
    description: The Coder version the run would deploy.
    type: str
    required: true
  generation:
    description: The chart generation; stones for the other one are skipped.
    type: str
    choices: [v1, v2]
    required: true
  stones:
    description:
      - The stepping stones. Each has C(from) and C(to) (version ranges such as C(>=2.26.0,<2.26.6))
        and C(via) (the version to go through first), or C(step=minor) with a C(from) range (one
        minor version at a time); optionally C(generation), C(reason) and C(source).
    type: list
    elements: dict
    default: []
seealso:
  - module: coderops.deploy.coder_helm_release_info
  - module: coderops.deploy.coder_values
"""

EXAMPLES = r"""
- name: Stop on a downgrade or a skipped stepping stone
  ansible.builtin.fail:
    msg: "{{ refusal }}"
  vars:
    refusal: >-
      {{ release_info.release.running_coder_version | default('', true)
         | coderops.deploy.coder_upgrade_refusal(values_result.coder_version.version | default('', true),
                                                 'v2', stones) }}
  when: refusal | length > 0
"""

RETURN = r"""
_value:
  description: Why the upgrade must not run, naming the variable to change; empty when it may.
  type: str
"""

from ansible.errors import AnsibleFilterError
from ansible_collections.coderops.deploy.plugins.module_utils._upgrade_path import StoneError, refusal

_NAME = "coderops.deploy.coder_upgrade_refusal"


def coder_upgrade_refusal(running, target, generation, stones=None):
    try:
        return refusal(running or "", target or "", generation, stones or [])
    except StoneError as exc:
        raise AnsibleFilterError(f"{_NAME}: {exc}; fix it in coder_extra_stepping_stones or"
                                 " roles/preflight/vars/stepping_stones.yml") from None


class FilterModule:
    """coderops.deploy upgrade path filter."""

    def filters(self):
        return {"coder_upgrade_refusal": coder_upgrade_refusal}
