"""Reading a static-pod manifest directory the way the kubelet's file source does.

kubelet (pkg/kubelet/config/file.go, config.go): it globs `[^.]*` in the directory (dotfiles are
ignored, every other name counts, whatever its extension: `kube-apiserver.yaml.bak` is a pod too),
sorted by name; directories are not recursed into; a file that does not decode to a valid Pod is
logged and skipped. The pod is named `<name>-<node>`, its namespace defaults to `default`, and its
UID is a hash of node, file path and pod, so an edit that changes the pod restarts it while a `touch`
or a comment does not. When two files yield the same pod full name, the first in name order wins
and the others are ignored as duplicates.
"""

from __future__ import annotations

import copy
import hashlib
import json
import re
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import yaml

DNS_SUBDOMAIN = re.compile(r"^[a-z0-9]([-a-z0-9]*[a-z0-9])?(\.[a-z0-9]([-a-z0-9]*[a-z0-9])?)*$")
CONFIG_HASH = "kubernetes.io/config.hash"
CONFIG_MIRROR = "kubernetes.io/config.mirror"
CONFIG_SOURCE = "kubernetes.io/config.source"
CONFIG_SEEN = "kubernetes.io/config.seen"


class InvalidManifest(ValueError):
    """The file does not decode to a valid Pod."""


@dataclass(frozen=True)
class StaticPod:
    path: Path
    pod: dict[str, Any]
    uid: str

    @property
    def name(self) -> str:
        return self.pod["metadata"]["name"]

    @property
    def namespace(self) -> str:
        return self.pod["metadata"]["namespace"]

    @property
    def full_name(self) -> str:
        return f"{self.name}_{self.namespace}"


@dataclass
class ManifestScan:
    pods: list[StaticPod] = field(default_factory=list)
    errors: dict[str, str] = field(default_factory=dict)  # file name -> why kubelet skips it


def validate(pod: Any) -> None:
    """The checks whose failure makes kubelet skip a manifest (decode + basic pod validation)."""
    if not isinstance(pod, dict):
        raise InvalidManifest("not a YAML/JSON object")
    if pod.get("kind") != "Pod" or pod.get("apiVersion") != "v1":
        raise InvalidManifest(
            f"expected apiVersion v1, kind Pod; got {pod.get('apiVersion')}/{pod.get('kind')}"
        )
    metadata = pod.get("metadata")
    if not isinstance(metadata, dict) or not isinstance(metadata.get("name"), str):
        raise InvalidManifest("metadata.name is required")
    if not DNS_SUBDOMAIN.match(metadata["name"]):
        raise InvalidManifest(f"metadata.name {metadata['name']!r} is not a DNS subdomain")
    spec = pod.get("spec")
    containers = spec.get("containers") if isinstance(spec, dict) else None
    if not isinstance(containers, list) or not containers:
        raise InvalidManifest("spec.containers must be a non-empty list")
    names = set()
    for container in containers:
        if not isinstance(container, dict) or not container.get("name") or not container.get("image"):
            raise InvalidManifest("every container needs a name and an image")
        if container["name"] in names:
            raise InvalidManifest(f"duplicate container name {container['name']!r}")
        names.add(container["name"])
        for key in ("command", "args"):
            value = container.get(key, [])
            if not isinstance(value, list) or not all(isinstance(item, str) for item in value):
                raise InvalidManifest(f"container {container['name']}: {key} must be a list of strings")


def static_pod_uid(pod: dict[str, Any], node_name: str, path: Path) -> str:
    hasher = hashlib.sha256()
    hasher.update(f"host:{node_name}file:{path}".encode())
    hasher.update(json.dumps(pod, sort_keys=True, separators=(",", ":")).encode())
    return hasher.hexdigest()[:32]


_Loader = getattr(yaml, "CSafeLoader", yaml.SafeLoader)  # libyaml: the agent rescans twice a second
_cache: dict[tuple[str, str], tuple[tuple[int, int, int], StaticPod | InvalidManifest]] = {}


def load(path: Path, node_name: str) -> StaticPod:
    """Decode one manifest; unchanged files (same inode, size, mtime) are not parsed again."""
    stat = path.stat()
    signature = (stat.st_ino, stat.st_size, stat.st_mtime_ns)
    key = (str(path), node_name)
    cached = _cache.get(key)
    if cached is None or cached[0] != signature:
        try:
            cached = (signature, _decode(path, node_name))
        except InvalidManifest as exc:
            cached = (signature, exc)
        _cache[key] = cached
    if isinstance(cached[1], InvalidManifest):
        raise cached[1]
    return cached[1]


def _decode(path: Path, node_name: str) -> StaticPod:
    try:
        pod = yaml.load(path.read_text(), Loader=_Loader)  # noqa: S506 - a safe loader
    except (OSError, UnicodeDecodeError, yaml.YAMLError) as exc:
        raise InvalidManifest(f"cannot decode: {exc}") from exc
    validate(pod)
    uid = static_pod_uid(pod, node_name, path)
    pod = copy.deepcopy(pod)
    metadata = pod["metadata"]
    metadata["name"] = f"{metadata['name']}-{node_name.lower()}"
    metadata["namespace"] = metadata.get("namespace") or "default"
    metadata["uid"] = uid
    annotations = metadata.get("annotations") or {}
    annotations.update({CONFIG_HASH: uid, CONFIG_SOURCE: "file"})
    metadata["annotations"] = annotations
    pod["spec"]["nodeName"] = node_name
    return StaticPod(path, pod, uid)


def scan(directory: Path, node_name: str) -> ManifestScan:
    result = ManifestScan()
    if not directory.is_dir():
        return result
    seen: set[str] = set()
    for path in sorted(directory.glob("[!.]*")):
        if path.is_dir() or not path.is_file():
            result.errors[path.name] = "not a regular file (kubelet does not recurse)"
            continue
        try:
            static_pod = load(path, node_name)
        except InvalidManifest as exc:
            result.errors[path.name] = str(exc)
            continue
        if static_pod.full_name in seen:
            result.errors[path.name] = f"duplicate pod name {static_pod.full_name}, ignored"
            continue
        seen.add(static_pod.full_name)
        result.pods.append(static_pod)
    return result
