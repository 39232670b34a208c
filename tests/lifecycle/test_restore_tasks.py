"""The restore tasks never write through ansible.builtin.copy with remote_src: it first writes a tmpXXXXXXXX
file (no leading dot) next to the target, and in /etc/kubernetes/manifests kubelet runs every such file as a
static pod. They use tke.kms.restore_file (a dot-prefixed temporary file, see its unit tests)."""

from __future__ import annotations

from pathlib import Path
from typing import Any

import pytest
import yaml

REPO = Path(__file__).resolve().parents[2]
RESTORE_TASKS = ("roles/apiserver/tasks/restore.yml", "roles/kms_plugin/tasks/rollback.yml")


def tasks_of(path: str) -> list[dict[str, Any]]:
    return yaml.safe_load((REPO / path).read_text())


@pytest.mark.parametrize("path", RESTORE_TASKS)
def test_no_restore_copies_through_a_visible_temporary_file(path: str) -> None:
    copies = [
        task["name"]
        for task in tasks_of(path)
        if any(key in task for key in ("ansible.builtin.copy", "copy", "ansible.legacy.copy"))
    ]
    assert copies == [], f"{path}: {copies} restore with copy; use tke.kms.restore_file"


@pytest.mark.parametrize("path", RESTORE_TASKS)
def test_files_are_put_back_with_restore_file(path: str) -> None:
    restores = [task for task in tasks_of(path) if "tke.kms.restore_file" in task]
    assert restores, f"{path} puts nothing back with tke.kms.restore_file"
