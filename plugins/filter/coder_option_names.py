# Copyright (c) 2025, coderops maintainers
# GNU General Public License v3.0+ (see LICENSE or https://www.gnu.org/licenses/gpl-3.0.txt)
# SPDX-License-Identifier: GPL-3.0-or-later

from __future__ import annotations

DOCUMENTATION = r"""
name: coder_option_names
short_description: Name the variables an operator sets, in a module's message
version_added: 0.1.0
author: coderops maintainers (@coderops)
description:
  - Replaces, in a message of one of the collection's modules, each module option it names by the
    variable that sets that option, so that a role's error tells the operator what to set
    (C(check coder_db_user), not C(check login_user)).
  - Only whole names are replaced (C(login_db) but not C(login_db_extra) or C(coder_login_db)), and
    only names with an underscore, because plain option names such as C(name), C(host) or
    C(kubeconfig) are also ordinary words of the message.
  - The collection's roles use it for the messages of M(coderops.deploy.coder_pg_facts),
    M(coderops.deploy.coder_helm_release_info) and M(coderops.deploy.coder_values).
options:
  _input:
    description: The message.
    type: str
    required: true
  names:
    description: "Which variable sets which option, as C(option: variable)."
    type: dict
    required: true
seealso:
  - module: coderops.deploy.coder_pg_facts
  - module: coderops.deploy.coder_values
"""

EXAMPLES = r"""
- name: Stop with the module's message, in the playbook's words
  ansible.builtin.fail:
    msg: >-
      {{ pg.msg | coderops.deploy.coder_option_names({'login_user': 'coder_db_user',
                                                      'login_password': 'coder_db_password'}) }}
  when: pg.failed | default(false)
"""

RETURN = r"""
_value:
  description: The message, with the options renamed.
  type: str
"""

import re

from ansible.errors import AnsibleFilterError

_NAME = "coderops.deploy.coder_option_names"


def coder_option_names(message, names):
    if not isinstance(names, dict):
        raise AnsibleFilterError(f"{_NAME}: names must be a dictionary of option: variable, not"
                                 f" {type(names).__name__}")
    renames = {str(option): str(variable) for option, variable in names.items() if "_" in str(option)}
    if not renames:
        return str(message)
    # Longest first, so that a name that contains another is replaced whole.
    pattern = re.compile(r"(?<!\w)(" + "|".join(re.escape(o) for o in sorted(renames, key=len, reverse=True))
                         + r")(?!\w)")
    return pattern.sub(lambda m: renames[m.group(1)], str(message))


class FilterModule:
    """coderops.deploy message filter."""

    def filters(self):
        return {"coder_option_names": coder_option_names}
