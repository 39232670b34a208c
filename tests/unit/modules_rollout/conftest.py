"""Helpers for the rollout modules' tests: import the collection, run a module's main() with arguments."""

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

MANIFESTS = Path(__file__).parent / "manifests"


class ModuleExit(Exception):
    def __init__(self, result: dict[str, Any]) -> None:
        super().__init__(result.get("msg", ""))
        self.result = result


def run_module(
    main: Callable[[], None], args: dict[str, Any], *, check: bool = False, diff: bool = False
) -> dict:
    """Run an Ansible module's main() in-process and return its JSON result (failed results too)."""
    full = dict(args, _ansible_check_mode=check, _ansible_diff=diff)
    with patch_module_args(full), pytest.MonkeyPatch.context() as patch:
        out: list[str] = []
        patch.setattr("sys.stdout", _Capture(out))
        with pytest.raises(SystemExit):
            main()
    return json.loads("".join(out))


class _Capture:
    def __init__(self, sink: list[str]) -> None:
        self.sink = sink

    def write(self, text: str) -> int:
        self.sink.append(text)
        return len(text)

    def flush(self) -> None:
        pass


@pytest.fixture
def manifest_text() -> Callable[[str], str]:
    def read(version: str) -> str:
        return (MANIFESTS / f"kube-apiserver-{version}.yaml").read_text()

    return read
