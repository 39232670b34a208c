"""The Kubernetes flavours the lifecycle and the reliability suite run on: the lab masters' kube-apiserver,
the KMS API the roles choose for it, and how the playbooks are told to run there. One lifecycle, parametrized
by flavour (docs/lifecycle.md, "KMS v2 masters")."""

from __future__ import annotations

from dataclasses import dataclass, field
from typing import Any


@dataclass(frozen=True)
class Flavour:
    id: str  # part of the pytest ids, for -k
    label: str  # the table's column
    kms_v2: bool  # MasterLab(kms_v2=...): the lab KMS v2 kube-apiserver (1.36), a kubeadm 1.30+ manifest
    reload: bool = False  # rotation and disabling without restarting apiservers (automatic reload)
    inventory: dict[str, Any] = field(default_factory=dict, hash=False, compare=False)  # group_vars it needs

    @property
    def kms_api(self) -> str:
        """The KMS API the roles choose on these masters (auto: v2 from Kubernetes 1.29)."""
        return "v2" if self.kms_v2 else "v1"

    def kms_prefix(self, provider: str) -> bytes:
        """How etcd stores an object the KMS provider `provider` wrote."""
        return f"k8s:enc:kms:{self.kms_api}:{provider}:".encode()


# Rotation without restarting apiservers (docs/lifecycle.md, "Rotation without restarts"): on in this flavour.
RELOAD_OPTION = "tke_kms_automatic_reload"

KUBE_1_20 = Flavour("kube1.20", "1.20 KMS v1", kms_v2=False)
# The KMS v2 apiserver serves namespaces, secrets and configmaps only (no DaemonSets, no Nodes): the plugin
# runs as a static pod there; the DaemonSet mode stays covered on 1.20.
KUBE_1_36 = Flavour("kube1.36", "1.36 KMS v2", kms_v2=True, inventory={"tke_kms_plugin_mode": "static_pod"})
KUBE_1_36_RELOAD = Flavour(
    "kube1.36-reload",
    "1.36 KMS v2 reload",
    kms_v2=True,
    reload=True,
    inventory={"tke_kms_plugin_mode": "static_pod", RELOAD_OPTION: True},
)
