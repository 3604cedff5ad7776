#!/usr/bin/env bash
# The AWX tests (tests/awx): the offline checks of playbooks/awx_configure.yml, its AWX definitions
# and execution-environment.yml, then the ansible-runner jobs against the local test bed (which
# must be up: `make testbed`). JUnit XML goes to ${JUNIT_DIR:-tests/output/junit}; the exit code is
# non-zero when a test failed. A progress line is printed at least every 30 s.
#
#   scripts/test-awx.sh              # everything
#   scripts/test-awx.sh static       # only the offline checks (no cluster; the test bed's helm binary, from make testbed)
set -uo pipefail
cd "$(dirname "$0")/.." || exit 1
REPO=$PWD
JUNIT_DIR=${JUNIT_DIR:-$REPO/tests/output/junit}
LOG_DIR=$REPO/tests/output/awx
mkdir -p "$JUNIT_DIR" "$LOG_DIR"
VENV=${CODER_VENV:-$REPO/.venv}
export PATH="$VENV/bin:$PATH"
what=${1:-all}

# Heartbeat: one line every 25 s while a test runs quietly (an ansible-runner job takes minutes).
start=$SECONDS
( while sleep 25; do echo "test-awx: still running ($((SECONDS - start)) s)"; done ) &
heartbeat=$!
trap 'kill "$heartbeat" 2>/dev/null' EXIT

rc=0
run_suite() {
  local name=$1; shift
  echo "==> test-awx: $name"
  "$VENV/bin/pytest" -p no:cacheprovider -v -o junit_family=xunit2 \
    --junitxml="$JUNIT_DIR/awx-$name.xml" --basetemp="$REPO/tests/output/awx/tmp-$name" "$@" \
    2>&1 | tee "$LOG_DIR/$name.log"
  local status=${PIPESTATUS[0]}
  echo "<== test-awx: $name: $([ "$status" -eq 0 ] && echo ok || echo "FAILED (exit $status)")"
  [ "$status" -eq 0 ] || rc=1
}

run_suite static tests/awx/test_awx_configure.py tests/awx/test_execution_environment.py
if [ "$what" != static ]; then
  run_suite runner tests/awx/test_runner.py
fi
echo "test-awx: done in $((SECONDS - start)) s, $([ "$rc" -eq 0 ] && echo passed || echo FAILED)"
exit "$rc"
