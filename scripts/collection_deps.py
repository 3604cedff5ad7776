"""Make the Galaxy tarballs that antsibull-nox.toml's collection sources name, from PyPI's `ansible`.

Galaxy cannot be reached from the build machines, so antsibull-nox cannot download the collection's
dependencies (kubernetes.core, and community.postgresql for the integration targets). The PyPI
package `ansible` bundles them: this script reads every source of the form

    build/collection-deps/ansible-<ansible version>/<namespace>-<name>-<version>.tar.gz

from antsibull-nox.toml (collection_sources and collection_sources_per_ansible), downloads that
`ansible` wheel once with pip (no dependencies), checks that it bundles exactly that collection
version, and packs the collection's installed tree (MANIFEST.json and FILES.json at the top, as
Galaxy's artifacts have them) into the tarball. antsibull-nox then "downloads" it with
`ansible-galaxy collection download`, which accepts a local tarball.

Usage: scripts/collection_deps.py [REPO]   (run by scripts/nox.sh; does nothing when all exist)
"""

from __future__ import annotations

import io
import json
import re
import subprocess
import sys
import tarfile
import tempfile
import tomllib
import zipfile
from pathlib import Path

SOURCE = re.compile(
    r"^build/collection-deps/ansible-(?P<ansible>[0-9.]+)/"
    r"(?P<namespace>[a-z0-9_]+)-(?P<name>[a-z0-9_]+)-(?P<version>[0-9][0-9A-Za-z.+-]*)\.tar\.gz$"
)


def wanted_sources(config: dict) -> set[str]:
    sources = set()
    tables = [config.get("collection_sources", {})]
    tables += list(config.get("collection_sources_per_ansible", {}).values())
    for table in tables:
        for name, source in table.items():
            path = source if isinstance(source, str) else source["source"]
            match = SOURCE.match(path)
            if not match:
                sys.exit(f"collection_deps.py: {name} = {path!r}: not build/collection-deps/ansible-V/NS-NAME-V.tar.gz")
            if f"{match['namespace']}.{match['name']}" != name:
                sys.exit(f"collection_deps.py: {path} does not hold {name}")
            sources.add(path)
    return sources


def download_wheel(ansible_version: str, directory: Path) -> Path:
    subprocess.run(
        [sys.executable, "-m", "pip", "download", "--quiet", "--no-deps", "--only-binary=:all:",
         "--python-version", "3.12", "--dest", str(directory), f"ansible=={ansible_version}"],
        check=True,
    )
    (wheel,) = directory.glob(f"ansible-{ansible_version}-*.whl")
    return wheel


def pack(wheel: zipfile.ZipFile, namespace: str, name: str, version: str, tarball: Path) -> None:
    prefix = f"ansible_collections/{namespace}/{name}/"
    members = [m for m in wheel.infolist() if m.filename.startswith(prefix) and not m.is_dir()]
    manifest = json.loads(wheel.read(prefix + "MANIFEST.json"))["collection_info"]
    if manifest["version"] != version:
        sys.exit(f"collection_deps.py: {wheel.filename} bundles {namespace}.{name} {manifest['version']},"
                 f" not {version}: fix antsibull-nox.toml")
    tarball.parent.mkdir(parents=True, exist_ok=True)
    partial = tarball.with_name(tarball.name + ".partial")
    directories = {str(Path(m.filename[len(prefix):]).parent) for m in members} - {"."}
    directories |= {str(parent) for d in directories for parent in Path(d).parents} - {"."}
    with tarfile.open(partial, "w:gz") as tar:
        # Directory entries too: ansible-galaxy's installer looks each directory of FILES.json up.
        for directory in sorted(directories):
            info = tarfile.TarInfo(directory)
            info.type = tarfile.DIRTYPE
            info.mode = 0o755
            tar.addfile(info)
        for member in sorted(members, key=lambda m: m.filename):
            info = tarfile.TarInfo(member.filename[len(prefix):])
            info.size = member.file_size
            info.mode = 0o644
            info.mtime = 0
            tar.addfile(info, io.BytesIO(wheel.read(member)))
    partial.rename(tarball)
    print(f"collection_deps.py: {tarball} ({len(members)} files, from {Path(wheel.filename).name})")


def main() -> None:
    repo = Path(sys.argv[1] if len(sys.argv) > 1 else Path(__file__).resolve().parent.parent)
    config = tomllib.loads((repo / "antsibull-nox.toml").read_text())
    missing: dict[str, list[re.Match]] = {}
    for source in sorted(wanted_sources(config)):
        if not (repo / source).is_file():
            match = SOURCE.match(source)
            missing.setdefault(match["ansible"], []).append(match)
    for ansible_version, matches in sorted(missing.items()):
        with tempfile.TemporaryDirectory(prefix="coderops-collection-deps-") as tmp:
            with zipfile.ZipFile(download_wheel(ansible_version, Path(tmp))) as wheel:
                for match in matches:
                    pack(wheel, match["namespace"], match["name"], match["version"], repo / match.group(0))


if __name__ == "__main__":
    main()
