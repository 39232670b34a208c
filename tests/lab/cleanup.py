"""Reap what lab runs left behind: recorded PIDs, mounts under the lab run dir, then the networks
(bridge, veths, namespaces; tests/lab/netns.py) of labs whose owner died.

`python -m tests.lab.cleanup [--quiet]` (.ci/run calls it on exit). Only processes recorded in
RUN_ROOT/pids are touched, and only while their kernel start time still matches the record, so a
recycled PID is never killed.
"""

from __future__ import annotations

import argparse
import contextlib
import json
import os
import signal
import subprocess
import time
from pathlib import Path

from tests.lab import netns
from tests.lab.process import proc_is_live
from tests.lab.runtime import PID_DIR, RUN_ROOT


def _still_ours(record: dict) -> bool:
    return proc_is_live(record["pid"], record.get("start_time"))


def kill_recorded(pid_dir: Path = PID_DIR, grace: float = 10.0) -> list[str]:
    """SIGTERM every recorded live process, SIGKILL what is left after `grace` seconds."""
    victims: list[dict] = []
    for path in sorted(pid_dir.glob("*.json")):
        try:
            record = json.loads(path.read_text())
        except (OSError, ValueError):
            path.unlink(missing_ok=True)
            continue
        if _still_ours(record):
            with contextlib.suppress(ProcessLookupError):
                os.kill(record["pid"], signal.SIGTERM)
            victims.append(record)
        path.unlink(missing_ok=True)
    deadline = time.monotonic() + grace
    while any(_still_ours(v) for v in victims) and time.monotonic() < deadline:
        time.sleep(0.1)
    for record in victims:
        if _still_ours(record):
            with contextlib.suppress(ProcessLookupError):
                os.kill(record["pid"], signal.SIGKILL)
    return [f"{v['name']} (PID {v['pid']})" for v in victims]


def mounts_under(root: Path) -> list[Path]:
    """Mount points below `root`, deepest first (the order they must be unmounted in)."""
    found = []
    for line in Path("/proc/self/mountinfo").read_text().splitlines():
        # Field 5 is the mount point, with spaces etc. octal-escaped.
        point = Path(line.split()[4].encode().decode("unicode_escape"))
        if point == root or root in point.parents:
            found.append(point)
    return sorted(set(found), key=lambda p: len(p.parts), reverse=True)


def unmount_all(root: Path) -> list[str]:
    done = []
    for point in mounts_under(root):
        if subprocess.run(["umount", str(point)], capture_output=True, check=False).returncode != 0:
            subprocess.run(["umount", "-l", str(point)], capture_output=True, check=False)
        done.append(str(point))
    return done


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--quiet", action="store_true")
    args = parser.parse_args(argv)
    killed = kill_recorded()
    unmounted = unmount_all(RUN_ROOT.resolve()) if RUN_ROOT.exists() else []
    networks = netns.reap_orphans()
    if not args.quiet:
        print(
            f"lab cleanup: stopped {len(killed)} process(es) {killed},"
            f" unmounted {len(unmounted)} {unmounted}, deleted {len(networks)} lab network(s) {networks}"
        )
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
