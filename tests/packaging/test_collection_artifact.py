"""The collection artifact as `ansible-galaxy collection build` makes it: what an installer needs is in it,
and nothing a development tree accumulates (build output, egg-info, caches, virtualenvs, lab state) is."""

from __future__ import annotations

import shutil
import subprocess
import sys
import tarfile
from pathlib import Path

import pytest

REPO = Path(__file__).resolve().parents[2]
ANSIBLE_GALAXY = Path(sys.executable).parent / "ansible-galaxy"

REQUIRED = [
    "LICENSE",
    "README.md",
    "requirements.txt",
    "bindep.txt",
    "meta/execution-environment.yml",
    "meta/runtime.yml",
    "changelogs/config.yaml",
    "changelogs/changelog.yaml",
    # systemd mode builds the plugin's wheel from these, inside the installed collection's copy
    "plugin_server/pyproject.toml",
    "plugin_server/README.md",
    "plugin_server/src/tke_kms_plugin/server/cli.py",
    "plugin_server/Dockerfile",
    "plugin_server/emulator/pyproject.toml",
]

# What a working tree accumulates: `make venv`, wheel builds, pytest, ruff, the benchmarks.
LITTER = [
    ".venv/bin/python",
    ".collections/ansible_collections/README",
    ".pytest_cache/v/cache/nodeids",
    ".ruff_cache/0.17/x",
    ".hypothesis/examples/x",
    "plugin_server/build/lib/tke_kms_plugin/__init__.py",
    "plugin_server/dist/tke_kms_plugin-0.1.0-py3-none-any.whl",
    "plugin_server/src/tke_kms_plugin.egg-info/PKG-INFO",
    "plugin_server/emulator/build/lib/x.py",
    "plugin_server/emulator/dist/tke_kms_emulator-0.1.0-py3-none-any.whl",
    "plugin_server/emulator/src/tke_kms_emulator.egg-info/PKG-INFO",
    "plugin_server/src/tke_kms_plugin/__pycache__/cli.cpython-311.pyc",
    "tests/__pycache__/conftest.cpython-311-pytest-9.2.0.pyc",
    "bench/results/run.json",
    "tests/lab/.state/masters.json",
    "tke-kms-0.0.9.tar.gz",
]
FORBIDDEN_PARTS = {
    ".venv",
    ".collections",
    ".pytest_cache",
    ".ruff_cache",
    ".hypothesis",
    "__pycache__",
    "build",
    "dist",
    "results",
    ".state",
}


def tracked_files() -> list[str]:
    listed = subprocess.run(
        ["git", "ls-files", "-z", "--cached", "--others", "--exclude-standard"],
        cwd=REPO,
        capture_output=True,
        check=True,
    ).stdout.decode()
    return [name for name in listed.split("\0") if name and (REPO / name).is_file()]


@pytest.fixture(scope="module")
def artifact_names(tmp_path_factory: pytest.TempPathFactory) -> list[str]:
    """Build from a copy of the checkout with a development tree's litter planted in it."""
    tree = tmp_path_factory.mktemp("tree")
    for name in tracked_files():
        (tree / name).parent.mkdir(parents=True, exist_ok=True)
        shutil.copy2(REPO / name, tree / name)
    for name in LITTER:
        (tree / name).parent.mkdir(parents=True, exist_ok=True)
        (tree / name).write_text("litter\n")
    (tree / ".collections/ansible_collections/tke").mkdir(parents=True)
    (tree / ".collections/ansible_collections/tke/kms").symlink_to("../../..")
    out = tmp_path_factory.mktemp("out")
    subprocess.run(
        [str(ANSIBLE_GALAXY), "collection", "build", "--output-path", str(out), str(tree)],
        check=True,
        capture_output=True,
    )
    (built,) = out.glob("tke-kms-*.tar.gz")
    with tarfile.open(built) as tar:
        return [member.name.removeprefix("./") for member in tar.getmembers() if member.isfile()]


def test_artifact_has_what_an_install_needs(artifact_names: list[str]) -> None:
    missing = [name for name in REQUIRED if name not in artifact_names]
    assert not missing, f"missing from the collection artifact: {missing}"


def test_artifact_has_no_build_output_caches_or_lab_state(artifact_names: list[str]) -> None:
    litter = [
        name
        for name in artifact_names
        if FORBIDDEN_PARTS.intersection(Path(name).parts[:-1])
        or name.endswith((".pyc", ".whl", ".tar.gz"))
        or ".egg-info" in name
    ]
    # tests/lab/build holds the lab's build scripts (source), not build output.
    litter = [name for name in litter if not name.startswith("tests/lab/build/")]
    assert not litter, f"generated or local files in the collection artifact: {litter}"


def test_license_is_the_full_apache_text(artifact_names: list[str]) -> None:
    text = (REPO / "LICENSE").read_text()
    assert "Apache License" in text and "Version 2.0, January 2004" in text
    assert "END OF TERMS AND CONDITIONS" in text
