#!/usr/bin/env bash
# Run nox (antsibull-nox) on the collection, offline:
#
#   scripts/nox.sh --list                              # the sessions
#   scripts/nox.sh -s lint docs-check                  # some sessions (new or updated virtualenvs)
#   scripts/nox.sh -R -s ansible-test-sanity-2.21      # reuse the session's virtualenv, install nothing
#
# Before nox it prepares, once (each step is skipped when already done):
#   build/nox-venv          nox and antsibull-nox from requirements-nox.txt (Python 3.12 or newer);
#                           the sessions' own virtualenvs are in .nox/ (git-ignored)
#   build/nox-pythons       python3.11, python3.12, python3.13 links, first on PATH: nox and ansible-test
#                           look the session interpreters up there (pyenv's shims do not work without
#                           PYENV_VERSION, so pyenv's interpreters are linked directly)
#   build/collection-deps   the collection dependencies as Galaxy tarballs (scripts/collection_deps.py)
# noxfile.py installs ansible-test's offline pip bootstrap into ~/.ansible/test/cache itself.
#
# Environment: NOX_PYTHON (the interpreter for build/nox-venv, default Python 3.12).
set -euo pipefail

REPO="$(cd "$(dirname "${BASH_SOURCE[0]}")/.." && pwd)"
BUILD="$REPO/build"
NOX_VENV="$BUILD/nox-venv"
PYTHONS="$BUILD/nox-pythons"

die() { echo "nox.sh: $*" >&2; exit 2; }

# find_python 3.12: a working python3.12 (on PATH, or pyenv's newest 3.12.x).
find_python() {
    local version=$1 candidate
    for candidate in "$(command -v "python$version" 2>/dev/null || true)" \
        $(ls -d "${PYENV_ROOT:-$HOME/.pyenv}"/versions/"$version".*/bin/"python$version" 2>/dev/null | sort -rV); do
        [ -n "$candidate" ] && [ -x "$candidate" ] || continue
        # A pyenv shim exists on PATH but fails unless PYENV_VERSION names that version.
        "$candidate" -c 'import sys' >/dev/null 2>&1 || continue
        "$candidate" -c 'import sys; print(sys.executable)'
        return 0
    done
    return 1
}

mkdir -p "$PYTHONS"
for version in 3.11 3.12 3.13; do
    if python="$(find_python "$version")"; then
        ln -sfn "$python" "$PYTHONS/python$version"
    else
        rm -f "$PYTHONS/python$version"
        echo "nox.sh: no working python$version; the sessions that need it will fail" >&2
    fi
done
export PATH="$PYTHONS:$PATH"

# The tool virtualenv, rebuilt when requirements-nox.txt changes.
stamp="$NOX_VENV/.requirements-nox.sha256"
want="$(sha256sum "$REPO/requirements-nox.txt" | cut -d' ' -f1)"
if [ "$(cat "$stamp" 2>/dev/null)" != "$want" ]; then
    tool_python="${NOX_PYTHON:-}"
    [ -n "$tool_python" ] || tool_python="$(find_python 3.12 || find_python 3.13)" \
        || die "no Python 3.12 or 3.13 for the nox virtualenv (set NOX_PYTHON)"
    echo "nox.sh: creating $NOX_VENV with $tool_python"
    rm -rf "$NOX_VENV"
    "$tool_python" -m venv "$NOX_VENV"
    "$NOX_VENV/bin/pip" install --quiet --disable-pip-version-check -r "$REPO/requirements-nox.txt"
    echo "$want" >"$stamp"
fi

"$NOX_VENV/bin/python" "$REPO/scripts/collection_deps.py" "$REPO"

cd "$REPO"
# A missing interpreter is an error, not a skipped session.
exec "$NOX_VENV/bin/nox" --error-on-missing-interpreters "$@"
