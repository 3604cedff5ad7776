# Copyright (c) 2025, coderops maintainers
# GNU General Public License v3.0+ (see LICENSE or https://www.gnu.org/licenses/gpl-3.0.txt)
# SPDX-License-Identifier: GPL-3.0-or-later
"""Run a playbook through ansible-runner, the way AWX does (job events in artifacts/).

    python runner_run.py < {"private_data_dir": ..., "playbook": ..., "inventory": ...,
                            "extravars": {...}, "verbosity": 4}

The environment is passed through; no secret is on the command line or in the JSON.
"""

from __future__ import annotations

import json
import os
import sys

import ansible_runner


def main():
    spec = json.load(sys.stdin)
    result = ansible_runner.run(private_data_dir=spec["private_data_dir"], playbook=spec["playbook"],
                                inventory=spec["inventory"], extravars=spec.get("extravars") or {},
                                verbosity=spec.get("verbosity", 0), envvars=dict(os.environ),
                                quiet=True)
    print(json.dumps({"status": result.status, "rc": result.rc}))
    return 0


if __name__ == "__main__":
    sys.exit(main())
