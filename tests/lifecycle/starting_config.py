"""Encryption configs a cluster may already have when it adopts KMS, put on the lab masters the way an
operator does it by hand: the config file with fresh random keys (the same on every master: they share etcd),
the flag and a hostPath mount of the file's directory added to the kube-apiserver manifest, every apiserver
restarted and ready - before any object of the test exists, so that each is stored with its starting
provider."""

from __future__ import annotations

import base64
import os
from dataclasses import dataclass
from typing import Any

import requests
import yaml

from tests.lab import encryption
from tests.lab.masters import Master, MasterLab
from tests.lab.runtime import wait_for

CONFIG = "/etc/kubernetes/encryption-provider-config.yaml"
FLAG = "--encryption-provider-config="
VOLUME = "etc-kubernetes-encryption"  # the operator's own volume, not one the collection adds
CLEAR = b"k8s\x00"  # an object stored without encryption (protobuf)
RESOURCES = ("secrets", "configmaps")


def kms_prefix(provider: str, kms_api: str = "v1") -> bytes:
    return f"k8s:enc:kms:{kms_api}:{provider}:".encode()


def storage_label(prefix: bytes) -> str:
    """How a prefix reads in the table: kms:v1:<name>, kms:v2:<name>, aescbc:v1:<key>, clear."""
    return "clear" if prefix == CLEAR else prefix.decode().removeprefix("k8s:enc:").rstrip(":")


@dataclass(frozen=True)
class Entry:
    """An entry of the starting config: `resources` written with `provider` (key `key_name`), identity."""

    resources: tuple[str, ...]
    provider: str  # aescbc or aesgcm
    key_name: str

    @property
    def prefix(self) -> bytes:
        return f"k8s:enc:{self.provider}:v1:{self.key_name}:".encode()

    def document(self) -> dict[str, Any]:
        secret = base64.b64encode(os.urandom(32)).decode()
        key = {"name": self.key_name, "secret": secret}
        return {
            "resources": list(self.resources),
            "providers": [{self.provider: {"keys": [key]}}, {"identity": {}}],
        }


@dataclass(frozen=True)
class StartConfig:
    """A starting config of the reliability matrix."""

    id: str  # part of the pytest id, for -k
    label: str  # the table's column
    entries: tuple[Entry, ...] = ()

    def storage(self, resource: str) -> bytes:
        """The prefix an object of `resource` is stored with under this config."""
        entry = next((e for e in self.entries if resource in e.resources), None)
        return entry.prefix if entry else CLEAR

    @property
    def kms_resources(self) -> tuple[str, ...]:
        """The resources the KMS provider will write: those of the entry site.yml puts it into (the one that
        lists secrets), or secrets alone in a new entry."""
        entry = next((e for e in self.entries if "secrets" in e.resources), None)
        return entry.resources if entry else ("secrets",)

    @property
    def untouched_entries(self) -> tuple[Entry, ...]:
        """Entries the KMS lifecycle never touches (no secrets in them): they must outlive disable.yml."""
        return tuple(e for e in self.entries if "secrets" not in e.resources)

    def expected(
        self, kms_provider: str | None, *, disabled: bool = False, kms_api: str = "v1"
    ) -> dict[str, bytes]:
        """resource -> expected prefix: the KMS provider's (through KMS `kms_api`) for the resources it
        writes (clear once disabled), the starting provider's for the others."""
        found = {}
        for resource in RESOURCES:
            if resource in self.kms_resources and disabled:
                found[resource] = CLEAR
            elif resource in self.kms_resources and kms_provider:
                found[resource] = kms_prefix(kms_provider, kms_api)
            else:
                found[resource] = self.storage(resource)
        return found

    def document(self) -> dict[str, Any]:
        return {
            "apiVersion": "apiserver.config.k8s.io/v1",
            "kind": "EncryptionConfiguration",
            "resources": [entry.document() for entry in self.entries],
        }


def with_encryption_config(manifest: dict[str, Any]) -> dict[str, Any]:
    """The kube-apiserver static pod with the flag and a read-only hostPath mount of the config directory."""
    directory = os.path.dirname(CONFIG)
    container = manifest["spec"]["containers"][0]
    container["command"].append(FLAG + CONFIG)
    container.setdefault("volumeMounts", []).append(
        {"mountPath": directory, "name": VOLUME, "readOnly": True}
    )
    volume = {"hostPath": {"path": directory, "type": "DirectoryOrCreate"}, "name": VOLUME}
    manifest["spec"].setdefault("volumes", []).append(volume)
    return manifest


def replace_manifest(master: Master, manifest: dict[str, Any]) -> None:
    """Write the manifest next to the manifests directory, then rename it in: the node agent (like kubelet)
    must never read a half-written file."""
    target = master.manifests / "kube-apiserver.yaml"
    staging = master.path("/etc/kubernetes/.kube-apiserver.yaml.new")
    fd = os.open(staging, os.O_WRONLY | os.O_CREAT | os.O_TRUNC, 0o600)
    with os.fdopen(fd, "w") as handle:
        handle.write(yaml.safe_dump(manifest, sort_keys=True))
    os.replace(staging, target)


def apiserver_uid(master: Master) -> str | None:
    pod = master.pod("kube-apiserver")
    return pod["uid"] if pod else None


def apply(lab: MasterLab, start: StartConfig) -> None:
    """Put `start` on every master and wait until every apiserver runs with it."""
    if not start.entries:
        return
    document = start.document()  # one set of keys for all masters
    before = {}
    for master in lab.masters:
        before[master.name] = apiserver_uid(master)
        encryption.write(master.path(CONFIG), document)
        manifest = yaml.safe_load((master.manifests / "kube-apiserver.yaml").read_text())
        replace_manifest(master, with_encryption_config(manifest))
    for master in lab.masters:
        wait_for(
            lambda m=master: apiserver_uid(m) not in (None, before[m.name]),
            timeout=120,
            what=f"{master.name}: the node agent starting kube-apiserver with the encryption config",
            interval=0.5,
        )
        wait_for(lambda m=master: ready(lab, m), timeout=240, what=f"{master.name} /readyz", interval=0.5)


def ready(lab: MasterLab, master: Master) -> bool:
    try:
        return lab.readyz(master)
    except requests.RequestException:
        return False
