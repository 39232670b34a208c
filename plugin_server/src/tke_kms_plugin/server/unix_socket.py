"""The plugin's unix socket: safe to create, owner-only, removed on exit.

Before binding: the parent directory is created 0750 if missing; the lock file `<socket>.lock` is locked
(flock, held until the process ends), so of two plugins starting together only one goes on; a path that is
not a socket (a file, a directory, a symlink) is never touched; a socket someone still answers on means
another plugin is running, so we refuse; a socket nobody answers on is stale and is removed. gRPC binds
with a restrictive umask and the socket is chmod 0600 (0660 with --socket-group) right after, so it is never
reachable by others.

Why the lock: "is the socket stale?" and gRPC's bind are two steps, and gRPC unlinks whatever socket file is
at the path before binding. Without the lock, a plugin starting between another one's check and bind
replaces that one's socket, and the other keeps running with no socket left (orphaned).
"""

from __future__ import annotations

import contextlib
import errno
import fcntl
import grp
import os
import socket
import stat
from collections.abc import Iterator

PARENT_MODE = 0o750
PROBE_TIMEOUT = 1.0
LOCK_SUFFIX = ".lock"


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


def group_id(group: str) -> int:
    """The gid of --socket-group (a name or a number); KeyError when no such group exists."""
    return int(group) if group.isdigit() else grp.getgrnam(group).gr_gid


def ensure_parent(path: str) -> None:
    """Create the socket's directory (0750) when missing, or raise SocketPathError."""
    if not os.path.isabs(path):
        raise SocketPathError(f"--unix-socket must be an absolute path, got {path!r}")
    parent = os.path.dirname(path)
    if not os.path.isdir(parent):
        try:
            os.makedirs(parent, mode=PARENT_MODE, exist_ok=True)
            os.chmod(parent, PARENT_MODE)  # makedirs' mode is filtered by the umask
        except OSError as exc:
            raise SocketPathError(f"cannot create socket directory {parent}: {exc.strerror}") from None


class SocketLock:
    """flock on `<socket>.lock`, held from before the stale-socket check until the socket is removed."""

    def __init__(self, socket_path: str) -> None:
        self.socket_path = socket_path
        self.path = socket_path + LOCK_SUFFIX
        self._fd: int | None = None

    def acquire(self) -> None:
        """Take the lock or raise SocketPathError naming the plugin that holds it."""
        while self._fd is None:
            fd = self._open()
            try:
                fcntl.flock(fd, fcntl.LOCK_EX | fcntl.LOCK_NB)
            except BlockingIOError:
                holder = _pid_in(fd)
                os.close(fd)
                raise SocketPathError(
                    f"another tke-kms-plugin{holder} holds {self.path}: it serves (or is starting on) "
                    f"{self.socket_path}; refusing to start a second one on the same socket"
                ) from None
            # The previous holder unlinks the file when it stops: lock the file that is at the path now.
            if _same_file(fd, self.path):
                os.ftruncate(fd, 0)
                os.write(fd, f"{os.getpid()}\n".encode())
                self._fd = fd
            else:
                os.close(fd)

    def release(self) -> None:
        """Unlink the lock file while still holding it, then unlock (so nobody can lock a stale file)."""
        if self._fd is None:
            return
        if _same_file(self._fd, self.path):
            os.unlink(self.path)
        os.close(self._fd)
        self._fd = None

    def _open(self) -> int:
        try:
            return os.open(self.path, os.O_RDWR | os.O_CREAT | os.O_NOFOLLOW | os.O_CLOEXEC, 0o600)
        except OSError as exc:
            raise SocketPathError(f"cannot open lock file {self.path}: {exc.strerror}") from None


def _same_file(fd: int, path: str) -> bool:
    try:
        st = os.stat(path, follow_symlinks=False)
    except FileNotFoundError:
        return False
    mine = os.fstat(fd)
    return (st.st_dev, st.st_ino) == (mine.st_dev, mine.st_ino)


def _pid_in(fd: int) -> str:
    """The holder's pid for the message, as " (pid N)"; "" while the file has none yet."""
    content = os.pread(fd, 32, 0).decode("ascii", "replace").strip()
    return f" (pid {content})" if content.isdigit() else ""


def clear_stale(path: str) -> None:
    """Make `path` free for a new listener, or raise SocketPathError. Call with the SocketLock held."""
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


def secure(path: str, group: str | None) -> None:
    """chmod 0600, or chgrp + 0660 with a group."""
    if group:
        os.chown(path, -1, group_id(group))  # validated at start-up, before anything was created
        os.chmod(path, 0o660)
    else:
        os.chmod(path, 0o600)


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
