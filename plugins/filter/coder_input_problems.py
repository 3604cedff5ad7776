# Copyright (c) 2026, coderops maintainers
# GNU General Public License v3.0+ (see LICENSE or https://www.gnu.org/licenses/gpl-3.0.txt)
# SPDX-License-Identifier: GPL-3.0-or-later

from __future__ import annotations

DOCUMENTATION = r"""
name: coder_input_problems
short_description: The bad inputs of a Coder deployment, named by playbook variable
version_added: 0.2.0
author: coderops maintainers (@coderops)
description:
  - Checks the roles' variables that need neither helm, the cluster nor the database - the
    database host, port and TLS files, the password rules, the release name and the timeouts - and
    returns one message per bad input, each naming the variable and the fix.
  - Only the keys given are checked. The roles' preflight runs it once, before anything else.
  - Never give it the password; give C(password_given) and C(password_padded) (booleans computed
    with C(no_log)).
options:
  _input:
    description:
      - The variables, keyed by name - C(coder_db_host), C(coder_db_port), C(coder_db_connector),
        C(coder_db_ssl_mode), C(coder_db_ssl_ca_file), C(coder_db_ssl_cert_file),
        C(coder_db_ssl_key_file), C(coder_release_name), C(coder_helm_timeout),
        C(helm_release_rollback_timeout), C(helm_release_progress_interval),
        C(helm_release_fail_fast_grace), C(helm_release_lock_ttl) - and the booleans
        C(password_given) and C(password_padded).
    type: dict
    required: true
seealso:
  - module: coderops.deploy.coder_values
"""

EXAMPLES = r"""
- name: Stop on bad input
  ansible.builtin.fail:
    msg: "{{ problems | join(' ') }} Nothing was changed."
  vars:
    problems: >-
      {{ {'coder_db_host': coder_db_host, 'coder_db_port': coder_db_port}
         | coderops.deploy.coder_input_problems }}
  when: problems | length > 0
"""

RETURN = r"""
_value:
  description: One message per bad input; empty when all are good.
  type: list
  elements: str
"""

from ansible.errors import AnsibleFilterError
from ansible_collections.coderops.deploy.plugins.module_utils._deploy_inputs import problems


def coder_input_problems(values):
    if not isinstance(values, dict):
        raise AnsibleFilterError("coderops.deploy.coder_input_problems: the input must be a dictionary")
    return problems(values)


class FilterModule:
    """coderops.deploy input rules filter."""

    def filters(self):
        return {"coder_input_problems": coder_input_problems}
