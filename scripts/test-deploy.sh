#!/usr/bin/env bash
# The deploy suite (tests/deploy): pytest tests that run playbooks/deploy_coder.yml, the roles and
# coder_helm_release for real against the running test bed (`make testbed`), with helm 3 and
# helm 4, on the newest and the oldest supported Ansible:
#
#   argspecs   roles' meta/argument_specs.yml in step with defaults/main.yml (tests/roles)
#   newest     tests/deploy with the default .venv (ansible 14.5.0, ansible-core 2.21)
#   oldest     tests/deploy with .venv-oldest (ansible 12.3.0, ansible-core 2.19): the lifecycles,
#              helm 3 only
#
# newest and oldest run at the same time, each on DEPLOY_WORKERS pytest-xdist workers (default 3),
# with --dist loadscope as tests/deploy/conftest.py splits it: a lifecycle class runs in order on
# one worker, once per helm; every other test is a unit of its own, the longest first. What tests
# share (the good release of the fault tests, the leak tests' canary) is built once per worker.
# (--dist loadgroup would say the same with marks, but pytest-xdist 3.8 does not apply its groups
# under pytest 9: checked, the node ids keep no "@group".)
#
#   scripts/test-deploy.sh                 everything
#   scripts/test-deploy.sh -k crashloop    extra arguments go to both pytest runs
#   DEPLOY_ANSIBLE=newest scripts/test-deploy.sh   only one of them
#
# The tests marked @pytest.mark.reliability carry their row of docs/reliability.md in the JUnit XML:
# scripts/test-reliability.sh (make test-reliability) reuses deploy-integration.xml (newest) instead
# of running them again.
# JUnit XML goes to ${JUNIT_DIR:-tests/output/junit}/deploy-<step>.xml, playbook logs to
# tests/output/deploy_coder/<newest|oldest>/, each run's output to tests/output/logs/deploy-<run>.log.
# While they run, this prints a progress line every 30 s. Exits non-zero when any step failed.
set -uo pipefail

REPO="$(cd "$(dirname "${BASH_SOURCE[0]}")/.." && pwd)"
cd "$REPO" || exit 2
VENV="${CODER_VENV:-$REPO/.venv}"
JUNIT_DIR="${JUNIT_DIR:-$REPO/tests/output/junit}"
STATE="${CODER_TESTBED_STATE:-$REPO/.testbed}"
WORKERS="${DEPLOY_WORKERS:-3}"
LOGS="$REPO/tests/output/logs"
mkdir -p "$JUNIT_DIR" "$LOGS"
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

# run_suite NAME VENV ARGS...: the deploy suite with that virtualenv's ansible, in the background.
declare -A pids starts
run_suite() {
    local name=$1 venv=$2; shift 2
    local junit=deploy-integration
    [ "$name" = newest ] || junit="deploy-integration-$name"
    echo "==> deploy-$name ($("$venv/bin/ansible" --version | head -n 1))"
    CODER_VENV="$venv" CODER_IT_LOG_DIR="$REPO/tests/output/deploy_coder/$name" \
        "$VENV/bin/pytest" -p no:cacheprovider -v -rfE --durations=15 -n "$WORKERS" --dist loadscope \
        tests/deploy --junitxml="$JUNIT_DIR/$junit.xml" -o junit_suite_name="$junit" "$@" \
        >"$LOGS/deploy-$name.log" 2>&1 &
    pids[$name]=$!
    starts[$name]=$SECONDS
}
case "${DEPLOY_ANSIBLE:-both}" in
    newest) run_suite newest "$REPO/.venv" "$@" ;;
    oldest) run_suite oldest "$REPO/.venv-oldest" "$@" ;;
    *) run_suite newest "$REPO/.venv" "$@"
       # The oldest Ansible runs the lifecycles (install, re-run, check mode, upgrade, rollback,
       # the collection's playbooks, uninstall; v2 with its crash-loop rollback and password
       # change), the v2 pool rule and the ClusterIP release, with helm 3: the whole suite twice
       # does not fit make test's time (DEPLOY_OLDEST_K="" runs it all).
       run_suite oldest "$REPO/.venv-oldest" ${DEPLOY_OLDEST_K-"-k" "not helm4 and (Lifecycle or pool_before or clusterip_release)"} "$@" ;;
esac
next=30
while :; do
    running=()
    for name in "${!pids[@]}"; do kill -0 "${pids[$name]}" 2>/dev/null && running+=("$name"); done
    [ "${#running[@]}" -eq 0 ] && break
    sleep 1
    if [ $((SECONDS - ${starts[${running[0]}]})) -ge "$next" ]; then
        for name in "${running[@]}"; do
            echo "[test-deploy] $name: $(grep -cE ' (PASSED|FAILED|ERROR|SKIPPED|XFAIL|XPASS)' "$LOGS/deploy-$name.log") done, $((SECONDS - ${starts[$name]})) s"
        done
        next=$((next + 30))
    fi
done
for name in "${!pids[@]}"; do
    wait "${pids[$name]}"
    rc=$?
    # The summary, the failures and the slowest tests of each run.
    sed -n '/= FAILURES =\|= ERRORS =\|slowest 15 durations\|short test summary/,$p' "$LOGS/deploy-$name.log" | tail -n 80
    echo "<== deploy-$name: $([ "$rc" -eq 0 ] && echo ok || echo "FAILED (exit $rc)") in $((SECONDS - ${starts[$name]})) s"
    [ "$rc" -eq 0 ] || failed=$((failed + 1))
done

if [ "$failed" -ne 0 ]; then
    echo "test-deploy.sh: $failed step(s) failed; logs in $LOGS/deploy-*.log and tests/output/deploy_coder/" >&2
    exit 1
fi
echo "test-deploy.sh: all steps passed"
