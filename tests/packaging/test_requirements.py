"""requirements.txt names every third-party package the collection's controller-side code imports, with ranges
that the pinned development versions (requirements-dev.txt, what the tests run with) satisfy."""

from __future__ import annotations

import ast
import sys
from importlib.metadata import packages_distributions
from pathlib import Path

from packaging.requirements import Requirement
from packaging.utils import canonicalize_name

REPO = Path(__file__).resolve().parents[2]


def requirements(path: Path) -> dict[str, Requirement]:
    lines = (line.split("#", 1)[0].strip() for line in path.read_text().splitlines())
    parsed = (Requirement(line) for line in lines if line)
    return {canonicalize_name(r.name): r for r in parsed}


def third_party_imports() -> set[str]:
    """Top-level modules imported by the collection's plugins that are neither stdlib nor the collection."""
    names: set[str] = set()
    for source in (REPO / "plugins").rglob("*.py"):
        for node in ast.walk(ast.parse(source.read_text())):
            if isinstance(node, ast.Import):
                names.update(alias.name.split(".")[0] for alias in node.names)
            elif isinstance(node, ast.ImportFrom) and node.module and node.level == 0:
                names.add(node.module.split(".")[0])
    return {
        n
        for n in names
        if n not in sys.stdlib_module_names and n not in {"ansible_collections", "__future__"}
    }


def test_every_imported_package_is_required() -> None:
    required = requirements(REPO / "requirements.txt")
    distributions = packages_distributions()
    missing = {
        module: distributions.get(module)
        for module in third_party_imports()
        if not any(canonicalize_name(d) in required for d in distributions.get(module, []))
    }
    assert not missing, f"imported by plugins/ but not in requirements.txt: {missing}"


def test_development_pins_satisfy_the_ranges() -> None:
    pins = requirements(REPO / "requirements-dev.txt")
    for name, requirement in requirements(REPO / "requirements.txt").items():
        assert name in pins, f"{name}: in requirements.txt but not pinned in requirements-dev.txt"
        (pin,) = pins[name].specifier
        assert requirement.specifier.contains(pin.version), f"{name} {pin.version} not in {requirement}"
