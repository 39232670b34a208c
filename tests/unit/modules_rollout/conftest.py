"""Helpers for the rollout modules' tests: the sample manifests."""

from __future__ import annotations

from collections.abc import Callable
from pathlib import Path

import pytest

import tests.unit.collection  # noqa: F401 - puts the collection on sys.path

MANIFESTS = Path(__file__).parent / "manifests"


@pytest.fixture
def manifest_text() -> Callable[[str], str]:
    def read(version: str) -> str:
        return (MANIFESTS / f"kube-apiserver-{version}.yaml").read_text()

    return read
