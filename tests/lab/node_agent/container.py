"""One container of a pod: a process in the master's chroot, restarted with crash-loop back-off.

The process is `chroot <root> <command...>` with the container's environment. A container with
bind mounts (emptyDir, Secret, ConfigMap, a hostPath elsewhere) first gets its own mount namespace
(`unshare --mount`, slave propagation) where those binds are made, as a container runtime does, so
they are seen by its processes only; exec probes enter that namespace. It is a lab ManagedProcess,
so its PID is recorded for `python -m tests.lab.cleanup`. Stopping sends SIGTERM, waits the pod's grace
period, then SIGKILLs, and reaps whatever is left of its process group.
"""

from __future__ import annotations

import contextlib
import datetime as dt
import os
import shlex
import signal
import subprocess
import time
from collections.abc import Callable
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from tests.lab.node_agent.probes import ProbeState, run_probe
from tests.lab.process import ManagedProcess

CHROOT = "/usr/sbin/chroot"
UNSHARE = "/usr/bin/unshare"
NSENTER = "/usr/bin/nsenter"
DEFAULT_PATH = "/usr/local/sbin:/usr/local/bin:/usr/sbin:/usr/bin:/sbin:/bin"


def now_rfc3339() -> str:
    return dt.datetime.now(dt.UTC).strftime("%Y-%m-%dT%H:%M:%SZ")


@dataclass
class LaunchSpec:
    """What to exec inside the chroot (argv resolved, env resolved), or why it cannot be."""

    argv: list[str] = field(default_factory=list)
    env: dict[str, str] = field(default_factory=dict)
    working_dir: str | None = None
    user: str | None = None  # uid:gid, from runAsUser/runAsGroup or the image's USER
    error: str | None = None  # e.g. no command and an image we do not know


@dataclass
class Backoff:
    """kubelet's crash-loop back-off: the first restart is immediate, then initial, doubling, capped."""

    initial: float
    maximum: float
    current: float = 0.0

    def next_delay(self, ran_for: float) -> float:
        if ran_for > 2 * self.maximum:
            self.current = 0.0
        delay = self.current
        self.current = min(self.maximum, self.initial if self.current == 0 else self.current * 2)
        return delay


class Container:
    def __init__(
        self,
        spec: dict[str, Any],
        resolve: Callable[[], LaunchSpec],
        *,
        root: Path,
        probe_host: str,
        log_path: Path,
        binds: Callable[[], list[tuple[Path, Path]]] = list,
        restart_policy: str,
        backoff: Backoff,
        grace: float,
        label: str,
    ) -> None:
        self.spec = spec
        self.name = spec["name"]
        self.resolve = resolve  # re-run at every start: a Secret created later is picked up, as by kubelet
        self.launch = LaunchSpec()
        self.root = root
        self.probe_host = probe_host  # kubelet probes the pod IP when a probe names no host
        self.binds = binds  # its volume binds, known once the pod's volumes are set up
        self.log_path = log_path
        self.restart_policy = restart_policy
        self.backoff = backoff
        self.grace = grace
        self.label = label
        self.restart_count = 0
        self.process: ManagedProcess | None = None
        self.started_mono = 0.0
        self.state: dict[str, Any] = {"waiting": {"reason": "ContainerCreating"}}
        self.last_state: dict[str, Any] = {}
        self.next_start = 0.0
        self.exited_ok = False
        self.ports = {p["name"]: int(p["containerPort"]) for p in spec.get("ports", []) if p.get("name")}
        self._probes: dict[str, ProbeState] = {}
        self.ready = False
        self.startup_done = False

    # -- lifecycle

    def running(self) -> bool:
        return self.process is not None and self.process.running()

    def _start(self) -> None:
        self.launch = self.resolve()
        if self.launch.error:
            self.state = {"waiting": {"reason": "CreateContainerError", "message": self.launch.error}}
            self.next_start = time.monotonic() + self.backoff.next_delay(0)
            return
        argv = list(self.launch.argv)
        if self.launch.working_dir:
            argv = ["/bin/sh", "-c", 'cd "$0" && exec "$@"', self.launch.working_dir, *argv]
        env = {"PATH": DEFAULT_PATH, **self.launch.env}
        argv = [*self._mount_namespace(), *self._chroot(), *argv]
        self.process = ManagedProcess(self.label, argv, self.log_path, env=env)
        self.process.start()
        self.started_mono = time.monotonic()
        self.state = {"running": {"startedAt": now_rfc3339()}}
        self._probes = {
            kind: ProbeState(self.spec[kind])
            for kind in ("startupProbe", "livenessProbe", "readinessProbe")
            if isinstance(self.spec.get(kind), dict)
        }
        self.ready = False
        self.startup_done = False

    def stop(self) -> None:
        """SIGTERM, the grace period, SIGKILL; then anything left in the container's process group."""
        if self.process is None:
            return
        pid = self.process.pid
        was_running = self.running()
        code = self.process.stop(timeout=self.grace)
        with contextlib.suppress(ProcessLookupError, PermissionError):
            os.killpg(pid, signal.SIGKILL)  # our child led this group (new session)
        if was_running:
            self._terminated(code, "Error" if code else "Completed")
        self.ready = False

    def _terminated(self, code: int | None, reason: str) -> None:
        started = self.state.get("running", {}).get("startedAt")
        self.last_state = {
            "terminated": {
                "exitCode": code if code is not None else -1,
                "reason": reason,
                "startedAt": started,
                "finishedAt": now_rfc3339(),
            }
        }

    def sync(self) -> None:
        """Called by the pod worker every tick: restart what exited, run due probes."""
        now = time.monotonic()
        if self.process is not None and not self.running():
            code = self.process.stop()  # reaps it and drops its PID record
            self._terminated(code, "Completed" if code == 0 else "Error")
            self.exited_ok = code == 0
            self.process = None
            self.ready = False
            self._schedule_restart(now)
        if self.process is None:
            if self._should_restart() and now >= self.next_start:
                if self.last_state:
                    self.restart_count += 1
                self._start()
            return
        self._run_probes(now)

    def _should_restart(self) -> bool:
        if not self.last_state:
            return True
        if self.restart_policy == "Never":
            return False
        return not (self.restart_policy == "OnFailure" and self.exited_ok)

    def _schedule_restart(self, now: float) -> None:
        ran_for = now - self.started_mono
        delay = self.backoff.next_delay(ran_for)
        self.next_start = now + delay
        if not self._should_restart():
            self.state = dict(self.last_state)
        elif delay > 0:
            message = f"back-off {delay:.0f}s restarting failed container={self.name}"
            self.state = {"waiting": {"reason": "CrashLoopBackOff", "message": message}}
        else:
            self.state = {"waiting": {"reason": "ContainerCreating"}}

    def _kill_for_restart(self, why: str) -> None:
        assert self.process is not None
        with self.log_path.open("a") as log:
            log.write(f"=== node agent: {why}, killing the container\n")
        self.stop()
        self.process = None
        self._schedule_restart(time.monotonic())

    def _chroot(self) -> list[str]:
        user = [f"--userspec={self.launch.user}"] if self.launch.user else []
        return [CHROOT, *user, str(self.root)]

    def _mount_namespace(self) -> list[str]:
        """argv prefix: a new mount namespace with the container's binds, then exec the rest (same PID)."""
        binds = self.binds()
        if not binds:
            return []
        mounts = " && ".join(f"mount --bind {shlex.quote(str(s))} {shlex.quote(str(t))}" for s, t in binds)
        script = f'{mounts} && exec "$@"'
        return [UNSHARE, "--mount", "--propagation", "slave", "/bin/sh", "-c", script, "container"]

    # -- probes

    def exec_in_root(self, command: list[str], timeout: float) -> int:
        env = {"PATH": DEFAULT_PATH, **self.launch.env}
        enter = []
        if self.binds() and self.process is not None and self.running():
            enter = [NSENTER, f"--mount=/proc/{self.process.pid}/ns/mnt"]  # sees the container's volumes
        result = subprocess.run(
            [*enter, *self._chroot(), *command], env=env, capture_output=True, timeout=timeout, check=False
        )
        return result.returncode

    def _probe(self, kind: str, now: float) -> ProbeState | None:
        state = self._probes.get(kind)
        if state is None or not state.due(now, self.started_mono):
            return state
        ok, error = run_probe(state.spec, self.exec_in_root, self.ports, self.probe_host)
        state.record(ok, error, time.monotonic())
        return state

    def _run_probes(self, now: float) -> None:
        # Until the startup probe passes, liveness and readiness are not run (kubelet semantics).
        if not self.startup_done:
            startup = self._probe("startupProbe", now)
            if startup is None or startup.passed:
                self.startup_done = True
            else:
                if startup.failed:
                    self._kill_for_restart(f"startup probe failed: {startup.last_error}")
                return
        liveness = self._probe("livenessProbe", now)
        if liveness is not None and liveness.failed:
            self._kill_for_restart(f"liveness probe failed: {liveness.last_error}")
            return
        readiness = self._probe("readinessProbe", now)
        if readiness is None or readiness.passed:
            self.ready = True
        elif readiness.failed:
            self.ready = False

    # -- status

    def status(self, image: str) -> dict[str, Any]:
        status: dict[str, Any] = {
            "name": self.name,
            "image": image,
            "imageID": f"lab://{image}",
            "ready": self.ready,
            "restartCount": self.restart_count,
            "started": self.running() and self.startup_done,
            "state": self.state,
        }
        if self.process is not None and self.running():
            status["containerID"] = f"lab://{self.process.pid}"
        if self.last_state:
            status["lastState"] = self.last_state
        return status
