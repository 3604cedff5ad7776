#!/usr/bin/env bash
# Every check of the coderops.deploy collection, for `make test` (scripts/run-tests.sh):
#
#   nox sessions of antsibull-nox (noxfile.py, antsibull-nox.toml; scripts/nox.sh runs nox offline):
#     lint                         ruff check (ruff.toml), yamllint (.yamllint) of every YAML file and
#                                  of the plugins' documentation, the antsibull-nox config
#     docs-check                   antsibull-docs lint-collection-docs
#     build-import-check           ansible-galaxy collection build (galaxy-importer: off until galaxy.yml
#                                  has a repository URL; see antsibull-nox.toml)
#     ansible-lint                 ansible-lint, production profile (.ansible-lint)
#     ansible-test-sanity-2.19     ansible-test sanity with ansible-core 2.19.14 on Python 3.11,
#     ansible-test-sanity-2.20       2.20.10 on Python 3.12,
#     ansible-test-sanity-2.21       2.21.5 on Python 3.13
#     ansible-test-units-2.19/2.20/2.21   ansible-test units, the same versions
#   tarball       what antsibull-nox does not check: the built tarball holds the collection and nothing
#                 of the test bed, the scripts or the tooling; installed from it (--no-deps), the modules
#                 and filters work (a smoke playbook)
#   integration   ansible-test integration against the test bed with .venv's ansible-core (2.21),
#                 then integration-oldest with .venv-oldest's (2.19) when it exists
#                 (needs `make testbed`; reads .testbed/env.sh)
#
# JUnit XML goes to ${JUNIT_DIR:-tests/output/junit}: collection-<step>.xml per step (antsibull-nox's
# own report for a nox session: one test case per session and per part of it), plus
# collection-<session>-tests.xml with one case per sanity test (ansible-test --junit) or unit test
# (pytest). Full output: tests/output/logs/collection-<step>.log. All steps run even when one fails;
# the exit status is non-zero when any failed. Long steps print a progress line every 30 s.
#
# The nox sessions' virtualenvs (.nox/) are reused, installing nothing (nox -R), while noxfile.py,
# antsibull-nox.toml and the requirements files they install from are unchanged since the session
# last passed; otherwise nox builds them anew (with uv, from its cache: seconds). Two lanes run side by
# side (2 cores): one with the tooling sessions and those on ansible-core 2.21, the other with 2.19 and
# 2.20 (they share no ansible-test virtualenvs nor antsibull-nox's extracted dependencies).
#
# Environment: CODER_VENV (default .venv; its ansible-core runs the tarball and integration steps;
# .venv-oldest runs integration-oldest),
# JUNIT_DIR, COLLECTION_NOX_SESSIONS (space-separated subset of the sessions above, to run fewer).
set -uo pipefail

REPO="$(cd "$(dirname "${BASH_SOURCE[0]}")/.." && pwd)"
cd "$REPO" || exit 2
VENV="${CODER_VENV:-$REPO/.venv}"
JUNIT_DIR="${JUNIT_DIR:-$REPO/tests/output/junit}"
LOGS="$REPO/tests/output/logs"
mkdir -p "$JUNIT_DIR" "$LOGS"
WORK="$(mktemp -d "${TMPDIR:-/tmp}/coderops-test-collection-XXXXXX")"
trap 'rm -rf "$WORK"' EXIT

LANE_A=(lint docs-check build-import-check ansible-lint ansible-test-sanity-2.21 ansible-test-units-2.21)
LANE_B=(ansible-test-sanity-2.19 ansible-test-units-2.19 ansible-test-sanity-2.20 ansible-test-units-2.20)
if [ -n "${COLLECTION_NOX_SESSIONS:-}" ]; then
    keep() { local s; for s in "$@"; do [[ " $COLLECTION_NOX_SESSIONS " == *" $s "* ]] && printf '%s\n' "$s"; done; }
    mapfile -t LANE_A < <(keep "${LANE_A[@]}")
    mapfile -t LANE_B < <(keep "${LANE_B[@]}")
fi

# junit NAME MODE ARGS...: write $JUNIT_DIR/collection-NAME.xml.
#   junit NAME step RC LOG SECONDS           one test case: pass, or a failure with the log's tail
#   junit NAME cases CASES_TSV               one case per line: name<TAB>rc<TAB>seconds<TAB>log
#   junit NAME merge PREFIX FILE...          the test cases of other JUnit files in one file, their
#                                            classname prefixed with PREFIX (ansible-core version)
junit() {
    python3 - "$JUNIT_DIR" "$@" <<'PY'
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
    prefix, *paths = args
    for path in paths:
        try:
            root = ET.parse(path).getroot()
        except (OSError, ET.ParseError) as exc:
            case(f"{Path(path).name} (unreadable)", 1, 0, "")
            suite[-1].find("failure").text = str(exc)
            continue
        for tc in root.iter("testcase"):
            tc.set("classname", f"{prefix}.{tc.get('classname', '')}")
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
ET.ElementTree(suite).write(Path(directory) / f"collection-{name}.xml", encoding="unicode",
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
            echo "    ... $(basename "$log" .log) still running ($((SECONDS - start)) s): $(tail -n 1 "$log" | cut -c1-130)"
            next=$((next + 30))
        fi
    done
    wait "$pid"
}

# report NAME RC LOG START: one line (and the log's tail on failure); RESULTS_FILE collects NAME<TAB>RC.
report() {
    local name=$1 rc=$2 log=$3 start=$4
    printf '%s\t%s\n' "$name" "$rc" >>"$RESULTS_FILE"
    if [ "$rc" -eq 0 ]; then
        echo "<== $name: ok in $((SECONDS - start)) s"
    else
        tail -n 30 "$log" | sed "s/^/    $name | /"
        echo "<== $name: FAILED (exit $rc) in $((SECONDS - start)) s; full output: $log"
    fi
}
RESULTS_FILE="$WORK/results.tsv"
: >"$RESULTS_FILE"

# --- nox sessions ---------------------------------------------------------------------------------
# The inputs of the sessions' virtualenvs: while they are unchanged since a session passed, nox
# reuses its virtualenv and installs nothing (-R).
nox_inputs_hash() {
    cat noxfile.py antsibull-nox.toml requirements-nox.txt tests/unit/requirements.txt tests/unit/constraints.txt 2>/dev/null | sha256sum | cut -d' ' -f1
}
STAMPS="$REPO/.nox/.coderops-passed"

nox_session() {
    local session=$1 log="$LOGS/collection-$1.log" start=$SECONDS rc=0 reuse=()
    local stamp="$STAMPS/$session" want
    want="$(nox_inputs_hash)"
    [ "$(cat "$stamp" 2>/dev/null)" = "$want" ] && reuse=(-R)
    echo "==> $session${reuse:+ (reusing its virtualenv)}"
    rm -f "$JUNIT_DIR/collection-$session.xml" "$JUNIT_DIR/collection-$session-tests.xml"
    ANTSIBULL_NOX_OUTPUT_JUNIT_XML_PATH="$JUNIT_DIR/collection-$session.xml" \
        run_logged "$log" scripts/nox.sh "${reuse[@]}" -s "$session" || rc=$?
    # antsibull-nox's report; without it (nox failed before any session ran) a case from the exit code.
    if [ ! -s "$JUNIT_DIR/collection-$session.xml" ]; then
        junit "$session" step "$((rc == 0 ? 1 : rc))" "$log" "$((SECONDS - start))" >/dev/null
        [ "$rc" -ne 0 ] || rc=1
    fi
    # ansible-test's own JUnit files (one per sanity test, pytest's for units), copied by noxfile.py.
    local out="tests/output/nox/$session/junit" files=()
    shopt -s nullglob
    files=("$out"/*.xml)
    shopt -u nullglob
    case "$session" in
        ansible-test-*)
            if [ "${#files[@]}" -gt 0 ]; then
                junit "$session-tests" merge "ansible-core-${session##*-}" "${files[@]}" >/dev/null
            fi ;;
    esac
    if [ "$rc" -eq 0 ]; then
        mkdir -p "$STAMPS" && echo "$want" >"$stamp"
    else
        rm -f "$stamp"
    fi
    report "$session" "$rc" "$log" "$start"
}

lane() {
    local session
    for session in "$@"; do
        nox_session "$session"
    done
}

# The tool virtualenv, the interpreters and the dependency tarballs first, once, so that the lanes
# below do not build them side by side.
start=$SECONDS
echo "==> nox-setup"
rc=0
run_logged "$LOGS/collection-nox-setup.log" scripts/nox.sh --list || rc=$?
junit nox-setup step "$rc" "$LOGS/collection-nox-setup.log" "$((SECONDS - start))" >/dev/null
report nox-setup "$rc" "$LOGS/collection-nox-setup.log" "$start"
if [ "$rc" -eq 0 ]; then
    lane "${LANE_A[@]}" &
    lane_a=$!
    lane "${LANE_B[@]}" &
    lane_b=$!
    wait "$lane_a" "$lane_b"
fi

# --- the tarball (what antsibull-nox does not check) --------------------------------------------------
export PATH="$VENV/bin:$PATH"

tarball() {
    rm -rf "$WORK/dist" "$WORK/collections"
    mkdir -p "$WORK/dist"
    ansible-galaxy collection build --force --output-path "$WORK/dist" . || return 1
    local built
    built="$(ls "$WORK"/dist/coderops-deploy-*.tar.gz)" || return 1
    echo "built $built"
    # Nothing of the test bed, the virtualenvs, the scripts or the tooling may be in it.
    tar -tzf "$built" >"$WORK/tarball.txt" || return 1
    echo "$(wc -l <"$WORK/tarball.txt") entries"
    if grep -E '^(\./)?(\.venv|\.venv-oldest|\.testbed|\.nox|build|testbed|tests/testbed|tests/images|tests/output|scripts|\.ci|bench|molecule)(/|$)|^(\./)?(noxfile\.py|antsibull-nox\.toml|requirements-nox\.txt)$' "$WORK/tarball.txt"; then
        echo "the tarball holds the files above, which build_ignore should keep out"
        return 1
    fi
    local f
    for f in MANIFEST.json FILES.json LICENSE meta/runtime.yml docs/galaxy.md plugins/modules/coder_pg_facts.py \
             plugins/modules/coder_values.py plugins/filter/coder_pg_url.py changelogs/changelog.yaml \
             playbooks/deploy_coder.yml roles/helm_release/meta/argument_specs.yml; do
        grep -qx "$f" "$WORK/tarball.txt" || { echo "$f is missing from the tarball"; return 1; }
    done
    # Galaxy cannot be reached from the build machines; kubernetes.core comes with the virtualenv's
    # `ansible` package, hence --no-deps.
    ansible-galaxy collection install --no-deps --force -p "$WORK/collections" "$built" || return 1
    # The installed copy works: values, the filters, and a facts run that fails cleanly.
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
    ANSIBLE_COLLECTIONS_PATH="$WORK/collections" \
        ansible-playbook -i localhost, -c local -e "ansible_python_interpreter=$VENV/bin/python" "$WORK/smoke.yml"
}

start=$SECONDS
echo "==> tarball"
rc=0
run_logged "$LOGS/collection-tarball.log" tarball || rc=$?
junit tarball step "$rc" "$LOGS/collection-tarball.log" "$((SECONDS - start))" >/dev/null
report tarball "$rc" "$LOGS/collection-tarball.log" "$start"

# --- integration against the test bed ---------------------------------------------------------------
# integration VENV PYTHON_VERSION LOG_PREFIX: every target with that virtualenv's ansible-core.
integration() {
    local venv=$1 python=$2 prefix=$3
    if [ ! -f .testbed/env.sh ]; then
        echo "integration: .testbed/env.sh is missing; start the test bed first: make testbed"
        return 1
    fi
    # shellcheck disable=SC1091
    . .testbed/env.sh
    export CODER_VENV="$venv"
    local targets target rc=0 start tlog
    targets="$(scripts/ansible-test.sh integration --local --python "$python" --allow-destructive --list-targets 2>/dev/null | grep -v '^WARNING')"
    [ -n "$targets" ] || { echo "integration: no targets found"; return 1; }
    for target in $targets; do
        start=$SECONDS
        tlog="$LOGS/collection-$prefix-$target.log"
        echo "--- $target"
        if scripts/ansible-test.sh integration --local --python "$python" --allow-destructive "$target" >"$tlog" 2>&1; then
            printf '%s\t0\t%s\t%s\n' "$target" "$((SECONDS - start))" "$tlog" >>"$WORK/$prefix.tsv"
            echo "    ok in $((SECONDS - start)) s"
        else
            rc=1
            printf '%s\t1\t%s\t%s\n' "$target" "$((SECONDS - start))" "$tlog" >>"$WORK/$prefix.tsv"
            echo "    FAILED in $((SECONDS - start)) s; output: $tlog"
        fi
    done
    return "$rc"
}

# integration_step NAME VENV: the newest supported Ansible (.venv) and the oldest (.venv-oldest, when
# `make venv-oldest` made it), one after the other (the targets share the test bed's servers).
integration_step() {
    local name=$1 venv=$2 log="$LOGS/collection-$1.log" start=$SECONDS rc=0 python
    python="$("$venv/bin/python" -c 'import sys; print("%d.%d" % sys.version_info[:2])' 2>/dev/null)"
    echo "==> $name (ansible-core $("$venv/bin/python" -c 'import ansible; print(ansible.__version__)' 2>/dev/null) of $venv, Python $python)"
    : >"$WORK/$name.tsv"
    run_logged "$log" integration "$venv" "$python" "$name" || rc=$?
    grep -E '^(---|    )' "$log" || true
    if [ -s "$WORK/$name.tsv" ]; then
        junit "$name" cases "$WORK/$name.tsv" >/dev/null
    else
        junit "$name" step "$((rc == 0 ? 1 : rc))" "$log" "$((SECONDS - start))" >/dev/null
        rc=1
    fi
    report "$name" "$rc" "$log" "$start"
}

integration_step integration "$VENV"
if [ -x "$REPO/.venv-oldest/bin/ansible-test" ]; then
    integration_step integration-oldest "$REPO/.venv-oldest"
fi

echo
passed="$(awk -F'\t' '$2 == 0 {print $1}' "$RESULTS_FILE" | tr '\n' ' ')"
failed="$(awk -F'\t' '$2 != 0 {print $1}' "$RESULTS_FILE" | tr '\n' ' ')"
echo "passed: ${passed:-none}"
if [ -n "$failed" ]; then
    echo "FAILED: $failed"
    exit 1
fi
echo "all collection steps passed"
