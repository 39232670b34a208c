"""Unit tests of the collection's Python (imported from this checkout by tests.unit.collection)."""

from __future__ import annotations

from collections.abc import Callable
from typing import Any

import pytest

from tests.unit.collection import run_module as run_module_in_process

CREDENTIAL_VARIABLES = (
    "TENCENTCLOUD_SECRET_ID",
    "TENCENTCLOUD_SECRET_KEY",
    "TENCENTCLOUD_SECURITY_TOKEN",
    "TENCENTCLOUD_REGION",
    "TENCENTCLOUD_KMS_ENDPOINT",
    "SECRET_ID",
    "SECRET_KEY",
)


@pytest.fixture(autouse=True)
def _no_ambient_credentials(monkeypatch: pytest.MonkeyPatch) -> None:
    """Argument handling must not depend on the developer's environment."""
    for variable in CREDENTIAL_VARIABLES:
        monkeypatch.delenv(variable, raising=False)


@pytest.fixture
def run_module() -> Callable[..., dict[str, Any]]:
    """run(main, args, check=False, diff=False) -> the module's JSON result (failures included)."""
    return run_module_in_process
