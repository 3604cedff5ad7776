# Copyright (c) 2025, coderops maintainers
# GNU General Public License v3.0+ (see LICENSE or https://www.gnu.org/licenses/gpl-3.0.txt)
# SPDX-License-Identifier: GPL-3.0-or-later
"""The action plugin of coder_helm_release takes the connection options and their aliases."""

from __future__ import annotations

from ansible_collections.coderops.deploy.plugins.action.coder_helm_release import ActionModule
from ansible_collections.coderops.deploy.plugins.module_utils._kube import AUTH_ENV


def test_action_plugin_accepts_the_connection_options_and_their_aliases():
    assert set(AUTH_ENV) | {"verify_ssl", "ssl_ca_cert"} <= ActionModule._VALID_ARGS
    assert "no_such_option" not in ActionModule._VALID_ARGS
