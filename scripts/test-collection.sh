#!/usr/bin/env bash
# Every check of the coderops.deploy collection, in order:
#
#   lint-ruff, lint-yamllint, lint-ansible-lint   linters on the collection
#   build, install, ansible-doc                   ansible-galaxy build + install into a temp dir,
#                                                 ansible-doc of every module and filter and a
#                                                 smoke playbook, all from the installed copy
#   sanity, units                                 ansible-test sanity and units
#   integration                                   ansible-test integration against the test bed
#                                                 (needs `make testbed`; reads .testbed/env.sh)
#
# Each step writes ${JUNIT_DIR:-tests/output/junit}/<step>.xml and its full output to
# tests/output/logs/collection-<step>.log. All steps run even when one fails; the exit status is
# non-zero when any failed. Long steps print a progress line every 30 s.
set -uo pipefail

REPO="$(cd "$(dirname "${BASH_SOURCE[0]}")/.." && pwd)"
cd "$REPO" || exit 2
VENV="${CODER_VENV:-$REPO/.venv}"
PY="$VENV/bin/python"
JUNIT_DIR="${JUNIT_DIR:-$REPO/tests/output/junit}"
LOGS="$REPO/tests/output/logs"
PYTHON_VERSION=3.11
mkdir -p "$JUNIT_DIR" "$LOGS"
WORK="$(mktemp -d "${TMPDIR:-/tmp}/coderops-test-collection-XXXXXX")"
trap 'rm -rf "$WORK"' EXIT
export PATH="$VENV/bin:$PATH"

failed_steps=()
passed_steps=()

# junit NAME MODE ARGS...: write $JUNIT_DIR/NAME.xml.
#   junit NAME step RC LOG SECONDS           one test case: pass, or a failure with the log's tail
#   junit NAME merge FILE...                 the test cases of other JUnit files, in one file
#   junit NAME cases CASES_TSV               one case per line: name<TAB>rc<TAB>seconds<TAB>log
junit() {
    "$PY" - "$JUNIT_DIR" "$@" <<'PY'
import sys
import xml.etree.ElementTree as ET
from pathlib import Path

directory, name, mode, *args = sys.argv[1:]
suite = ET.Element("testsuite", name=f"collection-{name}")


def tail(path, lines=80):
    try:
        text = Path(path).read_text(errors="replace")
    except OSError:
        return ""
    return "\n".join(text.splitlines()[-lines:])


def case(case_name, rc, seconds, log):
    tc = ET.SubElement(suite, "testcase", classname=f"collection.{name}", name=case_name,
                       time=str(seconds))
    if int(rc) != 0:
        ET.SubElement(tc, "failure", message=f"exit status {rc}").text = tail(log)


if mode == "step":
    rc, log, seconds = args
    case(name, rc, seconds, log)
elif mode == "cases":
    for line in Path(args[0]).read_text().splitlines():
        case_name, rc, seconds, log = line.split("\t")
        case(case_name, rc, seconds, log)
elif mode == "merge":
    for path in args:
        try:
            root = ET.parse(path).getroot()
        except (OSError, ET.ParseError) as exc:
            case(f"{Path(path).name} (unreadable)", 1, 0, "")
            suite[-1].find("failure").text = str(exc)
            continue
        for tc in root.iter("testcase"):
            suite.append(tc)
    if not len(suite):
        case(f"{name}: no test cases found", 1, 0, "")
counts = {"tests": 0, "failures": 0, "errors": 0, "skipped": 0}
for tc in suite.iter("testcase"):
    counts["tests"] += 1
    counts["failures"] += tc.find("failure") is not None
    counts["errors"] += tc.find("error") is not None
    counts["skipped"] += tc.find("skipped") is not None
for key, value in counts.items():
    suite.set(key, str(value))
ET.ElementTree(suite).write(Path(directory) / f"{name}.xml", encoding="unicode",
                            xml_declaration=True)
print(f"{name}: {counts['tests']} test case(s), {counts['failures'] + counts['errors']} failed,"
      f" {counts['skipped']} skipped")
PY
}

# run_logged LOG CMD...: run CMD with its output in LOG, printing a progress line every 30 s.
run_logged() {
    local log=$1; shift
    local start=$SECONDS next=30
    "$@" >"$log" 2>&1 &
    local pid=$!
    while kill -0 "$pid" 2>/dev/null; do
        sleep 1
        if [ $((SECONDS - start)) -ge "$next" ]; then
            echo "    ... still running ($((SECONDS - start)) s): $(tail -n 1 "$log" | cut -c1-150)"
            next=$((next + 30))
        fi
    done
    wait "$pid"
}

# step NAME CMD...: one step, with a one-case JUnit file.
step() {
    local name=$1; shift
    local log="$LOGS/collection-$name.log" start=$SECONDS rc=0
    echo "==> $name"
    run_logged "$log" "$@" || rc=$?
    junit "$name" step "$rc" "$log" "$((SECONDS - start))" >/dev/null
    finish "$name" "$rc" "$log" "$start"
}

finish() {
    local name=$1 rc=$2 log=$3 start=$4
    if [ "$rc" -eq 0 ]; then
        passed_steps+=("$name")
        echo "<== $name: ok in $((SECONDS - start)) s"
    else
        failed_steps+=("$name")
        tail -n 30 "$log" | sed 's/^/    | /'
        echo "<== $name: FAILED (exit $rc) in $((SECONDS - start)) s; full output: $log"
    fi
}

# --- lint ---------------------------------------------------------------------------------------
lint_ruff() {
    # Ansible plugins put DOCUMENTATION/EXAMPLES/RETURN before their imports (ansible-doc reads
    # them that way), so E402 cannot hold for modules and filters; everything else follows the
    # repository's ruff.toml.
    ruff check --config 'lint.per-file-ignores = {"plugins/modules/*.py" = ["E402"], "plugins/filter/*.py" = ["E402"]}' \
        plugins tests/unit tests/integration
}

lint_yamllint() {
    local paths=(galaxy.yml meta changelogs tests/integration)
    for p in roles playbooks; do [ -d "$p" ] && paths+=("$p"); done
    yamllint -c .yamllint --strict "${paths[@]}"
}

lint_ansible_lint() {
    local tree
    tree="$(scripts/ansible-test.sh --sync-only)" || return 1
    # The integration targets are roles of their own (ansible-test puts them on the roles path),
    # and the collection is found through the scratch tree's ansible_collections directory.
    # galaxy[no-repository] is skipped: the collection has no public repository URL yet.
    (cd "$tree" && ANSIBLE_ROLES_PATH="$tree/tests/integration/targets" \
        ANSIBLE_COLLECTIONS_PATH="$(cd "$tree/../../.." && pwd)" \
        ansible-lint --offline --profile production --nocolor --skip-list 'galaxy[no-repository]')
}

# --- build, install, ansible-doc ------------------------------------------------------------------
build_collection() {
    rm -rf "$WORK/dist"
    mkdir -p "$WORK/dist"
    ansible-galaxy collection build --force --output-path "$WORK/dist" . || return 1
    local tarball
    tarball="$(ls "$WORK"/dist/coderops-deploy-*.tar.gz)" || return 1
    echo "built $tarball"
    # Nothing of the test bed, the virtualenv or the scratch trees may be in it.
    tar -tzf "$tarball" >"$WORK/tarball.txt" || return 1
    echo "$(wc -l <"$WORK/tarball.txt") entries"
    if grep -E '^(\./)?(\.venv|\.testbed|build|testbed|tests/testbed|tests/output|scripts|\.ci)/' "$WORK/tarball.txt"; then
        echo "the tarball holds the files above, which build_ignore should keep out"
        return 1
    fi
    local f
    for f in MANIFEST.json FILES.json LICENSE meta/runtime.yml plugins/modules/coder_pg_facts.py \
             plugins/modules/coder_values.py plugins/filter/coder_pg_url.py changelogs/changelog.yaml; do
        grep -qx "$f" "$WORK/tarball.txt" || { echo "$f is missing from the tarball"; return 1; }
    done
}

install_collection() {
    rm -rf "$WORK/collections"
    # Galaxy cannot be reached from the build machines; the dependencies (kubernetes.core,
    # community.postgresql) come with the pinned `ansible` package, hence --no-deps.
    ansible-galaxy collection install --no-deps --force -p "$WORK/collections" "$WORK"/dist/coderops-deploy-*.tar.gz || return 1
    ansible-galaxy collection list -p "$WORK/collections" coderops.deploy
}

doc_smoke() {
    local installed="$WORK/collections/ansible_collections/coderops/deploy" rc=0 kind name
    [ -d "$installed" ] || { echo "the collection is not installed in $WORK/collections"; return 1; }
    export ANSIBLE_COLLECTIONS_PATH="$WORK/collections"
    for kind in module filter; do
        local dir=modules
        [ "$kind" = filter ] && dir=filter
        local expected listed
        expected="$(find "$installed/plugins/$dir" -maxdepth 1 -name '*.py' ! -name '__init__.py' -printf 'coderops.deploy.%f\n' | sed 's/\.py$//' | sort)"
        listed="$(ansible-doc -t "$kind" -l coderops.deploy 2>/dev/null | awk '{print $1}' | sort)"
        if [ "$expected" != "$listed" ]; then
            echo "ansible-doc -t $kind -l lists:"; echo "$listed"; echo "expected:"; echo "$expected"; rc=1
        fi
        for name in $expected; do
            if ansible-doc -t "$kind" "$name" >"$WORK/doc.txt" 2>&1 && [ -s "$WORK/doc.txt" ]; then
                echo "ansible-doc -t $kind $name: ok ($(wc -l <"$WORK/doc.txt") lines)"
            else
                echo "ansible-doc -t $kind $name: FAILED"; cat "$WORK/doc.txt"; rc=1
            fi
        done
    done
    # The installed copy works: values, the three filters, and a facts run that fails cleanly.
    cat >"$WORK/smoke.yml" <<'YAML'
- name: Smoke test of the installed collection
  hosts: localhost
  gather_facts: false
  tasks:
    - name: Build values
      coderops.deploy.coder_values:
        host: db.example.internal
        port: 5432
        user: coder
        database: coder
        password_secret: coder-db
      register: smoke_values
    - name: A facts run against a name that does not resolve
      coderops.deploy.coder_pg_facts:
        login_host: coderops-smoke.invalid
        connect_timeout: 2
      register: smoke_facts
      ignore_errors: true
    - name: Check the results and the filters
      ansible.builtin.assert:
        that:
          - smoke_values['values'].postgres.port == '5432'
          - smoke_facts.reason == 'dns'
          - "(smoke_values['values'] | coderops.deploy.coder_values_merge({'coderd': {'replicas': 2}})).coderd.replicas == 2"
          - "({'max_connections': 20, 'superuser_reserved_connections': 3} | coderops.deploy.coder_connection_budget).available == 17"
          - "({'host': 'db', 'port': 1, 'user': 'u', 'database': 'd'} | coderops.deploy.coder_pg_url) == 'postgres://u@db:1/d?sslmode=require'"
YAML
    ansible-playbook -i localhost, -c local -e "ansible_python_interpreter=$PY" "$WORK/smoke.yml" || rc=1
    return "$rc"
}

# --- ansible-test ---------------------------------------------------------------------------------
sanity() {
    scripts/ansible-test.sh sanity --venv --python "$PYTHON_VERSION"
}

# One JUnit test case per sanity test: the tests that ran, failed if listed as failed at the end.
sanity_cases() {
    local log=$1 out=$2 test
    : >"$out"
    local failed
    failed="$(sed -n '/^FATAL: The [0-9]* sanity test(s) listed below/,/^FATAL: Command/p' "$log" | grep -v '^FATAL')"
    grep -o '^Running sanity test "[^"]*"\( on Python [0-9.]*\)\?' "$log" | sed 's/^Running sanity test "\([^"]*\)".*/\1/' | sort -u |
    while read -r test; do
        if printf '%s\n' "$failed" | grep -qx "$test"; then
            grep -E "^ERROR: .*" "$log" >"$WORK/sanity-$test.txt"
            printf '%s\t1\t0\t%s\n' "$test" "$WORK/sanity-$test.txt" >>"$out"
        else
            printf '%s\t0\t0\t-\n' "$test" >>"$out"
        fi
    done
}

units() {
    rm -f tests/output/ansible-test/junit/python*-units.xml
    scripts/ansible-test.sh units --local --python "$PYTHON_VERSION" --num-workers 2
}

integration() {
    if [ ! -f .testbed/env.sh ]; then
        echo "integration: .testbed/env.sh is missing; start the test bed first: make testbed"
        return 1
    fi
    # shellcheck disable=SC1091
    . .testbed/env.sh
    local targets target rc=0 start tlog
    targets="$(scripts/ansible-test.sh integration --local --python "$PYTHON_VERSION" --allow-destructive --list-targets 2>/dev/null | grep -v '^WARNING')"
    [ -n "$targets" ] || { echo "integration: no targets found"; return 1; }
    : >"$WORK/integration.tsv"
    for target in $targets; do
        start=$SECONDS
        tlog="$LOGS/collection-integration-$target.log"
        echo "--- $target"
        if scripts/ansible-test.sh integration --local --python "$PYTHON_VERSION" --allow-destructive "$target" >"$tlog" 2>&1; then
            printf '%s\t0\t%s\t%s\n' "$target" "$((SECONDS - start))" "$tlog" >>"$WORK/integration.tsv"
            echo "    ok in $((SECONDS - start)) s"
        else
            rc=1
            printf '%s\t1\t%s\t%s\n' "$target" "$((SECONDS - start))" "$tlog" >>"$WORK/integration.tsv"
            echo "    FAILED in $((SECONDS - start)) s; output: $tlog"
        fi
    done
    return "$rc"
}

# --- the steps ------------------------------------------------------------------------------------
step lint-ruff lint_ruff
step lint-yamllint lint_yamllint
step lint-ansible-lint lint_ansible_lint
step build build_collection
step install install_collection
step ansible-doc doc_smoke

name=sanity; log="$LOGS/collection-$name.log"; start=$SECONDS; rc=0
echo "==> $name"
run_logged "$log" sanity || rc=$?
sanity_cases "$log" "$WORK/sanity.tsv"
if [ -s "$WORK/sanity.tsv" ]; then
    # A failure outside any test (no venv, say) still shows as a failed case.
    [ "$rc" -ne 0 ] && ! grep -q "$(printf '\t1\t')" "$WORK/sanity.tsv" && printf 'sanity\t%s\t0\t%s\n' "$rc" "$log" >>"$WORK/sanity.tsv"
    junit "$name" cases "$WORK/sanity.tsv"
else
    junit "$name" step "$((rc == 0 ? 1 : rc))" "$log" "$((SECONDS - start))"
    rc=1
fi
finish "$name" "$rc" "$log" "$start"

name=units; log="$LOGS/collection-$name.log"; start=$SECONDS; rc=0
echo "==> $name"
run_logged "$log" units || rc=$?
shopt -s nullglob
unit_xml=(tests/output/ansible-test/junit/python*-units.xml)
shopt -u nullglob
if [ "${#unit_xml[@]}" -gt 0 ]; then
    junit "$name" merge "${unit_xml[@]}"
else
    junit "$name" step "$((rc == 0 ? 1 : rc))" "$log" "$((SECONDS - start))"
    rc=1
fi
finish "$name" "$rc" "$log" "$start"

name=integration; log="$LOGS/collection-$name.log"; start=$SECONDS; rc=0
echo "==> $name"
: >"$WORK/integration.tsv"
run_logged "$log" integration || rc=$?
grep -E '^(---|    )' "$log" || true
if [ -s "$WORK/integration.tsv" ]; then
    junit "$name" cases "$WORK/integration.tsv"
else
    junit "$name" step "$((rc == 0 ? 1 : rc))" "$log" "$((SECONDS - start))"
    rc=1
fi
finish "$name" "$rc" "$log" "$start"

echo
echo "passed: ${passed_steps[*]:-none}"
if [ "${#failed_steps[@]}" -gt 0 ]; then
    echo "FAILED: ${failed_steps[*]}"
    exit 1
fi
echo "all collection steps passed"
