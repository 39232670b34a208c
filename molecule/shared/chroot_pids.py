"""List (or stop) the processes whose root directory is a given chroot: what a test started inside it.

Usage: chroot_pids.py [--kill] CHROOT_DIR. Stops them with SIGTERM, then SIGKILL after 10 s, by PID.
"""

from __future__ import annotations

import argparse
import os
import signal
import time
from pathlib import Path


def pids_in(root: Path) -> list[int]:
    found = []
    for entry in Path("/proc").iterdir():
        if not entry.name.isdigit():
            continue
        try:
            if Path(os.readlink(entry / "root")).resolve() == root:
                found.append(int(entry.name))
        except OSError:
            continue
    return found


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--kill", action="store_true")
    parser.add_argument("root", type=Path)
    args = parser.parse_args()
    root = args.root.resolve()
    pids = pids_in(root)
    if args.kill:
        for pid in pids:
            os.kill(pid, signal.SIGTERM)
        deadline = time.monotonic() + 10
        while pids_in(root) and time.monotonic() < deadline:
            time.sleep(0.1)
        for pid in pids_in(root):
            os.kill(pid, signal.SIGKILL)
    print(" ".join(str(pid) for pid in pids))


if __name__ == "__main__":
    main()
