# Copyright (c) 2025, coderops maintainers
# GNU General Public License v3.0+ (see LICENSE or https://www.gnu.org/licenses/gpl-3.0.txt)
# SPDX-License-Identifier: GPL-3.0-or-later
"""execution-environment.yml: `ansible-builder create` makes a complete build context from it, here,
offline (building the image needs a registry and Galaxy, which this machine cannot reach).

The collection tarball is built from the repository's files as a fresh clone has them, the helm
binary is the test bed's official helm v3.17.2; the context must then hold both, the pinned Python
requirements (the same pins as requirements.txt), the pinned collection dependencies of galaxy.yml,
and a Containerfile that checks helm's sha256.
"""

from __future__ import annotations

import hashlib
import json
import os
import re
import shutil
import subprocess
import tarfile
from pathlib import Path

import pytest
import yaml
from awx_emulation import copy_project
from awx_surveys import REPO
from conftest import STATE, VENV_BIN

EE_FILE = REPO / "execution-environment.yml"


def _pins(lines):
    pins = {}
    for line in lines:
        line = line.split("#", 1)[0].strip()
        if "==" in line and not line.startswith("-"):
            name, version = line.split("==", 1)
            pins[name.strip().lower()] = version.strip()
    return pins


@pytest.fixture(scope="module")
def ee():
    return yaml.safe_load(EE_FILE.read_text())


@pytest.fixture(scope="module")
def context(tmp_path_factory):
    helm = STATE / "bin" / "helm3"
    if not helm.exists():
        pytest.fail(f"{helm} is missing: the test bed's helm 3 binary is needed (make testbed)", pytrace=False)
    work = tmp_path_factory.mktemp("ee")
    src = work / "src"
    copy_project(src)
    (work / "build" / "ee").mkdir(parents=True)
    proc = subprocess.run([VENV_BIN / "ansible-galaxy", "collection", "build", "--output-path", work / "build" / "ee",
                           src], capture_output=True, text=True, timeout=300)
    assert proc.returncode == 0, proc.stdout + proc.stderr
    galaxy = yaml.safe_load((REPO / "galaxy.yml").read_text())
    built = work / "build" / "ee" / f"coderops-deploy-{galaxy['version']}.tar.gz"
    built.rename(work / "build" / "ee" / "coderops-deploy.tar.gz")
    shutil.copy(os.path.realpath(helm), work / "build" / "ee" / "helm")
    shutil.copy(EE_FILE, work / "execution-environment.yml")
    proc = subprocess.run([VENV_BIN / "ansible-builder", "create", "-f", "execution-environment.yml", "-c",
                           "build/ee/context", "--output-filename", "Containerfile"],
                          capture_output=True, text=True, cwd=work, timeout=300)
    assert proc.returncode == 0, proc.stdout + proc.stderr
    assert "No matches for" not in proc.stdout + proc.stderr, proc.stdout + proc.stderr
    return work / "build" / "ee" / "context"


def test_context_has_every_part(context):
    for rel in ("Containerfile", "_build/requirements.txt", "_build/requirements.yml", "_build/bindep.txt",
                "_build/collections/coderops-deploy.tar.gz", "_build/bin/helm", "_build/scripts/assemble"):
        assert (context / rel).is_file(), rel


def test_python_requirements_are_pinned_as_in_requirements_txt(context, ee):
    in_context = _pins((context / "_build" / "requirements.txt").read_text().splitlines())
    assert in_context == _pins(ee["dependencies"]["python"])
    repo = _pins((REPO / "requirements.txt").read_text().splitlines())
    assert in_context, "no pinned requirement"
    for name, version in in_context.items():
        assert repo.get(name) == version, f"{name}=={version} differs from requirements.txt ({repo.get(name)})"
    # Everything the collection needs at run time besides ansible itself (ansible-core comes in
    # through the EE's own ansible_core entry, which the next test checks).
    assert set(repo) - {"ansible", "ansible-core"} <= set(in_context)


def test_ansible_core_and_runner_are_the_tested_versions(ee):
    from importlib.metadata import version

    assert ee["dependencies"]["ansible_core"]["package_pip"] == f"ansible-core=={version('ansible-core')}"
    assert ee["dependencies"]["ansible_runner"]["package_pip"] == f"ansible-runner=={version('ansible-runner')}"


def test_collection_dependencies_are_pinned_and_match_galaxy_yml(context):
    galaxy = yaml.safe_load((REPO / "galaxy.yml").read_text())
    requirements = yaml.safe_load((context / "_build" / "requirements.yml").read_text())["collections"]
    by_name = {c["name"]: c for c in requirements}
    for dep in galaxy["dependencies"]:
        assert dep in by_name, f"{dep} (a dependency in galaxy.yml) is not in the execution environment"
        assert re.fullmatch(r"==\d+\.\d+\.\d+", by_name[dep]["version"]), by_name[dep]
    # The pins are the versions the tests run with (bundled in ansible 12.3.0).
    import ansible

    installed = Path(ansible.__file__).resolve().parents[1] / "ansible_collections"
    for dep, entry in by_name.items():
        if not dep.startswith("/"):
            info = json.loads(installed.joinpath(*dep.split("."), "MANIFEST.json").read_text())
            assert entry["version"] == "==" + info["collection_info"]["version"], dep


def test_collection_tarball_is_this_collection(context):
    galaxy = yaml.safe_load((REPO / "galaxy.yml").read_text())
    with tarfile.open(context / "_build" / "collections" / "coderops-deploy.tar.gz") as tar:
        names = tar.getnames()
        manifest = json.load(tar.extractfile("MANIFEST.json"))["collection_info"]
    assert (manifest["namespace"], manifest["name"], manifest["version"]) == ("coderops", "deploy", galaxy["version"])
    for needed in ("roles/helm_release/meta/argument_specs.yml", "plugins/modules/coder_helm_release.py",
                   "playbooks/deploy_coder.yml", "playbooks/rollback_coder.yml", "playbooks/uninstall_coder.yml"):
        assert needed in names, needed
    assert not [n for n in names if n.startswith((".venv", ".testbed", ".ansible/"))], "local state in the tarball"


def test_helm_is_the_pinned_binary(context, ee):
    steps = " ".join(ee["additional_build_steps"]["append_final"])
    pinned = re.search(r'echo "([0-9a-f]{64})  /usr/local/bin/helm" \| sha256sum --check', steps)
    assert pinned, steps
    digest = hashlib.sha256((context / "_build" / "bin" / "helm").read_bytes()).hexdigest()
    assert digest == pinned[1]
    out = subprocess.run([context / "_build" / "bin" / "helm", "version", "--short"], capture_output=True, text=True)
    assert out.stdout.startswith("v3.17.2"), out.stdout + out.stderr
    containerfile = (context / "Containerfile").read_text()
    assert "COPY _build/bin/helm /usr/local/bin/helm" in containerfile
    assert f'echo "{pinned[1]}  /usr/local/bin/helm" | sha256sum --check --strict -' in containerfile
    # The collection is installed from the tarball in the galaxy stage.
    assert "COPY _build/collections/coderops-deploy.tar.gz /tmp/coderops-collections/" in containerfile
    assert "ansible-galaxy collection install" in containerfile
