# Copyright (c) tke.kms contributors
# Apache License 2.0 (see https://www.apache.org/licenses/LICENSE-2.0)
"""Whether a unix socket exists, which one it is, and whether something accepts connections on it.

PRIVATE to the collection. Standard library only.
"""

from __future__ import annotations

import os
import socket
import stat
import typing as t


def socket_identity(path: str) -> t.Optional[t.Tuple[int, int]]:
    """(inode, mtime) of the socket file at path, None if there is no socket: a new server makes a new one."""
    try:
        st = os.stat(path)
    except OSError:
        return None
    return (st.st_ino, st.st_mtime_ns) if stat.S_ISSOCK(st.st_mode) else None


def socket_accepts(path: str, timeout: float = 2.0) -> bool:
    client = socket.socket(socket.AF_UNIX, socket.SOCK_STREAM)
    client.settimeout(timeout)
    try:
        client.connect(path)
    except OSError:
        return False
    finally:
        client.close()
    return True
