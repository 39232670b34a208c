"""The `--state FILE`: one JSON document, replaced atomically, owner-only (it holds key material)."""

from __future__ import annotations

import json
import os
from pathlib import Path
from typing import Any


class StateFileError(Exception):
    """The state file exists but cannot be used; the message says which file and why."""


def load(path: Path) -> dict[str, Any] | None:
    """The saved document, or None if the file does not exist yet."""
    try:
        text = path.read_text(encoding="utf-8")
    except FileNotFoundError:
        return None
    except OSError as err:
        raise StateFileError(f"cannot read emulator state file {path}: {err}") from err
    try:
        document = json.loads(text)
    except ValueError as err:
        raise StateFileError(f"emulator state file {path} is not valid JSON: {err}") from err
    if not isinstance(document, dict):
        raise StateFileError(f"emulator state file {path} does not hold a JSON object")
    return document


def save(path: Path, document: dict[str, Any]) -> None:
    """Write to a private temporary file next to `path`, fsync it, then rename it over `path`."""
    data = json.dumps(document, indent=1, sort_keys=True).encode("utf-8")
    temporary = path.with_name(f".{path.name}.{os.getpid()}.tmp")
    fd = os.open(temporary, os.O_WRONLY | os.O_CREAT | os.O_TRUNC, 0o600)
    with os.fdopen(fd, "wb") as file:
        os.fchmod(fd, 0o600)  # the file may have existed with wider permissions
        file.write(data)
        file.flush()
        os.fsync(fd)
    os.replace(temporary, path)
    directory = os.open(path.parent, os.O_RDONLY)
    try:
        os.fsync(directory)
    finally:
        os.close(directory)
