"""The node agent's configuration file (JSON, written by tests/lab/masters.py)."""

from __future__ import annotations

import json
from dataclasses import asdict, dataclass, field
from pathlib import Path

MASTER_LABELS = {
    "node-role.kubernetes.io/master": "",
    "node-role.kubernetes.io/control-plane": "",
}
MASTER_TAINTS = [
    {"key": "node-role.kubernetes.io/master", "effect": "NoSchedule"},
    {"key": "node-role.kubernetes.io/control-plane", "effect": "NoSchedule"},
]
# What `docker inspect` would say for images whose pod spec has no `command`.
IMAGE_ENTRYPOINTS = {"tke-kms-plugin": ["/tke-kms-plugin"]}
# ... and the image's USER (plugin_server/Dockerfile), unless the pod sets runAsUser.
IMAGE_USERS = {"tke-kms-plugin": "10001:10001"}


@dataclass
class AgentConfig:
    node_name: str
    root: str  # the master's chroot
    state_dir: str  # host-side: credentials, agent log, status snapshot
    servers: list[str]  # apiserver URLs, own master first (like a kubelet behind a load balancer)
    ca_file: str
    cert_file: str
    key_file: str
    host_ip: str = "127.0.0.1"  # the node's InternalIP: pod (host network) IP, default probe host
    manifests_dir: str = "/etc/kubernetes/manifests"  # inside root
    labels: dict[str, str] = field(default_factory=lambda: dict(MASTER_LABELS))
    taints: list[dict[str, str]] = field(default_factory=lambda: [dict(t) for t in MASTER_TAINTS])
    image_entrypoints: dict[str, list[str]] = field(default_factory=lambda: dict(IMAGE_ENTRYPOINTS))
    image_users: dict[str, str] = field(default_factory=lambda: dict(IMAGE_USERS))
    backoff_initial: float = 10.0  # kubelet: 10 s, doubling, capped at 300 s
    backoff_max: float = 300.0
    sync_interval: float = 0.5
    lease_seconds: int = 40
    # False: run static pods only, with no Node, Lease, mirror pods, bound pods or pod status. For an
    # apiserver that serves no pods/nodes/leases (the lab's KMS v2 apiserver); probes, restarts on
    # manifest change and crash back-off do not depend on the API.
    report_to_api: bool = True

    @classmethod
    def load(cls, path: Path) -> AgentConfig:
        return cls(**json.loads(Path(path).read_text()))

    def save(self, path: Path) -> Path:
        Path(path).write_text(json.dumps(asdict(self), indent=2))
        return Path(path)

    @property
    def root_path(self) -> Path:
        return Path(self.root)

    def host_path(self, inside: str) -> Path:
        """The host path of `inside`, a path within the chroot."""
        return self.root_path / inside.lstrip("/")
