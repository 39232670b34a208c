# Copyright (c) tke.kms contributors
# Apache License 2.0 (see https://www.apache.org/licenses/LICENSE-2.0)
"""Atomic file replacement and backups for the files the rollout edits on masters.

PRIVATE to the collection. Standard library only.

Temporary files are created next to the target with a leading dot: kubelet ignores dotfiles in its
static-pod directory, and a rename within one directory is atomic. Backups go to a separate directory that
must not be the manifests directory or inside it: kubelet would run a backup of a pod manifest as a pod.
"""

from __future__ import annotations

import os
import shutil
import stat
import tempfile
import time
import typing as t

from ansible_collections.tke.kms.plugins.module_utils._errors import InvalidValue


def read_text(path: str) -> t.Optional[str]:
    """The file's text, None if it does not exist."""
    try:
        with open(path, encoding="utf-8") as handle:
            return handle.read()
    except FileNotFoundError:
        return None


NEW_FILE_MODE = 0o600


def atomic_write(
    path: str,
    data: t.Union[str, bytes],
    mode: t.Optional[int] = None,
    owner: t.Optional[t.Tuple[int, int]] = None,
) -> None:
    """Replace path with data (str is written as UTF-8); readers see the old file or the new one, never part.

    The content goes to a dotfile next to the target (kubelet ignores dotfiles), is fsynced, renamed over the
    target and the directory fsynced, so a crash leaves one complete version. mode None keeps the existing
    file's mode (NEW_FILE_MODE for a new file); the content is never visible with looser permissions than
    that. owner (uid, gid) is applied when running as root.
    """
    content = data.encode("utf-8") if isinstance(data, str) else data
    if mode is None:
        mode = _existing_mode(path)
    directory = os.path.dirname(os.path.abspath(path))
    fd, tmp = tempfile.mkstemp(prefix=".tke-kms-", dir=directory)
    try:
        os.fchmod(fd, mode)
        if owner is not None and os.geteuid() == 0:
            os.fchown(fd, owner[0], owner[1])
        with os.fdopen(fd, "wb") as handle:
            handle.write(content)
            handle.flush()
            os.fsync(handle.fileno())
        os.replace(tmp, path)
    except BaseException:
        if os.path.exists(tmp):
            os.unlink(tmp)
        raise
    dir_fd = os.open(directory, os.O_RDONLY)
    try:
        os.fsync(dir_fd)
    finally:
        os.close(dir_fd)


def _existing_mode(path: str) -> int:
    try:
        return stat.S_IMODE(os.stat(path).st_mode)
    except FileNotFoundError:
        return NEW_FILE_MODE


def ensure_backup_dir(backup_dir: str, protected_dirs: t.Sequence[str]) -> str:
    """Create backup_dir (0700); refuse one inside a directory kubelet reads manifests from."""
    backup_dir = os.path.realpath(backup_dir)
    for directory in protected_dirs:
        protected = os.path.realpath(directory)
        if backup_dir == protected or backup_dir.startswith(protected.rstrip("/") + "/"):
            raise InvalidValue(
                "backup_dir %s is inside %s; kubelet would run a backed-up manifest there as a pod, choose a "
                "directory outside it" % (backup_dir, protected)
            )
    os.makedirs(backup_dir, mode=0o700, exist_ok=True)
    return backup_dir


def backup(path: str, backup_dir: str) -> str:
    """Copy path (content, mode, owner) to backup_dir/<name>.<timestamp>; returns the copy's path."""
    stamp = time.strftime("%Y%m%dT%H%M%S", time.gmtime()) + ".%06d" % (time.time() % 1 * 1e6)
    target = os.path.join(backup_dir, "%s.%s" % (os.path.basename(path), stamp))
    shutil.copy2(path, target)
    stat = os.stat(path)
    if os.geteuid() == 0:
        os.chown(target, stat.st_uid, stat.st_gid)
    return target
