"""EncryptionConfiguration documents for the lab apiservers (apiserver.config.k8s.io/v1)."""

from __future__ import annotations

import base64
import os
from pathlib import Path
from typing import Any

import yaml

Provider = dict[str, Any]


def identity() -> Provider:
    return {"identity": {}}


def aescbc(name: str = "key1", secret: bytes | None = None) -> Provider:
    key = base64.b64encode(secret or os.urandom(32)).decode()
    return {"aescbc": {"keys": [{"name": name, "secret": key}]}}


def kms_v1(name: str, socket: Path | str, *, cachesize: int = 1000, timeout: str = "3s") -> Provider:
    """A KMS v1 provider. v1.20 knows no `apiVersion` field here, so none is written."""
    return {"kms": {"name": name, "endpoint": f"unix://{socket}", "cachesize": cachesize, "timeout": timeout}}


def kms_v2(name: str, socket: Path | str, *, timeout: str = "3s") -> Provider:
    return {"kms": {"apiVersion": "v2", "name": name, "endpoint": f"unix://{socket}", "timeout": timeout}}


def config(providers: list[Provider], resources: tuple[str, ...] = ("secrets",)) -> dict[str, Any]:
    """One rule: `resources` are written with providers[0]; every listed provider can read."""
    return {
        "apiVersion": "apiserver.config.k8s.io/v1",
        "kind": "EncryptionConfiguration",
        "resources": [{"resources": list(resources), "providers": providers}],
    }


def write(path: Path, document: dict[str, Any] | str) -> Path:
    """Write the config 0600 (it may hold aescbc keys), as kubeadm-style masters keep it."""
    text = document if isinstance(document, str) else yaml.safe_dump(document, sort_keys=False)
    path.parent.mkdir(parents=True, exist_ok=True)
    fd = os.open(path, os.O_WRONLY | os.O_CREAT | os.O_TRUNC, 0o600)
    with os.fdopen(fd, "w") as handle:
        handle.write(text)
    return path
