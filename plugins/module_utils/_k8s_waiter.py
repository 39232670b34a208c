# Copyright (c) tke.kms contributors
# Apache License 2.0 (see https://www.apache.org/licenses/LICENSE-2.0)
"""Waiting for Kubernetes objects: rollout predicates (pure) and a polling loop with a deadline.

PRIVATE to the collection.
"""

from __future__ import annotations

import time
import typing as t


def daemonset_rollout(ds: t.Optional[t.Dict[str, t.Any]]) -> t.Tuple[bool, str]:
    """Whether the DaemonSet's current spec runs, ready, on every node it targets, and in words why not.

    Zero targeted nodes is not a finished rollout: the plugin would run nowhere and encryption would fail.
    """
    if not ds:
        return False, "the DaemonSet does not exist"
    generation = (ds.get("metadata") or {}).get("generation") or 0
    status = ds.get("status") or {}
    observed = status.get("observedGeneration")
    if observed is None or observed < generation:
        return False, "the DaemonSet controller has not processed generation %d yet (observed %s)" % (
            generation,
            observed,
        )
    desired = status.get("desiredNumberScheduled") or 0
    updated = status.get("updatedNumberScheduled") or 0
    ready = status.get("numberReady") or 0
    available = status.get("numberAvailable") or 0
    if desired == 0:
        return False, "no node matches the DaemonSet's placement (no master with a node-role label?)"
    counts = "%d desired, %d updated, %d ready, %d available" % (desired, updated, ready, available)
    if updated < desired or ready < desired or available < desired:
        return False, "rollout in progress: " + counts
    return True, "rolled out: " + counts


def pod_problems(pods: t.List[t.Dict[str, t.Any]]) -> t.List[str]:
    """One line per pod that is not ready: node, phase and the container's waiting or termination reason."""
    problems = []
    for pod in pods:
        status = pod.get("status") or {}
        conditions = dict((c.get("type"), c.get("status")) for c in status.get("conditions") or [])
        if conditions.get("Ready") == "True":
            continue
        details = []
        for container in status.get("containerStatuses") or []:
            state = container.get("state") or {}
            last = (container.get("lastState") or {}).get("terminated") or {}
            for kind in ("waiting", "terminated"):
                if state.get(kind):
                    reason, message = state[kind].get("reason", ""), state[kind].get("message", "")
                    details.append(("%s %s: %s" % (kind, reason, message)).strip())
            if last:
                details.append(
                    "last exit %s: %s" % (last.get("exitCode"), (last.get("message") or "").strip())
                )
        problems.append(
            "pod %s on node %s: phase %s%s"
            % (
                (pod.get("metadata") or {}).get("name"),
                (pod.get("spec") or {}).get("nodeName") or "(not scheduled)",
                status.get("phase"),
                "; " + "; ".join(details) if details else "",
            )
        )
    return problems


def wait_argument_spec(timeout: float, sleep: t.Optional[float]) -> t.Dict[str, t.Any]:
    """wait, wait_timeout and wait_sleep as kubernetes.core names them, for every module that can wait."""
    return dict(
        wait=dict(type="bool", default=False),
        wait_timeout=dict(type="float", default=timeout),
        wait_sleep=dict(type="float", default=sleep),
    )


def wait_until(
    check: t.Callable[[], t.Tuple[bool, str]],
    timeout: float,
    interval: float = 2.0,
    sleep: t.Callable[[float], None] = time.sleep,
    clock: t.Callable[[], float] = time.monotonic,
) -> t.Tuple[bool, str, float]:
    """Poll check() until it reports done or the deadline passes: (done, last message, seconds waited)."""
    start = clock()
    deadline = start + timeout
    while True:
        done, message = check()
        now = clock()
        if done or now >= deadline:
            return done, message, now - start
        sleep(min(interval, max(deadline - now, 0)))
