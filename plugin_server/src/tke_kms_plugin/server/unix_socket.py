"""The plugin's unix socket: safe to create, owner-only, removed on exit.

Before binding: the parent directory is created 0750 if missing; a path that is not a socket (a file, a
directory, a symlink) is never touched; a socket someone still answers on means another plugin is running,
so we refuse; a socket nobody answers on is stale and is removed. gRPC binds with a restrictive umask and
the socket is chmod 0600 (0660 with --socket-group) right after, so it is never reachable by others.
"""

from __future__ import annotations

import contextlib
import errno
import grp
import os
import socket
import stat
from collections.abc import Iterator

PARENT_MODE = 0o750
PROBE_TIMEOUT = 1.0


class SocketPathError(Exception):
    """The socket path cannot be used; the message says why (exit status 1)."""


def _answers(path: str) -> bool:
    probe = socket.socket(socket.AF_UNIX, socket.SOCK_STREAM)
    probe.settimeout(PROBE_TIMEOUT)
    try:
        probe.connect(path)
    except OSError as exc:
        if exc.errno in (errno.ECONNREFUSED, errno.ENOENT):
            return False
        if isinstance(exc, TimeoutError) or exc.errno == errno.EAGAIN:
            return True  # backlog full: someone is listening
        raise SocketPathError(f"cannot probe existing socket {path}: {exc.strerror or exc}") from None
    else:
        return True
    finally:
        probe.close()


def prepare(path: str) -> None:
    """Make `path` free for a new listener, or raise SocketPathError."""
    if not os.path.isabs(path):
        raise SocketPathError(f"--unix-socket must be an absolute path, got {path!r}")
    parent = os.path.dirname(path)
    if not os.path.isdir(parent):
        try:
            os.makedirs(parent, mode=PARENT_MODE, exist_ok=True)
            os.chmod(parent, PARENT_MODE)  # makedirs' mode is filtered by the umask
        except OSError as exc:
            raise SocketPathError(f"cannot create socket directory {parent}: {exc.strerror}") from None
    try:
        st = os.lstat(path)
    except FileNotFoundError:
        return
    if not stat.S_ISSOCK(st.st_mode):
        kind = (
            "a symlink"
            if stat.S_ISLNK(st.st_mode)
            else "a directory"
            if stat.S_ISDIR(st.st_mode)
            else "a file"
        )
        raise SocketPathError(
            f"refusing to use {path}: it is {kind}, not a unix socket; remove it or pick another path"
        )
    if _answers(path):
        raise SocketPathError(
            f"another server is already listening on {path}; refusing to take over its socket"
        )
    os.unlink(path)


@contextlib.contextmanager
def restrictive_umask() -> Iterator[None]:
    """While gRPC creates the socket file: no permission bits for group or others."""
    previous = os.umask(0o177)
    try:
        yield
    finally:
        os.umask(previous)


def secure(path: str, group: str | None) -> os.stat_result:
    """chmod 0600, or chgrp + 0660 with a group; returns the socket's stat (to recognise it at exit)."""
    if group:
        try:
            gid = int(group) if group.isdigit() else grp.getgrnam(group).gr_gid
        except KeyError:
            raise SocketPathError(f"--socket-group {group!r}: no such group") from None
        os.chown(path, -1, gid)
        os.chmod(path, 0o660)
    else:
        os.chmod(path, 0o600)
    return os.lstat(path)


def remove_if_ours(path: str, ours: os.stat_result | None) -> None:
    """Unlink the socket on exit unless someone else has replaced it meanwhile."""
    if ours is None:
        return
    try:
        st = os.lstat(path)
    except FileNotFoundError:
        return
    if stat.S_ISSOCK(st.st_mode) and (st.st_dev, st.st_ino) == (ours.st_dev, ours.st_ino):
        os.unlink(path)
