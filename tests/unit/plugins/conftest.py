"""Unit tests of the collection's Python: import it as ansible_collections.tke.kms, run modules in-process."""

from __future__ import annotations

import json
import sys
from collections.abc import Callable
from pathlib import Path
from typing import Any

import pytest
from ansible.module_utils.testing import patch_module_args

REPO = Path(__file__).resolve().parents[3]
COLLECTIONS = REPO / ".collections"
if not (COLLECTIONS / "ansible_collections" / "tke" / "kms").exists():
    raise RuntimeError(
        "run `make venv` first: it links this checkout as collection tke.kms under .collections/"
    )
if str(COLLECTIONS) not in sys.path:
    sys.path.insert(0, str(COLLECTIONS))

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

    def run(
        main: Callable[[], None], args: dict[str, Any], *, check: bool = False, diff: bool = False
    ) -> dict:
        captured: list[str] = []
        with (
            patch_module_args(dict(args, _ansible_check_mode=check, _ansible_diff=diff)),
            pytest.MonkeyPatch.context() as patch,
        ):
            patch.setattr("sys.stdout", _Capture(captured))
            with pytest.raises(SystemExit):
                main()
        return json.loads("".join(captured))

    return run


class _Capture:
    def __init__(self, sink: list[str]) -> None:
        self.sink = sink

    def write(self, text: str) -> int:
        self.sink.append(text)
        return len(text)

    def flush(self) -> None:
        pass
