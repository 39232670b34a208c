"""_files.atomic_write: the one file writer of the collection (dotfile next to the target, mode kept)."""

from __future__ import annotations

import os
import stat
from pathlib import Path

import pytest
from ansible_collections.tke.kms.plugins.module_utils import _files
from ansible_collections.tke.kms.plugins.module_utils._files import NEW_FILE_MODE, atomic_write


def mode_of(path: Path) -> int:
    return stat.S_IMODE(path.stat().st_mode)


def test_text_is_written_as_utf8_and_bytes_as_they_are(tmp_path: Path) -> None:
    atomic_write(str(tmp_path / "text"), "schlüssel\n")
    atomic_write(str(tmp_path / "raw"), b"\x00\xff")
    assert (tmp_path / "text").read_bytes() == "schlüssel\n".encode()
    assert (tmp_path / "raw").read_bytes() == b"\x00\xff"


def test_a_new_file_is_private_and_an_existing_file_keeps_its_mode(tmp_path: Path) -> None:
    new, existing = tmp_path / "new", tmp_path / "existing"
    atomic_write(str(new), "x")
    existing.write_text("old")
    existing.chmod(0o640)
    atomic_write(str(existing), "new")
    assert (mode_of(new), NEW_FILE_MODE) == (0o600, 0o600)
    assert (mode_of(existing), existing.read_text()) == (0o640, "new")


def test_an_explicit_mode_and_owner_apply(tmp_path: Path) -> None:
    path = tmp_path / "file"
    path.write_text("old")
    path.chmod(0o600)
    atomic_write(str(path), "new", 0o644, owner=(1234, 4321))
    assert mode_of(path) == 0o644
    if os.geteuid() == 0:
        assert (path.stat().st_uid, path.stat().st_gid) == (1234, 4321)


def test_the_content_is_renamed_from_a_private_dotfile_next_to_the_target(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    renamed: list[tuple[str, int, bytes]] = []
    real_replace = os.replace

    def replace(source: str, target: str) -> None:
        renamed.append((source, mode_of(Path(source)), Path(source).read_bytes()))
        real_replace(source, target)

    monkeypatch.setattr(_files.os, "replace", replace)
    atomic_write(str(tmp_path / "kube-apiserver.yaml"), "spec", 0o600)
    [(source, mode, content)] = renamed
    assert os.path.dirname(source) == str(tmp_path)
    assert os.path.basename(source).startswith(".")  # kubelet ignores dotfiles in its manifest directory
    assert (mode, content) == (0o600, b"spec")
    assert sorted(os.listdir(tmp_path)) == ["kube-apiserver.yaml"]


def test_a_failed_write_leaves_the_target_byte_identical_and_no_temporary_file(tmp_path: Path) -> None:
    path = tmp_path / "file"
    path.write_bytes(b"before\n")
    with pytest.raises(TypeError):
        atomic_write(str(path), 42)  # type: ignore[arg-type]
    assert path.read_bytes() == b"before\n"
    assert os.listdir(tmp_path) == ["file"]
