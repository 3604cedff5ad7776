"""Offline stand-in for ansible-test's get-pip.py bootstrap script.

ansible-test (2.19: pip 24.2, 2.20 and 2.21: pip 25.2) downloads get-pip-<pip version>.py from a
site the build machines cannot reach, unless ~/.ansible/test/cache/get_pip_<pip_version>.py exists
(dots as underscores). noxfile.py and scripts/ansible-test.sh copy this file there under both names.

ansible-test runs it as __main__ inside a new virtual environment with pip's arguments in sys.argv,
e.g. --disable-pip-version-check pip==25.2 --no-setuptools --no-wheel. It bootstraps pip with the
standard library's ensurepip, then installs what ansible-test asked for from the package index.
"""

import ensurepip
import os
import subprocess
import sys


def main():
    ensurepip.bootstrap(upgrade=True)
    # ensurepip sets PIP_CONFIG_FILE=/dev/null in this process, which would hide the machine's
    # pip settings (its CA bundle, its index) from the install below.
    os.environ.pop("PIP_CONFIG_FILE", None)
    args = [a for a in sys.argv[1:] if a not in ("--no-setuptools", "--no-wheel")]
    subprocess.check_call([sys.executable, "-m", "pip", "install"] + args)


if __name__ == "__main__":
    main()
