"""One lab process: its own log file, a PID record for cleanup, stopped by its PID only."""

from __future__ import annotations

import json
import os
import signal
import subprocess
import time
from collections.abc import Mapping, Sequence
from pathlib import Path

from tests.lab.runtime import PID_DIR, LabError


def proc_start_time(pid: int) -> str | None:
    """The kernel's start time of `pid` (field 22 of /proc/PID/stat): tells a recycled PID apart."""
    try:
        stat = Path(f"/proc/{pid}/stat").read_text()
    except OSError:
        return None
    # The command name (field 2) may contain spaces; fields after it are plain.
    return stat.rsplit(")", 1)[1].split()[19]


def proc_is_live(pid: int, start_time: str | None) -> bool:
    """`pid` is still the process recorded with `start_time`, and not a zombie."""
    try:
        fields = Path(f"/proc/{pid}/stat").read_text().rsplit(")", 1)[1].split()
    except OSError:
        return False
    return start_time is not None and fields[19] == start_time and fields[0] != "Z"


class ManagedProcess:
    """A child process whose stdout and stderr go to `log_path` (appended across restarts)."""

    def __init__(
        self,
        name: str,
        argv: Sequence[str | os.PathLike[str]],
        log_path: Path,
        *,
        env: Mapping[str, str] | None = None,
        cwd: Path | None = None,
        pid_dir: Path = PID_DIR,
    ) -> None:
        self.name = name
        self.argv = [str(arg) for arg in argv]
        self.log_path = Path(log_path)
        self.env = dict(env) if env is not None else None
        self.cwd = cwd
        self.pid_dir = pid_dir
        self._popen: subprocess.Popen[bytes] | None = None

    @property
    def pid(self) -> int:
        if self._popen is None:
            raise LabError(f"{self.name} was never started")
        return self._popen.pid

    def start(self) -> ManagedProcess:
        if self.running():
            raise LabError(f"{self.name} is already running as PID {self.pid}")
        if self._popen is not None:  # restarting after an exit: the old record is stale
            self._record_path().unlink(missing_ok=True)
        self.log_path.parent.mkdir(parents=True, exist_ok=True)
        with self.log_path.open("ab") as log:
            log.write(f"\n=== {time.strftime('%H:%M:%S')} start: {' '.join(self.argv)}\n".encode())
            log.flush()
            # A new session: a Ctrl-C aimed at pytest does not hit the lab, teardown stops it by PID.
            self._popen = subprocess.Popen(
                self.argv,
                stdin=subprocess.DEVNULL,
                stdout=log,
                stderr=subprocess.STDOUT,
                env=self.env,
                cwd=self.cwd,
                start_new_session=True,
            )
        self._record()
        return self

    def running(self) -> bool:
        return self._popen is not None and self._popen.poll() is None

    def exit_reason(self) -> str | None:
        """None while running; otherwise why the process is gone, with its last log lines."""
        if self._popen is None:
            return f"{self.name} was never started"
        code = self._popen.poll()
        if code is None:
            return None
        return f"{self.name} (PID {self.pid}) exited with {code}; last log lines:\n{self.tail()}"

    def stop(self, timeout: float = 15.0, sig: int = signal.SIGTERM) -> int | None:
        """Signal the process by its PID, wait for it, SIGKILL after `timeout`. Returns its exit code."""
        if self._popen is None:
            return None
        if self._popen.poll() is None:
            self._popen.send_signal(sig)
            try:
                self._popen.wait(timeout)
            except subprocess.TimeoutExpired:
                self._popen.kill()
                self._popen.wait(10)
        self._record_path().unlink(missing_ok=True)
        return self._popen.returncode

    def kill(self) -> int | None:
        """SIGKILL: the process gets no chance to clean up (a crash, as far as peers can tell)."""
        return self.stop(timeout=10, sig=signal.SIGKILL)

    def tail(self, lines: int = 40) -> str:
        try:
            text = self.log_path.read_text(errors="replace")
        except OSError:
            return "(no log)"
        return "\n".join(text.splitlines()[-lines:])

    def _record_path(self) -> Path:
        return self.pid_dir / f"{self.pid}.json"

    def _record(self) -> None:
        self.pid_dir.mkdir(parents=True, exist_ok=True)
        record = {
            "pid": self.pid,
            "name": self.name,
            "argv0": self.argv[0],
            "start_time": proc_start_time(self.pid),
            "log": str(self.log_path),
        }
        self._record_path().write_text(json.dumps(record))

    def __repr__(self) -> str:
        state = "running" if self.running() else "stopped"
        return f"<ManagedProcess {self.name} pid={self._popen.pid if self._popen else None} {state}>"
