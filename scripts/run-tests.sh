#!/usr/bin/env bash
# `make test`: every suite, in order, against the running test bed. Each suite leaves JUnit XML in
# tests/output/junit; the last line counts the test cases of all of them. Exits non-zero when any
# step failed (all steps still run, so one run shows everything that is broken).
set -uo pipefail
cd "$(dirname "$0")/.."
OUT=tests/output
export JUNIT_DIR="$PWD/$OUT/junit"
rm -rf "$JUNIT_DIR" "$OUT/logs"
mkdir -p "$JUNIT_DIR" "$OUT/logs"
VENV=.venv/bin
export PATH="$PWD/.venv/bin:$PATH"
mkdir -p build/molecule-bed
steps_failed=0
failed_names=""

# step NAME CMD...: run a step; its output goes to the terminal and to tests/output/logs/NAME.log.
# A step that writes no JUnit file of its own gets a one-case file from its exit code.
step() {
  local name=$1; shift
  local log="$OUT/logs/$name.log" start=$SECONDS
  local before; before=$(find "$JUNIT_DIR" -name '*.xml' | wc -l)
  echo "==> $name"
  "$@" 2>&1 | tee "$log"
  local rc=${PIPESTATUS[0]}
  if [ "$(find "$JUNIT_DIR" -name '*.xml' | wc -l)" -eq "$before" ]; then
    python3 scripts/junit_summary.py --record "$JUNIT_DIR" "$name" "$rc" "$log"
  fi
  [ "$rc" -eq 0 ] || { steps_failed=$((steps_failed + 1)); failed_names="$failed_names $name"; }
  echo "<== $name: $([ "$rc" -eq 0 ] && echo ok || echo "FAILED (exit $rc)") in $((SECONDS - start)) s"
  step_times+=("$(printf '%-28s %6d s  %s' "$name" "$((SECONDS - start))" "$([ "$rc" -eq 0 ] && echo ok || echo FAILED)")")
}
step_times=()

step lint-testbed bash -c "$VENV/ruff check testbed tests/testbed scripts && $VENV/yamllint testbed tests/testbed .yamllint"
step testbed-smoke "$VENV/pytest" -p no:cacheprovider -q tests/testbed --junitxml="$JUNIT_DIR/testbed-smoke.xml"
# The Coder stand-in (tests/images/coder-standin, issue 14): its Go tests, no database needed.
step coder-standin bash -c "cd tests/images/coder-standin && GONOSUMDB=github.com/coder/pq go vet ./... && GONOSUMDB=github.com/coder/pq go test -count=1 ./..."
if [ -x scripts/test-collection.sh ]; then
  step collection scripts/test-collection.sh
fi
if [ -x scripts/test-deploy.sh ]; then
  step deploy scripts/test-deploy.sh
fi
if [ -x scripts/test-awx.sh ]; then
  # On the oldest supported Ansible: its ansible package bundles awx.awx (24.6.1), whose module
  # argument specs the static AWX checks compare against; ansible 14 no longer bundles it.
  step awx env CODER_VENV="$PWD/.venv-oldest" scripts/test-awx.sh
fi
# The collection is found through the checkout's own link (playbooks/collections), as the
# scenarios find it, never through a copy some earlier run installed under ~/.ansible.
step lint-molecule env ANSIBLE_COLLECTIONS_PATH="$PWD/playbooks/collections" "$VENV/ansible-lint" --nocolor molecule .config
# postgres-container uses the shared test bed and a container of its own.
step molecule-postgres-container make --no-print-directory molecule SCENARIO=postgres-container
step molecule-v2 make --no-print-directory molecule SCENARIO=v2  # the Coder v2 chart, shared test bed, own namespace
# default creates and destroys a whole test bed: give it a private one (own state and ports), so
# the shared bed stays up for whatever runs after it.
step molecule-default env CODER_TESTBED_STATE="$PWD/build/molecule-bed/.testbed" CODER_TESTBED_PORT_BASE=17430 \
  make --no-print-directory molecule SCENARIO=default
step molecule-kind-syntax bash -c ". .testbed/env.sh && $VENV/molecule syntax -s kind"
# Last, as it reuses the deploy suite's results: the reliability suite (issue 7) runs only the marked
# cases that have no result yet and the disruptive faults (on a private test bed of its own), and
# writes docs/reliability.md.
step reliability scripts/test-reliability.sh

echo
echo "step times (make test took $((SECONDS / 60)) min $((SECONDS % 60)) s):"
printf '  %s\n' "${step_times[@]}"
python3 scripts/junit_summary.py "$JUNIT_DIR"
summary_rc=$?
if [ "$steps_failed" -ne 0 ] || [ "$summary_rc" -ne 0 ]; then
  echo "make test: $steps_failed step(s) failed:${failed_names:- none}; logs in $OUT/logs" >&2
  exit 1
fi
