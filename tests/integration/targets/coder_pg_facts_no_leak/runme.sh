#!/usr/bin/env bash
# Copyright (c) 2025, coderops maintainers
# GNU General Public License v3.0+ (see LICENSE or https://www.gnu.org/licenses/gpl-3.0.txt)
# SPDX-License-Identifier: GPL-3.0-or-later
#
# The canary password travels only through the environment (never a command line) and must show
# up nowhere: not in -vvvv output, --diff/--check output, ANSIBLE_LOG_PATH, the tree callback's
# files, the remote temp dir, files left in TMPDIR, nor any process's command line while the
# playbooks run. `set -x` stays off: it would print what this script handles.
set -eu

here="$(cd "$(dirname "$0")" && pwd)"
files="$here/../setup_coder_testbed/files"
python="${ANSIBLE_TEST_PYTHON_INTERPRETER:-python3}"
work="$(mktemp -d "${TMPDIR:-/tmp}/coderops-noleak-XXXXXX")"
trap 'rm -rf "$work"' EXIT

export CODER_TEST_LEAK_CANARY
CODER_TEST_LEAK_CANARY="$("$python" "$files/leak_scan.py" --make-canary)"
export TMPDIR="$work/tmp"
mkdir -p "$TMPDIR"
export ANSIBLE_LOG_PATH="$work/ansible.log"
export ANSIBLE_REMOTE_TMP="$work/remote-tmp"
export ANSIBLE_LOCAL_TEMP="$work/local-tmp"
export ANSIBLE_CALLBACKS_ENABLED="${ANSIBLE_CALLBACKS_ENABLED:+$ANSIBLE_CALLBACKS_ENABLED,}ansible.builtin.tree"
export ANSIBLE_CALLBACK_TREE_DIR="$work/tree"
export ANSIBLE_ROLES_PATH="$here/.."

# ansible-test gives a script target its inventory in $INVENTORY_PATH; the test bed's variables
# are in integration_config.yml two directories up (written by scripts/ansible-test.sh).
config="$here/../../integration_config.yml"
set -- -i "$INVENTORY_PATH" -e @"$config" "$@"
cfg() { "$python" -c 'import sys, yaml; print(yaml.safe_load(open(sys.argv[1]))[sys.argv[2]])' "$config" "$1"; }
main_host="$(cfg coder_test_pg_main_host)"
main_port="$(cfg coder_test_pg_main_port)"
main_ca="$(cfg coder_test_pg_main_sslrootcert)"

# Watch every process's command line while the playbooks run.
"$python" "$files/leak_scan.py" --watch-cmdlines "$work/cmdline-hits" --until "$work/stop-watch" &
watcher=$!
# Positive control: a process that does carry the canary on its command line. The watcher must
# see it, or its silence about the playbooks would prove nothing.
"$python" -c 'import time; time.sleep(2)' "$CODER_TEST_LEAK_CANARY" &
control=$!

rc=0
ansible-playbook "$here/setup.yml" "$@" >"$work/setup.out" 2>&1 || rc=$?
if [ "$rc" = 0 ]; then
    ansible-playbook "$here/leak.yml" -vvvv --diff "$@" >"$work/run.out" 2>&1 || rc=$?
    ansible-playbook "$here/leak.yml" -vvvv --diff --check "$@" >"$work/check.out" 2>&1 || rc=$?
    # As an AWX credential does it: the connection, password included, in the environment of
    # ansible-playbook itself (the local connection hands it down to the module).
    CODER_PG_PASSWORD="$CODER_TEST_LEAK_CANARY" \
    CODER_PG_HOST="$main_host" CODER_PG_PORT="$main_port" \
    CODER_PG_USER=coder_noleak_canary CODER_PG_DATABASE=postgres CODER_PG_SSLMODE=verify-full \
    CODER_PG_SSLROOTCERT="$main_ca" \
        ansible-playbook "$here/leak_env.yml" -vvvv --diff "$@" >"$work/env.out" 2>&1 || rc=$?
fi
ansible-playbook "$here/cleanup.yml" "$@" >"$work/cleanup.out" 2>&1 || rc=$?
wait "$control" || true
touch "$work/stop-watch"
wait "$watcher" || rc=$?

# Show the runs (they hold no password, which is what is checked next).
cat "$work"/*.out
if [ "$rc" != 0 ]; then
    echo "runme.sh: a playbook failed (exit $rc)" >&2
    exit "$rc"
fi

# The watcher saw the control process, and no other process, with the canary.
if ! grep -q "^$control plain$" "$work/cmdline-hits"; then
    echo "runme.sh: the command-line watcher missed its positive control; it proves nothing" >&2
    exit 1
fi
if grep -v "^$control " "$work/cmdline-hits"; then
    echo "runme.sh: the canary password was on the command line of the processes above" >&2
    exit 1
fi
rm -f "$work/cmdline-hits"

# Search everything that was written, in every form the password could take.
"$python" "$files/leak_scan.py" --scan "$work"
echo "runme.sh: no trace of the canary password in any output, log, file or command line"
