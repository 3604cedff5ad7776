#!/usr/bin/env bash
# Run ansible-test on the collection.
#
#   scripts/ansible-test.sh sanity                  # --venv --python 3.11 added when no environment option is given
#   scripts/ansible-test.sh units
#   scripts/ansible-test.sh integration coder_pg_facts
#   scripts/ansible-test.sh --sync-only            # only refresh the scratch tree (prints its path)
#
# ansible-test wants the collection under ansible_collections/<namespace>/<name>/, so this
# script mirrors the repository's collection files (git-tracked plus untracked-but-not-ignored,
# collection paths only) into build/ansible_collections/coderops/deploy, runs the virtualenv's
# ansible-test there, and copies its tests/output/ back to tests/output/ansible-test/ (git-ignored).
#
# When the test bed's environment is loaded (. .testbed/env.sh), its CODER_TEST_* variables
# are written to tests/integration/integration_config.yml of the scratch tree: ansible-test
# passes only a few environment variables to the tests, but it always loads that file.
#
# Environment: CODER_VENV (default .venv of the repository), CODER_BUILD_DIR (default build/).
set -euo pipefail

REPO="$(cd "$(dirname "${BASH_SOURCE[0]}")/.." && pwd)"
VENV="${CODER_VENV:-$REPO/.venv}"
BUILD_ROOT="${CODER_BUILD_DIR:-$REPO/build}"
COLLECTION="$BUILD_ROOT/ansible_collections/coderops/deploy"
PYTHON_VERSION=3.11

# Only these paths belong to the collection (testbed/, scripts/, .ci/ ... stay out: they are
# no collection content, and sanity would lint them as if they were).
# .ansible-lint and .yamllint come along so that linting the tree follows the repository's rules.
COLLECTION_PATHS=(galaxy.yml LICENSE README.md meta plugins roles playbooks changelogs docs
                  tests/unit tests/integration tests/sanity tests/charts tests/config.yml
                  .ansible-lint .yamllint)

die() { echo "ansible-test.sh: $*" >&2; exit 2; }

[ -x "$VENV/bin/ansible-test" ] || die "no ansible-test in $VENV; run 'make venv' first"

# ansible-test's pip bootstrap downloads get-pip.py from a site the build machines cannot
# reach; it first looks for a cached copy. Put one there that bootstraps pip with the standard
# library's ensurepip and then installs what ansible-test asked for from the package index.
install_pip_bootstrap() {
    local cache="$HOME/.ansible/test/cache/get_pip_24_2.py"
    [ -f "$cache" ] && return 0
    mkdir -p "$(dirname "$cache")"
    cat >"$cache.tmp" <<'PY'
"""Offline stand-in for get-pip.py (written by coderops.deploy scripts/ansible-test.sh).

ansible-test runs this file as __main__ inside a new virtual environment with pip's arguments
in sys.argv, e.g. --disable-pip-version-check pip==24.2 --no-setuptools --no-wheel.
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
PY
    mv "$cache.tmp" "$cache"
    echo "ansible-test.sh: installed the offline pip bootstrap at $cache"
}

sync_collection() {
    rm -rf "$COLLECTION"
    mkdir -p "$COLLECTION"
    (cd "$REPO" && git ls-files -z --cached --others --exclude-standard -- "${COLLECTION_PATHS[@]}" \
        | while IFS= read -r -d '' f; do
            # playbooks/collections links the checkout to itself for ansible-playbook; not content.
            case "$f" in playbooks/collections/*|playbooks/collections) continue ;; esac
            [ -e "$f" ] && printf '%s\0' "$f"
          done \
        | tar --null -T - -cf -) | tar -C "$COLLECTION" -xf -
    # The scratch tree lies inside the repository's git work tree, where build/ is ignored, and
    # ansible-test lists content with git: give the tree a repository of its own.
    printf '/tests/output/\n' >"$COLLECTION/.gitignore"
    git -C "$COLLECTION" init -q
}

write_integration_config() {
    local cfg="$COLLECTION/tests/integration/integration_config.yml"
    [ -n "${CODER_TEST_PG_SERVERS:-}" ] || return 0
    mkdir -p "$(dirname "$cfg")"
    "$VENV/bin/python" - "$cfg" <<'PY'
import json
import os
import sys

# Paths, ports and names only: the password itself is never exported, only its file's path.
data = {k.lower(): v for k, v in sorted(os.environ.items())
        if k.startswith("CODER_TEST_") or k == "CODER_TESTBED_DIR"}
data["coder_test_pg_bin"] = os.environ.get("CODER_TEST_PG_BIN", "/usr/lib/postgresql/15/bin")
with open(sys.argv[1], "w") as fh:
    fh.write("# Written by scripts/ansible-test.sh from the test bed's env.sh.\n")
    fh.write(json.dumps(data, indent=2, sort_keys=True) + "\n")
PY
}

# Add the default environment when the caller gave none.
args=("$@")
has_env=0
for a in "$@"; do
    case "$a" in
        --local|--venv|--docker|--docker=*|--remote|--remote=*|--controller|--controller=*|--target|--target=*|--target-python|--target-python=*|--python-interpreter|--python-interpreter=*)
            has_env=1 ;;
    esac
done
if [ "$has_env" = 0 ] && [ "$#" -gt 0 ]; then
    case "$1" in
        sanity) args+=(--venv --python "$PYTHON_VERSION") ;;
        units|integration) args+=(--local --python "$PYTHON_VERSION") ;;
    esac
fi

if [ "${1:-}" = --sync-only ]; then
    sync_collection
    write_integration_config
    echo "$COLLECTION"
    exit 0
fi

install_pip_bootstrap
sync_collection
write_integration_config

# The virtualenv's python3.11 comes first, so `--local --python 3.11` runs the tests with it
# (psycopg2, boto3 and pytest are installed there).
export PATH="$VENV/bin:$PATH"
rc=0
(cd "$COLLECTION" && "$VENV/bin/ansible-test" "${args[@]}") || rc=$?

# ansible-test's results (junit/, bot/, coverage/, ...) go to tests/output/ansible-test/, apart
# from tests/output/junit/ where the repository's test runners collect one file per step.
if [ -d "$COLLECTION/tests/output" ]; then
    mkdir -p "$REPO/tests/output/ansible-test"
    (cd "$COLLECTION/tests/output" && tar --exclude ./.tmp -cf - .) | tar -C "$REPO/tests/output/ansible-test" -xf -
fi
exit "$rc"
