"""The node agent's reconcile loop: static pods from the manifest dir, pods bound to the Node, status.

Each tick: (1) rescan the manifest dir; a pod whose UID changed is stopped and, once it has fully
terminated (never two pods of one full name at a time, like kubelet's static-pod admission), started
again; (2) list the pods bound to this node; a pod marked for deletion is stopped and then deleted
for good (gracePeriodSeconds=0), as the kubelet confirms deletions; (3) report: Node registration,
Lease heartbeat, Node status, mirror pods for static pods, pod status. The API being unreachable
only skips (2) and (3): running pods keep running, as with a real kubelet. With `report_to_api` off
in the config, (2) and (3) never run: static pods only (an apiserver without pods, nodes, leases).
"""

from __future__ import annotations

import datetime as dt
import json
import logging
import os
import threading
import time
from pathlib import Path
from typing import Any

import requests

from tests.lab.node_agent import manifests
from tests.lab.node_agent.apiclient import ApiClient, ApiUnavailable
from tests.lab.node_agent.config import AgentConfig
from tests.lab.node_agent.pod import PodWorker

log = logging.getLogger("node-agent")
LEASE_RENEW = 10.0
NODE_STATUS_EVERY = 30.0
API_SYNC_INTERVAL = 1.0  # pods bound to the node, statuses; the manifest dir is rescanned every tick
KUBELET_VERSION = "v1.20.2"


def micro_time() -> str:
    return dt.datetime.now(dt.UTC).strftime("%Y-%m-%dT%H:%M:%S.%fZ")


def rfc3339() -> str:
    return dt.datetime.now(dt.UTC).strftime("%Y-%m-%dT%H:%M:%SZ")


class NodeAgent:
    def __init__(self, config: AgentConfig) -> None:
        self.config = config
        self.node = config.node_name
        self.api = ApiClient(config.servers, config.ca_file, config.cert_file, config.key_file)
        self.static: dict[str, PodWorker] = {}
        self.bound: dict[str, PodWorker] = {}
        self.stopping: list[PodWorker] = []
        self.deleting: dict[str, dict[str, Any]] = {}  # uid -> API pod awaiting final deletion
        self.scan = manifests.ManifestScan()
        self.node_uid: str | None = None
        self.mirrors: dict[str, str] = {}  # mirror pod name -> static pod UID it mirrors
        self._mirror_namespace: dict[str, str] = {}
        self._node_transition: dict[str, str] = {}
        self.sent: dict[str, str] = {}  # pod UID -> last status JSON written
        self.last_lease = 0.0
        self.last_node_status = 0.0
        self.last_api_sync = 0.0
        self.api_error: str | None = None
        self.stop_event = threading.Event()
        self.ticks = 0  # in the snapshot: lets a test wait for "N more syncs happened" without sleeping

    # -- loop

    def run(self) -> None:
        log.info(
            "node agent for %s on %s, manifests %s, %s",
            self.node,
            self.config.root,
            self.config.manifests_dir,
            "reporting to the API" if self.config.report_to_api else "static pods only, no API reporting",
        )
        try:
            while not self.stop_event.is_set():
                self.tick()
                self.stop_event.wait(self.config.sync_interval)
        finally:
            self.shutdown()

    def tick(self) -> None:
        self.sync_static()
        now = time.monotonic()
        if self.config.report_to_api and now - self.last_api_sync >= API_SYNC_INTERVAL:
            self.last_api_sync = now
            self.sync_api()
        self.reap()
        self.ticks += 1
        self.write_snapshot()

    def sync_api(self) -> None:
        try:
            self.sync_bound()
            self.report()
            self.api_error = None
        except ApiUnavailable as exc:
            self.api_error = str(exc)
        except requests.HTTPError as exc:  # e.g. kube-node-lease not created yet by a starting apiserver
            log.warning("API sync: %s", exc)
            self.api_error = str(exc)
        except Exception as exc:  # one failed report must not stop the pods
            log.exception("API sync failed")
            self.api_error = f"{exc.__class__.__name__}: {exc}"

    def shutdown(self) -> None:
        workers = [*self.static.values(), *self.bound.values(), *self.stopping]
        for worker in workers:
            worker.request_stop()
        for worker in workers:
            worker.terminated.wait(120)
        self.static.clear()
        self.bound.clear()
        self.stopping.clear()
        self.write_snapshot()
        self.api.close()

    def _busy(self, full_name: str) -> bool:
        """A pod of this full name still exists (running, or stopping and not yet terminated)."""
        workers = [*self.static.values(), *self.bound.values(), *self.stopping]
        return any(w.full_name == full_name and not w.terminated.is_set() for w in workers)

    def _stop(self, workers: dict[str, PodWorker], uid: str) -> None:
        worker = workers.pop(uid)
        worker.request_stop()
        self.stopping.append(worker)
        log.info("stopping pod %s (uid %s)", worker.full_name, uid)

    def _start(self, workers: dict[str, PodWorker], pod: dict[str, Any], read: Any) -> None:
        worker = PodWorker(pod, self.config, read)
        workers[worker.uid] = worker
        worker.start()
        log.info("started pod %s (uid %s)", worker.full_name, worker.uid)

    def reap(self) -> None:
        self.stopping = [w for w in self.stopping if not w.terminated.is_set()]

    # -- static pods

    def sync_static(self) -> None:
        self.scan = manifests.scan(self.config.host_path(self.config.manifests_dir), self.node)
        desired = {p.uid: p for p in self.scan.pods}
        for uid in [u for u in self.static if u not in desired]:
            self._stop(self.static, uid)
        for uid, static_pod in desired.items():
            if uid not in self.static and not self._busy(static_pod.full_name):
                self._start(self.static, static_pod.pod, None)

    # -- pods bound to this node

    def read_object(self, kind: str, namespace: str, name: str) -> dict[str, str] | None:
        found = self.api.get(f"/api/v1/namespaces/{namespace}/{kind}/{name}")
        return None if found is None else (found.get("data") or {})

    def sync_bound(self) -> None:
        listing = self.api.get("/api/v1/pods", fieldSelector=f"spec.nodeName={self.node}")
        desired: dict[str, dict[str, Any]] = {}
        for pod in (listing or {}).get("items", []):
            metadata = pod["metadata"]
            if manifests.CONFIG_MIRROR in (metadata.get("annotations") or {}):
                continue
            if pod.get("status", {}).get("phase") in ("Succeeded", "Failed"):
                continue
            if metadata.get("deletionTimestamp"):
                self.deleting[metadata["uid"]] = pod
                continue
            desired[metadata["uid"]] = pod
        for uid in [u for u in self.bound if u not in desired]:
            self._stop(self.bound, uid)
        for uid, pod in desired.items():
            full_name = f"{pod['metadata']['name']}_{pod['metadata']['namespace']}"
            if uid not in self.bound and not self._busy(full_name):
                self._start(self.bound, pod, self.read_object)
        for uid, pod in list(self.deleting.items()):
            full_name = f"{pod['metadata']['name']}_{pod['metadata']['namespace']}"
            if uid in self.bound or self._busy(full_name):
                continue
            metadata = pod["metadata"]
            options = {"apiVersion": "v1", "kind": "DeleteOptions", "gracePeriodSeconds": 0}
            options["preconditions"] = {"uid": uid}
            self.api.request(
                "DELETE", f"/api/v1/namespaces/{metadata['namespace']}/pods/{metadata['name']}", body=options
            )
            self.deleting.pop(uid)
            self.sent.pop(uid, None)

    # -- reporting

    def report(self) -> None:
        self.ensure_node()
        now = time.monotonic()
        if now - self.last_lease >= LEASE_RENEW:
            self.renew_lease()
            self.last_lease = now
        if now - self.last_node_status >= NODE_STATUS_EVERY:
            self.post_node_status()
            self.last_node_status = now
        self.sync_mirrors()
        for worker in self.bound.values():
            self.post_pod_status(worker, worker.pod["metadata"]["name"], worker.pod["metadata"]["namespace"])
        for worker in self.static.values():
            if self.mirrors.get(worker.pod["metadata"]["name"]) == worker.uid:
                self.post_pod_status(
                    worker, worker.pod["metadata"]["name"], worker.pod["metadata"]["namespace"]
                )

    def ensure_node(self) -> None:
        if self.node_uid is not None:
            return
        body = {
            "apiVersion": "v1",
            "kind": "Node",
            "metadata": {
                "name": self.node,
                "labels": {
                    "kubernetes.io/hostname": self.node,
                    "kubernetes.io/os": "linux",
                    "kubernetes.io/arch": "amd64",
                    "beta.kubernetes.io/os": "linux",
                    "beta.kubernetes.io/arch": "amd64",
                    **self.config.labels,
                },
            },
            "spec": {"taints": self.config.taints},
        }
        response = self.api.request("POST", "/api/v1/nodes", body=body)
        if response.status_code == 409:  # registered before: keep its taints, refresh our labels
            response = self.api.request(
                "PATCH",
                f"/api/v1/nodes/{self.node}",
                body={"metadata": {"labels": body["metadata"]["labels"]}},
                patch=True,
            )
        response.raise_for_status()
        self.node_uid = response.json()["metadata"]["uid"]
        self.post_node_status()
        self.last_node_status = time.monotonic()

    def renew_lease(self) -> None:
        path = f"/apis/coordination.k8s.io/v1/namespaces/kube-node-lease/leases/{self.node}"
        spec = {
            "holderIdentity": self.node,
            "leaseDurationSeconds": self.config.lease_seconds,
            "renewTime": micro_time(),
        }
        response = self.api.request("PATCH", path, body={"spec": spec}, patch=True)
        if response.status_code == 404:
            owner = {"apiVersion": "v1", "kind": "Node", "name": self.node, "uid": self.node_uid}
            lease = {
                "metadata": {"name": self.node, "namespace": "kube-node-lease", "ownerReferences": [owner]}
            }
            response = self.api.request(
                "POST",
                path.rsplit("/", 1)[0],
                body={"apiVersion": "coordination.k8s.io/v1", "kind": "Lease", **lease, "spec": spec},
            )
        response.raise_for_status()

    def post_node_status(self) -> None:
        now = rfc3339()

        def condition(kind: str, status: str, reason: str, message: str) -> dict[str, str]:
            return {
                "type": kind,
                "status": status,
                "reason": reason,
                "message": message,
                "lastHeartbeatTime": now,
                "lastTransitionTime": self._node_transition.setdefault(kind, now),
            }

        pages = os.sysconf("SC_PHYS_PAGES") * os.sysconf("SC_PAGE_SIZE") // 1024
        resources = {
            "cpu": str(os.cpu_count() or 1),
            "memory": f"{pages}Ki",
            "pods": "110",
            "ephemeral-storage": "50Gi",
        }
        status = {
            "conditions": [
                condition(
                    "MemoryPressure", "False", "KubeletHasSufficientMemory", "kubelet has sufficient memory"
                ),
                condition(
                    "DiskPressure", "False", "KubeletHasNoDiskPressure", "kubelet has no disk pressure"
                ),
                condition(
                    "PIDPressure", "False", "KubeletHasSufficientPID", "kubelet has sufficient PID available"
                ),
                condition("Ready", "True", "KubeletReady", "lab node agent is posting ready status"),
            ],
            "addresses": [
                {"type": "InternalIP", "address": self.config.host_ip},
                {"type": "Hostname", "address": self.node},
            ],
            "capacity": resources,
            "allocatable": resources,
            "daemonEndpoints": {"kubeletEndpoint": {"Port": 10250}},
            "nodeInfo": {
                "machineID": self.node,
                "systemUUID": self.node_uid or self.node,
                "bootID": self.node_uid or self.node,
                "kernelVersion": os.uname().release,
                "osImage": "Debian GNU/Linux 12 (bookworm)",
                "containerRuntimeVersion": "chroot://lab",
                "kubeletVersion": KUBELET_VERSION,
                "kubeProxyVersion": KUBELET_VERSION,
                "operatingSystem": "linux",
                "architecture": "amd64",
            },
        }
        response = self.api.request(
            "PATCH", f"/api/v1/nodes/{self.node}/status", body={"status": status}, patch=True
        )
        response.raise_for_status()

    def sync_mirrors(self) -> None:
        """One mirror pod per static pod, recreated when the static pod's UID (config hash) changes."""
        wanted = {w.pod["metadata"]["name"]: w for w in self.static.values()}
        for name in [n for n in self.mirrors if n not in wanted]:
            namespace = self._mirror_namespace.pop(name, "default")
            self._delete_pod(namespace, name)
            self.mirrors.pop(name)
        for name, worker in wanted.items():
            if self.mirrors.get(name) == worker.uid:
                continue
            namespace = worker.pod["metadata"]["namespace"]
            existing = self.api.get(f"/api/v1/namespaces/{namespace}/pods/{name}")
            annotations = (existing or {}).get("metadata", {}).get("annotations") or {}
            if existing is not None and annotations.get(manifests.CONFIG_MIRROR) != worker.uid:
                self._delete_pod(namespace, name)
                existing = None
            if existing is None and not self._create_mirror(worker):
                continue  # e.g. the PriorityClass is not there yet while the apiserver bootstraps
            self.mirrors[name] = worker.uid
            self._mirror_namespace[name] = namespace
            self.sent.pop(worker.uid, None)

    def _create_mirror(self, worker: PodWorker) -> bool:
        pod = json.loads(json.dumps(worker.pod))
        metadata = pod["metadata"]
        metadata.pop("uid", None)
        metadata.pop("creationTimestamp", None)
        metadata["annotations"][manifests.CONFIG_MIRROR] = worker.uid
        metadata["annotations"][manifests.CONFIG_SEEN] = micro_time()
        metadata["ownerReferences"] = [
            {"apiVersion": "v1", "kind": "Node", "name": self.node, "uid": self.node_uid, "controller": True}
        ]
        pod.pop("status", None)
        response = self.api.request("POST", f"/api/v1/namespaces/{metadata['namespace']}/pods", body=pod)
        if response.status_code in (201, 409):
            return True
        log.warning("mirror pod %s: HTTP %s %s", metadata["name"], response.status_code, response.text[:300])
        return False

    def _delete_pod(self, namespace: str, name: str) -> None:
        options = {"apiVersion": "v1", "kind": "DeleteOptions", "gracePeriodSeconds": 0}
        self.api.request("DELETE", f"/api/v1/namespaces/{namespace}/pods/{name}", body=options)

    def post_pod_status(self, worker: PodWorker, name: str, namespace: str) -> None:
        status = worker.status()
        encoded = json.dumps(status, sort_keys=True)
        if self.sent.get(worker.uid) == encoded:
            return
        response = self.api.request(
            "PATCH", f"/api/v1/namespaces/{namespace}/pods/{name}/status", body={"status": status}, patch=True
        )
        if response.ok:
            self.sent[worker.uid] = encoded
        elif response.status_code != 404:
            log.warning("status of %s: HTTP %s %s", name, response.status_code, response.text[:300])

    # -- what tests and humans read: state_dir/status.json

    def write_snapshot(self) -> None:
        def describe(worker: PodWorker) -> dict[str, Any]:
            return {
                "name": worker.pod["metadata"]["name"],
                "namespace": worker.pod["metadata"]["namespace"],
                "uid": worker.uid,
                "containers": [
                    {
                        "name": c.name,
                        "pid": c.process.pid if c.process is not None and c.running() else None,
                        "restartCount": c.restart_count,
                        "ready": c.ready,
                        "state": c.state,
                        "log": str(c.log_path),
                    }
                    for c in worker.containers
                ],
            }

        snapshot = {
            "node": self.node,
            "time": rfc3339(),
            "ticks": self.ticks,
            "report_to_api": self.config.report_to_api,
            "api_error": self.api_error,
            "manifest_errors": self.scan.errors,
            "static_pods": {p.path.name: p.uid for p in self.scan.pods},
            "pods": [describe(w) for w in [*self.static.values(), *self.bound.values()]],
            "stopping": [w.full_name for w in self.stopping if not w.terminated.is_set()],
        }
        path = Path(self.config.state_dir) / "status.json"
        tmp = path.with_suffix(".tmp")
        tmp.write_text(json.dumps(snapshot, indent=1))
        tmp.replace(path)
