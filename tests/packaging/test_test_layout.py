"""tests/unit/ holds only tests that need no lab; those that do are in tests/e2e/ and the lab suites."""

from __future__ import annotations

import re
from pathlib import Path

UNIT = Path(__file__).resolve().parents[1] / "unit"
LAB_MARK = re.compile(r"pytest\.mark\.(e2e|lab_masters|reliability)\b")


def test_no_unit_test_needs_the_lab() -> None:
    tests = sorted(UNIT.rglob("test_*.py"))
    marked = [str(path.relative_to(UNIT)) for path in tests if LAB_MARK.search(path.read_text())]
    assert marked == [], f"move these out of tests/unit/ (to tests/e2e/ or a lab suite): {marked}"
