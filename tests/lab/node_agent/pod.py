"""A pod on a chroot master: its volumes and containers, supervised by one thread, and its status."""

from __future__ import annotations

import functools
import logging
import threading
from typing import Any

from tests.lab.node_agent.config import AgentConfig
from tests.lab.node_agent.container import Backoff, Container, now_rfc3339
from tests.lab.node_agent.podspec import ObjectReader, launch_spec
from tests.lab.node_agent.volumes import PodVolumes

TICK = 0.2
log = logging.getLogger("node-agent")


def qos_class(pod: dict[str, Any]) -> str:
    resources = [c.get("resources") or {} for c in pod["spec"]["containers"]]
    if not any(r.get("requests") or r.get("limits") for r in resources):
        return "BestEffort"
    guaranteed = all(
        (r.get("limits") or {}).get(res)
        and (r.get("requests") or r.get("limits") or {}).get(res) == (r.get("limits") or {}).get(res)
        for r in resources
        for res in ("cpu", "memory")
    )
    return "Guaranteed" if guaranteed else "Burstable"


class PodWorker(threading.Thread):
    def __init__(self, pod: dict[str, Any], config: AgentConfig, read: ObjectReader | None) -> None:
        metadata = pod["metadata"]
        super().__init__(name=f"pod-{metadata['namespace']}-{metadata['name']}", daemon=True)
        self.pod = pod
        self.uid: str = metadata["uid"]
        self.full_name = f"{metadata['name']}_{metadata['namespace']}"
        self.config = config
        self.root = config.root_path
        self.volumes = PodVolumes(pod, self.root, read)
        self.stop_requested = threading.Event()
        self.terminated = threading.Event()
        self.started_at = now_rfc3339()
        self.volume_error: str | None = None
        self._transitions: dict[str, tuple[str, str]] = {}
        spec = pod["spec"]
        grace = float(spec.get("terminationGracePeriodSeconds", 30))
        log_dir = self.root / f"var/log/pods/{metadata['namespace']}_{metadata['name']}_{self.uid}"
        self.containers = [
            Container(
                container,
                functools.partial(
                    launch_spec,
                    pod,
                    container,
                    entrypoints=config.image_entrypoints,
                    read=read,
                    host_ip=config.host_ip,
                    image_users=config.image_users,
                ),
                root=self.root,
                probe_host=config.host_ip,
                log_path=log_dir / container["name"] / "0.log",
                binds=functools.partial(self.volumes.binds_for, container["name"]),
                restart_policy=spec.get("restartPolicy", "Always"),
                backoff=Backoff(config.backoff_initial, config.backoff_max),
                grace=grace,
                label=f"{config.node_name}/{metadata['name']}/{container['name']}",
            )
            for container in spec["containers"]
        ]

    def run(self) -> None:
        try:
            while not self.stop_requested.is_set():
                try:
                    self.volumes.setup()
                    self.volume_error = None
                    break
                except Exception as exc:  # FailedMount, or the API is down: retry, as kubelet does
                    self.volume_error = str(exc)
                    log.warning("%s: FailedMount: %s", self.full_name, exc)
                    self.volumes.teardown()
                    self.stop_requested.wait(2)
            while not self.stop_requested.is_set():
                for container in self.containers:
                    container.sync()
                self.stop_requested.wait(TICK)
        except Exception:
            log.exception("%s: pod worker failed", self.full_name)
        finally:
            for container in self.containers:
                container.stop()
            self.volumes.teardown()
            self.terminated.set()

    def request_stop(self) -> None:
        self.stop_requested.set()

    # -- status, in the shape the kubelet writes it

    def _condition(self, kind: str, ok: bool, reason: str | None = None) -> dict[str, Any]:
        status = "True" if ok else "False"
        previous = self._transitions.get(kind)
        if previous is None or previous[0] != status:
            self._transitions[kind] = (status, now_rfc3339())
        condition = {"type": kind, "status": status, "lastProbeTime": None}
        condition["lastTransitionTime"] = self._transitions[kind][1]
        if reason and not ok:
            condition["reason"] = reason
        return condition

    def status(self) -> dict[str, Any]:
        statuses = [c.status(c.spec["image"]) for c in self.containers]
        ready = all(s["ready"] for s in statuses) and not self.stop_requested.is_set()
        # kubelet: Running once a container runs or is being restarted.
        started = any(c.process is not None or c.last_state for c in self.containers)
        status: dict[str, Any] = {
            "phase": "Running" if started else "Pending",
            "conditions": [
                self._condition("Initialized", True),
                self._condition("Ready", ready, "ContainersNotReady"),
                self._condition("ContainersReady", ready, "ContainersNotReady"),
                self._condition("PodScheduled", True),
            ],
            "hostIP": self.config.host_ip,
            "podIP": self.config.host_ip,  # every lab pod uses the host (the master's) network
            "podIPs": [{"ip": self.config.host_ip}],
            "startTime": self.started_at,
            "containerStatuses": statuses,
            "qosClass": qos_class(self.pod),
        }
        if self.volume_error:
            status["message"] = f"FailedMount: {self.volume_error}"
        return status
