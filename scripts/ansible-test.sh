#!/usr/bin/env bash
# Run ansible-test on the collection.
#
#   scripts/ansible-test.sh sanity                  # --venv --python <the venv's> added when no environment option is given
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
# Environment: CODER_VENV (default .venv of the repository; .venv-oldest for ansible-core 2.19),
# CODER_BUILD_DIR (default build/).
# `make test` runs sanity and units per ansible-core version as nox sessions (noxfile.py); this script
# stays for integration against the test bed and for running one suite by hand.
set -euo pipefail

REPO="$(cd "$(dirname "${BASH_SOURCE[0]}")/.." && pwd)"
VENV="${CODER_VENV:-$REPO/.venv}"
BUILD_ROOT="${CODER_BUILD_DIR:-$REPO/build}"
COLLECTION="$BUILD_ROOT/ansible_collections/coderops/deploy"
# The virtualenv's Python: 3.12 for .venv (ansible-core 2.21), 3.11 for .venv-oldest (2.19).
PYTHON_VERSION="$("$VENV/bin/python" -c 'import sys; print("%d.%d" % sys.version_info[:2])' 2>/dev/null || echo 3.12)"

# Only these paths belong to the collection (testbed/, scripts/, .ci/ ... stay out: they are
# no collection content, and sanity would lint them as if they were).
# .ansible-lint and .yamllint come along so that linting the tree follows the repository's rules.
COLLECTION_PATHS=(galaxy.yml LICENSE README.md meta plugins roles playbooks changelogs docs
                  tests/unit tests/integration tests/sanity tests/charts tests/config.yml
                  .ansible-lint .yamllint)

die() { echo "ansible-test.sh: $*" >&2; exit 2; }

[ -x "$VENV/bin/ansible-test" ] || die "no ansible-test in $VENV; run 'make venv' first"

# ansible-test's pip bootstrap downloads get-pip-<pip version>.py from a site the build machines
# cannot reach; it first looks for a cached copy. Put one there (scripts/get_pip_offline.py) that
# bootstraps pip with the standard library's ensurepip and then installs what ansible-test asked for
# from the package index. ansible-core 2.19 asks for pip 24.2, 2.20 and 2.21 for pip 25.2.
install_pip_bootstrap() {
    local pip cache
    for pip in 24_2 25_2; do
        cache="$HOME/.ansible/test/cache/get_pip_$pip.py"
        [ -f "$cache" ] && continue
        mkdir -p "$(dirname "$cache")"
        cp "$REPO/scripts/get_pip_offline.py" "$cache.tmp.$$"
        mv "$cache.tmp.$$" "$cache"
        echo "ansible-test.sh: installed the offline pip bootstrap at $cache"
    done
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

# The virtualenv's python3.X comes first, so `--local --python 3.X` runs the tests with it
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
