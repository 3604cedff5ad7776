#!/usr/bin/env bash
# The reliability suite of issue 7 (leaks, bad input, faults; ../shared/reliability-checklist.md),
# and docs/reliability.md, written from its results:
#
#   1. deploy      the deploy_coder tests marked @pytest.mark.reliability (test_no_leak.py,
#                  test_bad_input.py, test_faults.py), on the shared test bed. `make test` runs them
#                  already (scripts/test-deploy.sh): their results in $JUNIT_DIR/deploy-integration.xml
#                  are reused, and only the marked tests without a result there are run.
#   2. disruptive  tests/reliability: PostgreSQL stopped between preflight and upgrade, the API server
#                  restarted mid-run. They stop parts of a test bed, so they get a PRIVATE one
#                  (state $RELIABILITY_BED, ports from $RELIABILITY_PORT_BASE), brought up here and
#                  taken down afterwards, whatever the result; the shared bed is never touched.
#   3. report      tests/reliability/report.py writes docs/reliability.md from the JUnit XML of 1 and 2
#                  (one row per marked case, totals at the top). Commit it when it changes.
#
#   scripts/test-reliability.sh            (make test-reliability)
#   RELIABILITY_RERUN=1 scripts/test-reliability.sh   run every marked deploy test again
#
# Exits non-zero when a step or a marked case failed.
set -uo pipefail

REPO="$(cd "$(dirname "${BASH_SOURCE[0]}")/.." && pwd)"
cd "$REPO" || exit 2
VENV="${CODER_VENV:-$REPO/.venv}"
JUNIT_DIR="${JUNIT_DIR:-$REPO/tests/output/junit}"
SHARED_STATE="${CODER_TESTBED_STATE:-$REPO/.testbed}"
RELIABILITY_BED="${RELIABILITY_BED:-$REPO/build/reliability-bed/.testbed}"
RELIABILITY_PORT_BASE="${RELIABILITY_PORT_BASE:-18430}"
OUT="$REPO/tests/output/reliability"
mkdir -p "$JUNIT_DIR" "$OUT"
export PATH="$VENV/bin:$PATH"
DEPLOY_TESTS=tests/deploy
failed=0

if [ ! -f "$SHARED_STATE/env.sh" ]; then
    echo "test-reliability.sh: the test bed is not up ($SHARED_STATE/env.sh is missing); run 'make testbed'" >&2
    exit 2
fi
if [ "$(realpath -m "$RELIABILITY_BED")" = "$(realpath -m "$SHARED_STATE")" ]; then
    echo "test-reliability.sh: RELIABILITY_BED must not be the shared test bed" >&2
    exit 2
fi

step() {
    local name=$1; shift
    local start=$SECONDS
    echo "==> reliability-$name"
    "$@"
    local rc=$?
    echo "<== reliability-$name: $([ "$rc" -eq 0 ] && echo ok || echo "FAILED (exit $rc)") in $((SECONDS - start)) s"
    [ "$rc" -eq 0 ] || failed=$((failed + 1))
}

# 1. The marked deploy_coder tests that have no result yet.
reused=()
[ -z "${RELIABILITY_RERUN:-}" ] && [ -f "$JUNIT_DIR/deploy-integration.xml" ] && reused=("$JUNIT_DIR/deploy-integration.xml")
"$VENV/bin/pytest" -p no:cacheprovider -q --collect-only -m reliability "$DEPLOY_TESTS" >"$OUT/marked.txt" 2>&1 || {
    echo "test-reliability.sh: collecting the marked deploy_coder tests failed:" >&2
    tail -20 "$OUT/marked.txt" >&2
    exit 2
}
python3 tests/reliability/report.py --missing "$OUT/marked.txt" "${reused[@]}" >"$OUT/to-run.txt"
count=$(grep -c '::' "$OUT/to-run.txt" || true)
echo "reliability: $(grep -c '::' "$OUT/marked.txt") marked deploy_coder tests, $count without a result" \
     "${reused[*]:+in ${reused[*]}}"
rm -f "$JUNIT_DIR/reliability-deploy.xml"
if [ "$count" -gt 0 ]; then
    mapfile -t to_run <"$OUT/to-run.txt"
    step deploy "$VENV/bin/pytest" -p no:cacheprovider -v -rfE "${to_run[@]}" \
        --junitxml="$JUNIT_DIR/reliability-deploy.xml" -o junit_suite_name=reliability-deploy
fi

# 2. The disruptive faults, on a private test bed.
bed() {
    CODER_TESTBED_STATE="$RELIABILITY_BED" CODER_TESTBED_PORT_BASE="$RELIABILITY_PORT_BASE" \
        python3 testbed/testbed.py "$@"
}
down() { bed down >/dev/null 2>&1 || true; }
trap down EXIT
if PG=main bed up --pg main >"$OUT/bed-up.log" 2>&1; then
    step disruptive env CODER_TESTBED_STATE="$RELIABILITY_BED" CODER_TESTBED_PORT_BASE="$RELIABILITY_PORT_BASE" \
        CODER_IT_LOG_DIR="$OUT" "$VENV/bin/pytest" -p no:cacheprovider -v -rfE tests/reliability \
        --junitxml="$JUNIT_DIR/reliability-disruptive.xml" -o junit_suite_name=reliability-disruptive
else
    echo "test-reliability.sh: the private test bed did not come up:" >&2
    tail -20 "$OUT/bed-up.log" >&2
    failed=$((failed + 1))
fi
down
trap - EXIT

# 3. docs/reliability.md (with the AWX job tests' rows when make test ran them: tests/awx)
[ -f "$JUNIT_DIR/awx-runner.xml" ] && reused+=("$JUNIT_DIR/awx-runner.xml")
step report python3 tests/reliability/report.py -o docs/reliability.md "${reused[@]}" \
    "$JUNIT_DIR/reliability-deploy.xml" "$JUNIT_DIR/reliability-disruptive.xml"
if [ "$failed" -ne 0 ]; then
    echo "test-reliability.sh: $failed step(s) failed; see docs/reliability.md and tests/output/" >&2
    exit 1
fi
echo "test-reliability.sh: all steps passed; docs/reliability.md written"
