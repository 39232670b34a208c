"""The production tke-kms-plugin wheel ships neither the emulator nor cryptography; tke-kms-emulator (the
extra `tke-kms-plugin[emulator]`) carries both, and installed next to the plugin it fills in
tke_kms_plugin.emulator."""

from __future__ import annotations

import os
import shutil
import subprocess
import sys
import zipfile
from email.message import Message
from email.parser import Parser
from pathlib import Path

import pytest

REPO = Path(__file__).resolve().parents[2]
PLUGIN_SERVER = REPO / "plugin_server"


def pip(command: str, *args: str) -> None:
    quiet = ["--quiet", "--disable-pip-version-check", "--no-deps"]
    subprocess.run([sys.executable, "-m", "pip", command, *quiet, *args], check=True, capture_output=True)


@pytest.fixture(scope="module")
def wheels(tmp_path_factory: pytest.TempPathFactory) -> dict[str, Path]:
    """Both wheels, built from a copy of plugin_server so the checkout gets no build/ or egg-info."""
    source = tmp_path_factory.mktemp("src") / "plugin_server"
    shutil.copytree(
        PLUGIN_SERVER, source, ignore=shutil.ignore_patterns("build", "dist", "*.egg-info", "__pycache__")
    )
    out = tmp_path_factory.mktemp("wheels")
    pip("wheel", "--no-build-isolation", "--wheel-dir", str(out), str(source), str(source / "emulator"))
    (plugin,) = out.glob("tke_kms_plugin-*.whl")
    (emulator,) = out.glob("tke_kms_emulator-*.whl")
    return {"plugin": plugin, "emulator": emulator}


def names(wheel: Path) -> list[str]:
    with zipfile.ZipFile(wheel) as archive:
        return archive.namelist()


def metadata(wheel: Path) -> Message:
    with zipfile.ZipFile(wheel) as archive:
        (path,) = [n for n in archive.namelist() if n.endswith(".dist-info/METADATA")]
        return Parser().parsestr(archive.read(path).decode())


def requirement_names(meta: Message, extra: str | None = None) -> set[str]:
    found = set()
    for requirement in meta.get_all("Requires-Dist") or []:
        spec, _, marker = requirement.partition(";")
        if (extra is None) == ("extra ==" not in marker) and (extra is None or f'"{extra}"' in marker):
            found.add(spec.split("<")[0].split(">")[0].split("=")[0].strip().lower())
    return found


def test_production_wheel_has_no_emulator_and_no_cryptography(wheels: dict[str, Path]) -> None:
    files = names(wheels["plugin"])
    assert "tke_kms_plugin/server/cli.py" in files
    assert not [n for n in files if n.startswith("tke_kms_plugin/emulator")]
    meta = metadata(wheels["plugin"])
    assert "cryptography" not in requirement_names(meta)
    assert meta["Requires-Python"] == ">=3.10"
    assert requirement_names(meta, extra="emulator") == {"tke-kms-emulator"}
    entry_points = zipfile.ZipFile(wheels["plugin"]).read(
        next(n for n in files if n.endswith("entry_points.txt"))
    )
    assert b"tke-kms-emulator" not in entry_points


def test_emulator_wheel_carries_the_emulator_and_cryptography(wheels: dict[str, Path]) -> None:
    files = names(wheels["emulator"])
    assert "tke_kms_plugin/emulator/cli.py" in files
    assert "tke_kms_plugin/__init__.py" not in files  # the plugin's package, not overwritten
    meta = metadata(wheels["emulator"])
    assert "cryptography" in requirement_names(meta)
    plugin_meta = metadata(wheels["plugin"])
    assert f"tke-kms-emulator=={meta['Version']}" in " ".join(plugin_meta.get_all("Requires-Dist") or [])


def test_installed_together_the_emulator_imports(wheels: dict[str, Path], tmp_path: Path) -> None:
    target = tmp_path / "site"
    pip("install", "--no-index", "--target", str(target), *map(str, wheels.values()))
    probe = (
        "import tke_kms_plugin.emulator.cli as c, tke_kms_plugin as p; print(c.__file__); print(p.__file__)"
    )
    env = dict(os.environ, PYTHONPATH=str(target))
    shown = subprocess.run(
        [sys.executable, "-c", probe], env=env, capture_output=True, text=True, check=True
    ).stdout.split()
    assert all(path.startswith(str(target)) for path in shown), shown
