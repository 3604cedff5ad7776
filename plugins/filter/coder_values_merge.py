# Copyright (c) 2025, coderops maintainers
# GNU General Public License v3.0+ (see LICENSE or https://www.gnu.org/licenses/gpl-3.0.txt)
# SPDX-License-Identifier: GPL-3.0-or-later

from __future__ import annotations

DOCUMENTATION = r"""
name: coder_values_merge
short_description: Merge Helm values the way Helm merges values files
version_added: 0.1.0
author: coderops maintainers (@coderops)
description:
  - Merges one or more dictionaries of Helm values into the input, left to right, exactly like
    C(helm -f a.yaml -f b.yaml) merges values files.
  - When both sides hold a dictionary under a key, they are merged recursively. Anything else on
    the right (a list, a scalar, or null) replaces the left; lists are never concatenated.
  - A null is kept, so that Helm then removes that key together with its chart default.
  - This is the merge M(coderops.deploy.coder_values) applies to its
    O(coderops.deploy.coder_values#module:values_overrides).
    It gives the same result as P(ansible.builtin.combine#filter) with C(recursive=true) and
    C(list_merge=replace), and refuses anything but dictionaries with an error naming the argument.
  - The inputs are not changed; the result shares no structure with them.
options:
  _input:
    description: The base values.
    type: dict
    required: true
  _overrides:
    description: The values to merge in, in order; the last wins.
    type: list
    elements: dict
    required: true
seealso:
  - module: coderops.deploy.coder_values
"""

EXAMPLES = r"""
- name: Add resource requests to generated values
  ansible.builtin.set_fact:
    coder_final_values: >-
      {{ coder_values['values'] | coderops.deploy.coder_values_merge(
           {'coderd': {'resources': {'requests': {'cpu': '1'}}}},
           {'coderd': {'serviceSpec': {'loadBalancerIP': none}}}) }}
"""

RETURN = r"""
_value:
  description: The merged values.
  type: dict
"""

from ansible.errors import AnsibleFilterError
from ansible_collections.coderops.deploy.plugins.module_utils._helm_values import (
    MergeError,
    helm_merge,
)

_NAME = "coderops.deploy.coder_values_merge"


def coder_values_merge(base, *overrides):
    if not overrides:
        raise AnsibleFilterError(f"{_NAME}: give at least one dictionary of values to merge into"
                                 f" the input")
    names = ["the input"] + [f"argument {i}" for i in range(1, len(overrides) + 1)]
    try:
        return helm_merge(base, *overrides, names=names)
    except MergeError as exc:
        raise AnsibleFilterError(f"{_NAME}: {exc}") from None


class FilterModule:
    """coderops.deploy Helm values merge filter."""

    def filters(self):
        return {"coder_values_merge": coder_values_merge}
