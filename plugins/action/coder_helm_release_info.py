# Copyright (c) 2026, coderops maintainers
# GNU General Public License v3.0+ (see LICENSE or https://www.gnu.org/licenses/gpl-3.0.txt)
# SPDX-License-Identifier: GPL-3.0-or-later

"""Action plugin of coderops.deploy.coder_helm_release_info: runs the module in the task's worker when it runs on
the controller with the controller's Python (plugin_utils/_module_here.py says why and when)."""

from __future__ import annotations

# Imported here, in the controller process where the strategy loads this plugin, so that every
# worker forked after that finds the module and its module_utils imported already (0.1 to 0.2 s a call).
import ansible_collections.coderops.deploy.plugins.modules.coder_helm_release_info  # noqa: F401  pylint: disable=unused-import
from ansible_collections.coderops.deploy.plugins.plugin_utils._module_here import ModuleHereAction


class ActionModule(ModuleHereAction):
    MODULE = "coderops.deploy.coder_helm_release_info"
