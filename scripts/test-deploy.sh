#!/usr/bin/env bash
# The tests of issue 4 (deploy_coder.yml, the roles, coder_helm_release), against the running
# test bed (`make testbed`), with helm 3 and helm 4:
#
#   argspecs      roles' meta/argument_specs.yml in step with defaults/main.yml (tests/roles)
#   units         the pure parts of coder_helm_release (tests/unit/.../test_helm_release.py)
#   integration   tests/integration/targets/deploy_coder/tests: real helm, the kwok cluster, the
#                 test bed's PostgreSQL; installs, re-runs, upgrades, every Helm upgrade fault,
#                 bad input, no password leak
#
#   scripts/test-deploy.sh                 everything
#   scripts/test-deploy.sh -k crashloop    extra arguments go to the integration pytest run
#
# The tests marked @pytest.mark.reliability carry their row of docs/reliability.md in the JUnit XML:
# scripts/test-reliability.sh (make test-reliability) reuses deploy-integration.xml instead of
# running them again.
# JUnit XML goes to ${JUNIT_DIR:-tests/output/junit}/deploy-<step>.xml, playbook logs to
# tests/output/deploy_coder/, measured durations to tests/output/deploy_coder/measurements.jsonl.
# pytest prints a line per test and, while one runs, this prints "still running ..." every 20 s. Exits
# non-zero when any step failed (all steps run).
set -uo pipefail

REPO="$(cd "$(dirname "${BASH_SOURCE[0]}")/.." && pwd)"
cd "$REPO" || exit 2
VENV="${CODER_VENV:-$REPO/.venv}"
JUNIT_DIR="${JUNIT_DIR:-$REPO/tests/output/junit}"
STATE="${CODER_TESTBED_STATE:-$REPO/.testbed}"
mkdir -p "$JUNIT_DIR"
export PATH="$VENV/bin:$PATH"

if [ ! -f "$STATE/env.sh" ]; then
    echo "test-deploy.sh: the test bed is not up ($STATE/env.sh is missing); run 'make testbed'" >&2
    exit 2
fi
# shellcheck disable=SC1091
. "$STATE/env.sh"

failed=0
run_step() {
    local name=$1; shift
    local start=$SECONDS
    echo "==> deploy-$name"
    "$@"
    local rc=$?
    echo "<== deploy-$name: $([ "$rc" -eq 0 ] && echo ok || echo "FAILED (exit $rc)") in $((SECONDS - start)) s"
    [ "$rc" -eq 0 ] || failed=$((failed + 1))
}

run_step argspecs "$VENV/bin/pytest" -p no:cacheprovider -q tests/roles \
    --junitxml="$JUNIT_DIR/deploy-argspecs.xml" -o junit_suite_name=deploy-argspecs
run_step units env PYTHONPATH="$REPO/playbooks/collections" "$VENV/bin/pytest" -p no:cacheprovider -q \
    tests/unit/plugins/module_utils/test_helm_release.py \
    --junitxml="$JUNIT_DIR/deploy-units.xml" -o junit_suite_name=deploy-units
rm -f "$REPO/tests/output/deploy_coder/measurements.jsonl"
# While a test runs, pytest shows nothing: print the running test every 20 s.
export CODER_IT_CURRENT_TEST_FILE="$REPO/tests/output/deploy_coder/current-test"
mkdir -p "$(dirname "$CODER_IT_CURRENT_TEST_FILE")"
: >"$CODER_IT_CURRENT_TEST_FILE"
(
    while sleep 20; do
        if read -r test started <"$CODER_IT_CURRENT_TEST_FILE" 2>/dev/null && [ -n "${test:-}" ]; then
            echo "[test-deploy] still running $test ($(( $(date +%s) - started )) s)"
        fi
    done
) &
heartbeat=$!
trap 'kill "$heartbeat" 2>/dev/null' EXIT
run_step integration "$VENV/bin/pytest" -p no:cacheprovider -v -rfE --durations=15 \
    tests/integration/targets/deploy_coder/tests \
    --junitxml="$JUNIT_DIR/deploy-integration.xml" -o junit_suite_name=deploy-integration "$@"

if [ -f "$REPO/tests/output/deploy_coder/measurements.jsonl" ]; then
    echo "measured (recorded, never asserted; make bench measures speed):"
    cat "$REPO/tests/output/deploy_coder/measurements.jsonl"
fi
if [ "$failed" -ne 0 ]; then
    echo "test-deploy.sh: $failed step(s) failed; playbook logs in tests/output/deploy_coder/" >&2
    exit 1
fi
echo "test-deploy.sh: all steps passed"
