"""The collection under test, imported as ansible_collections.tke.kms from this checkout, and a way to run
one of its modules' main() in-process with arguments (failed results included)."""

from __future__ import annotations

import json
import sys
from collections.abc import Callable
from pathlib import Path
from typing import Any

import pytest
from ansible.module_utils.testing import patch_module_args

REPO = Path(__file__).resolve().parents[2]
COLLECTIONS = REPO / ".collections"
if not (COLLECTIONS / "ansible_collections" / "tke" / "kms").exists():
    raise RuntimeError(
        "run `make venv` first: it links this checkout as collection tke.kms under .collections/"
    )
if str(COLLECTIONS) not in sys.path:
    sys.path.insert(0, str(COLLECTIONS))


def run_module(
    main: Callable[[], None], args: dict[str, Any], *, check: bool = False, diff: bool = False
) -> dict[str, Any]:
    """Run an Ansible module's main() and return its JSON result."""
    captured: list[str] = []
    with (
        patch_module_args(dict(args, _ansible_check_mode=check, _ansible_diff=diff)),
        pytest.MonkeyPatch.context() as patch,
    ):
        patch.setattr("sys.stdout", _Capture(captured))
        with pytest.raises(SystemExit):
            main()
    return json.loads("".join(captured))


class _Capture:
    def __init__(self, sink: list[str]) -> None:
        self.sink = sink

    def write(self, text: str) -> int:
        self.sink.append(text)
        return len(text)

    def flush(self) -> None:
        pass
