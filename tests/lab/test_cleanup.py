"""The lab's safety net: recorded processes are reaped by PID, mounts under the run dir unmounted."""

from __future__ import annotations

import json
import os
import subprocess
import sys

import pytest

from tests.lab.cleanup import kill_recorded, mounts_under, unmount_all
from tests.lab.process import ManagedProcess


def sleeper(tmp_path, name: str) -> ManagedProcess:
    argv = [sys.executable, "-c", "import time; time.sleep(600)"]
    return ManagedProcess(name, argv, tmp_path / f"{name}.log", pid_dir=tmp_path / "pids")


def test_reaps_recorded_processes_and_drops_stale_records(tmp_path):
    leftover = sleeper(tmp_path, "leftover").start()
    finished = sleeper(tmp_path, "finished").start()
    record = json.loads((tmp_path / "pids" / f"{finished.pid}.json").read_text())
    finished.kill()
    # A record whose PID is gone (or recycled: other start time) must not lead to a kill.
    (tmp_path / "pids" / f"{finished.pid}.json").write_text(json.dumps(record))
    stale = {**record, "pid": os.getpid(), "start_time": "1"}
    (tmp_path / "pids" / "stale.json").write_text(json.dumps(stale))

    reaped = kill_recorded(tmp_path / "pids", grace=10)

    assert reaped == [f"leftover (PID {leftover.pid})"]
    assert leftover.stop() is not None and not leftover.running()
    assert list((tmp_path / "pids").glob("*.json")) == []


def test_stop_removes_the_pid_record_and_reports_exit(tmp_path):
    process = sleeper(tmp_path, "sleeper").start()
    assert (tmp_path / "pids" / f"{process.pid}.json").exists()
    process.stop()
    assert not (tmp_path / "pids" / f"{process.pid}.json").exists()
    assert "exited with" in process.exit_reason()


@pytest.mark.skipif(os.geteuid() != 0, reason="mounting needs root")
def test_unmounts_everything_below_the_run_dir_deepest_first(tmp_path):
    outer, inner = tmp_path / "root" / "a", tmp_path / "root" / "a" / "b"
    outer.mkdir(parents=True)
    subprocess.run(["mount", "-t", "tmpfs", "tmpfs", str(outer)], check=True)
    inner.mkdir()
    subprocess.run(["mount", "-t", "tmpfs", "tmpfs", str(inner)], check=True)
    try:
        assert mounts_under(tmp_path / "root") == [inner, outer]
        assert unmount_all(tmp_path / "root") == [str(inner), str(outer)]
        assert mounts_under(tmp_path / "root") == []
    finally:
        for point in (inner, outer):
            subprocess.run(["umount", str(point)], capture_output=True, check=False)
