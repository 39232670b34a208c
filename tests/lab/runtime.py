"""Where lab processes keep their state, free loopback ports, and deadline-bound polling."""

from __future__ import annotations

import itertools
import os
import re
import socket
import threading
import time
from collections.abc import Callable
from pathlib import Path
from typing import TypeVar

T = TypeVar("T")

# Every lab process is recorded under RUN_ROOT/pids; `python -m tests.lab.cleanup` reaps leftovers and
# unmounts anything mounted below RUN_ROOT.
RUN_ROOT = Path(os.environ.get("TKE_KMS_LAB_RUN", "/tmp/tke-kms-lab"))
PID_DIR = RUN_ROOT / "pids"
LOOPBACK = "127.0.0.1"


class LabError(RuntimeError):
    """A lab component could not be started or did not behave."""


class LabTimeout(LabError):
    """A poll ran past its deadline."""


_handed_out: set[int] = set()
_ports_lock = threading.Lock()


def free_port() -> int:
    """A loopback TCP port that is free now and not yet handed out by this process."""
    with _ports_lock:
        for _ in range(100):
            with socket.socket(socket.AF_INET, socket.SOCK_STREAM) as sock:
                sock.bind((LOOPBACK, 0))
                port = sock.getsockname()[1]
            if port not in _handed_out:
                _handed_out.add(port)
                return port
    raise LabError("no free loopback port found")


def wait_for(
    probe: Callable[[], T | None],
    *,
    timeout: float,
    what: str,
    interval: float = 0.1,
    alive: Callable[[], str | None] | None = None,
) -> T:
    """Poll `probe` until it returns a truthy value; raise LabTimeout after `timeout` seconds.

    `alive`, when given, is checked on every round and returns an error text once the thing
    we wait for can no longer succeed (its process died), so we fail fast with that text.
    """
    deadline = time.monotonic() + timeout
    last_error: Exception | None = None
    while True:
        try:
            result = probe()
        except Exception as exc:
            result, last_error = None, exc
        if result:
            return result
        if alive is not None and (death := alive()):
            raise LabError(f"{what}: {death}")
        if time.monotonic() >= deadline:
            hint = f" (last error: {last_error})" if last_error else ""
            raise LabTimeout(f"{what}: not within {timeout:.0f} s{hint}")
        time.sleep(interval)


def safe_name(text: str, limit: int = 80) -> str:
    """A file-name-safe slug of a pytest node id or a free-form name."""
    slug = re.sub(r"[^A-Za-z0-9_.-]+", "_", text).strip("_.")
    return slug[-limit:] or "lab"


def short_socket_path(name: str) -> Path:
    """A unix socket path well under the 108-byte limit (test dirs named after node ids are too deep)."""
    directory = RUN_ROOT / "sock"
    directory.mkdir(parents=True, exist_ok=True)
    return directory / f"{safe_name(name, 24)}-{os.getpid()}-{next(_socket_counter)}.sock"


_socket_counter = itertools.count(1)
