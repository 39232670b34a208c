"""restore_file: a backup goes back with its content and mode through a dotfile in the target's directory, so
kubelet (which runs every non-dot file of its manifests directory) never sees a stray file."""

from __future__ import annotations

import os
import stat
from collections.abc import Callable
from pathlib import Path
from typing import Any

import pytest
from ansible_collections.tke.kms.plugins.modules import restore_file

MANIFEST = "apiVersion: v1\nkind: Pod\nmetadata:\n  name: kube-apiserver\n"
CHANGED = MANIFEST + "  annotations: {tke.kms/encryption-config-sha256: abc}\n"


@pytest.fixture
def layout(tmp_path: Path) -> tuple[Path, Path]:
    """A manifests directory with a changed manifest, and a backup of the previous one elsewhere."""
    manifests, backups = tmp_path / "manifests", tmp_path / "backups"
    manifests.mkdir()
    backups.mkdir()
    dest = manifests / "kube-apiserver.yaml"
    dest.write_text(CHANGED)
    dest.chmod(0o644)
    src = backups / "kube-apiserver.yaml.20261207T101500.000001"
    src.write_text(MANIFEST)
    src.chmod(0o600)
    return src, dest


def mode_of(path: Path) -> int:
    return stat.S_IMODE(path.stat().st_mode)


def test_content_and_mode_come_back(run_module: Callable[..., dict], layout: tuple[Path, Path]) -> None:
    src, dest = layout
    result = run_module(restore_file.main, dict(src=str(src), dest=str(dest)))
    assert result["changed"] is True and result["mode"] == "0600"
    assert dest.read_text() == MANIFEST and mode_of(dest) == 0o600
    assert sorted(p.name for p in dest.parent.iterdir()) == ["kube-apiserver.yaml"]

    again = run_module(restore_file.main, dict(src=str(src), dest=str(dest)))
    assert again["changed"] is False


def test_given_mode_wins_over_the_backups(run_module: Callable[..., dict], layout: tuple[Path, Path]) -> None:
    src, dest = layout
    result = run_module(
        restore_file.main, dict(src=str(src), dest=str(dest), mode="0640", owner="0", group="0")
    )
    assert result["changed"] is True
    assert mode_of(dest) == 0o640 and dest.read_text() == MANIFEST


def test_a_mode_change_alone_is_a_change(run_module: Callable[..., dict], layout: tuple[Path, Path]) -> None:
    src, dest = layout
    dest.write_text(MANIFEST)
    result = run_module(restore_file.main, dict(src=str(src), dest=str(dest)))
    assert result["changed"] is True and mode_of(dest) == 0o600


def test_only_dotfiles_appear_next_to_the_target_while_it_is_written(
    run_module: Callable[..., dict], layout: tuple[Path, Path], monkeypatch: pytest.MonkeyPatch
) -> None:
    """The directory is listed at the last moment before the rename, when the temporary file is complete."""
    src, dest = layout
    seen: list[list[str]] = []
    real_replace = os.replace

    def listing_replace(source: Any, target: Any) -> None:
        if os.path.dirname(os.fspath(target)) == str(dest.parent):
            seen.append(sorted(os.listdir(dest.parent)))
        real_replace(source, target)

    monkeypatch.setattr(os, "replace", listing_replace)
    run_module(restore_file.main, dict(src=str(src), dest=str(dest)))
    assert len(seen) == 1, seen
    strays = [name for name in seen[0] if name != "kube-apiserver.yaml" and not name.startswith(".")]
    assert strays == [] and len(seen[0]) == 2, seen  # the target and exactly one dot-prefixed temporary file
    assert sorted(os.listdir(dest.parent)) == ["kube-apiserver.yaml"]


def test_check_mode_reports_and_changes_nothing(
    run_module: Callable[..., dict], layout: tuple[Path, Path]
) -> None:
    src, dest = layout
    result = run_module(restore_file.main, dict(src=str(src), dest=str(dest)), check=True, diff=True)
    assert result["changed"] is True
    assert result["diff"]["before"] == CHANGED and result["diff"]["after"] == MANIFEST
    assert dest.read_text() == CHANGED and mode_of(dest) == 0o644


def test_a_missing_target_is_created(run_module: Callable[..., dict], layout: tuple[Path, Path]) -> None:
    src, dest = layout
    dest.unlink()
    result = run_module(restore_file.main, dict(src=str(src), dest=str(dest)))
    assert result["changed"] is True and dest.read_text() == MANIFEST


@pytest.mark.parametrize(
    ("change", "message"),
    [
        (
            dict(src="/nonexistent/backup"),
            "the backup /nonexistent/backup does not exist; nothing was restored",
        ),
        (dict(mode="rw-r--r--"), "mode 'rw-r--r--' is not an octal file mode such as 0600"),
        (dict(mode="0999"), "is not an octal file mode"),
        (dict(owner="no-such-user-tke"), "user no-such-user-tke does not exist on this master"),
        (dict(dest="/nonexistent/dir/kube-apiserver.yaml"), "the directory of /nonexistent/dir/"),
    ],
)
def test_bad_input_fails_and_leaves_the_target_alone(
    run_module: Callable[..., dict], layout: tuple[Path, Path], change: dict[str, str], message: str
) -> None:
    src, dest = layout
    result = run_module(restore_file.main, dict(dict(src=str(src), dest=str(dest)), **change))
    assert result["failed"] is True and message in result["msg"], result
    assert dest.read_text() == CHANGED and mode_of(dest) == 0o644
    assert sorted(p.name for p in dest.parent.iterdir()) == ["kube-apiserver.yaml"]


def test_content_kept_in_memory_is_restored_and_never_returned(
    run_module: Callable[..., dict], tmp_path: Path
) -> None:
    dest = tmp_path / "credentials"
    dest.write_text("[default]\nsecret_key = NEW-secret\n")
    dest.chmod(0o644)
    previous = "[default]\nsecret_key = OLD-secret-value\n"
    result = run_module(restore_file.main, dict(content=previous, dest=str(dest), mode="0600"), diff=True)
    assert result["changed"] is True
    assert dest.read_text() == previous and mode_of(dest) == 0o600
    assert "OLD-secret-value" not in repr(result)  # the argument is no_log: masked in every output
    assert sorted(os.listdir(tmp_path)) == ["credentials"]


def test_content_needs_a_mode(run_module: Callable[..., dict], tmp_path: Path) -> None:
    result = run_module(restore_file.main, dict(content="x", dest=str(tmp_path / "f")))
    assert result["failed"] is True and "mode" in result["msg"]
    assert not (tmp_path / "f").exists()
