"""Pod volumes on a chroot master: hostPath is the chroot's own path, mapped 1:1.

When a volumeMount's mountPath is the hostPath itself (the usual case: the KMS socket dir, the
apiserver's /etc/kubernetes/pki) nothing is mounted: the container runs in the same chroot. Other
mountPaths, emptyDir, Secret and ConfigMap volumes are bind mounts inside the chroot, made in the
container's own mount namespace as a container runtime does (container.py): the plugin's emptyDir on
/tmp must not hide the master's /tmp from Ansible. Their sources live under the pod dir in the chroot
and are removed when the pod stops.
"""

from __future__ import annotations

import base64
import os
import shutil
from pathlib import Path, PurePosixPath
from typing import Any

from tests.lab.node_agent.podspec import ObjectReader


class VolumeError(RuntimeError):
    """A volume cannot be set up (kubelet: FailedMount)."""


def resolve_in_root(root: Path, path: str, _depth: int = 0) -> Path:
    """The host path of `path` as seen inside the chroot `root`: symlinks are followed with `root`
    as `/` (Debian's /var/run -> /run must not lead to the host's /run)."""
    if _depth > 40:
        raise VolumeError(f"too many levels of symbolic links resolving {path}")
    parts = PurePosixPath("/", path).parts[1:]
    current = PurePosixPath("/")
    for index, part in enumerate(parts):
        if part == "..":
            current = current.parent
            continue
        candidate = current / part
        host = root / str(candidate).lstrip("/")
        if host.is_symlink():
            target = PurePosixPath(os.readlink(host))
            base = target if target.is_absolute() else current / target
            return resolve_in_root(root, str(base.joinpath(*parts[index + 1 :])), _depth + 1)
        current = candidate
    return root / str(current).lstrip("/")


def _host_path(root: Path, spec: dict[str, Any]) -> Path:
    target = resolve_in_root(root, spec["path"])
    kind = spec.get("type", "")
    if kind == "DirectoryOrCreate":
        target.mkdir(parents=True, exist_ok=True, mode=0o755)
    elif kind == "FileOrCreate":
        target.parent.mkdir(parents=True, exist_ok=True)
        target.touch(exist_ok=True)
    elif kind == "Directory" and not target.is_dir():
        raise VolumeError(f"hostPath type check failed: {spec['path']} is not a directory")
    elif kind == "File" and not target.is_file():
        raise VolumeError(f"hostPath type check failed: {spec['path']} is not a file")
    elif kind == "Socket" and not target.is_socket():
        raise VolumeError(f"hostPath type check failed: {spec['path']} is not a socket")
    return target


def _materialize(
    directory: Path, data: dict[str, str], items: list[dict[str, Any]] | None, mode: int
) -> None:
    directory.mkdir(parents=True, exist_ok=True)
    chosen = {item["key"]: item["path"] for item in items} if items else {key: key for key in data}
    for key, relative in chosen.items():
        if key not in data:
            raise VolumeError(f"key {key!r} not found")
        file = directory / relative
        file.parent.mkdir(parents=True, exist_ok=True)
        file.write_text(data[key])
        file.chmod(mode)


class PodVolumes:
    def __init__(self, pod: dict[str, Any], root: Path, read: ObjectReader | None) -> None:
        self.pod = pod
        self.root = root
        self.read = read
        self.binds: dict[str, list[tuple[Path, Path]]] = {}  # container -> (source, target) host paths
        self.pod_dir = resolve_in_root(root, f"/var/lib/kubelet/pods/{pod['metadata']['uid']}")

    def _source(self, volume: dict[str, Any]) -> Path:
        name = volume["name"]
        namespace = self.pod["metadata"].get("namespace", "default")
        if "hostPath" in volume:
            return _host_path(self.root, volume["hostPath"])
        if "emptyDir" in volume:
            path = self.pod_dir / "volumes/kubernetes.io~empty-dir" / name
            path.mkdir(parents=True, exist_ok=True)
            return path
        for kind, key, field in (("secrets", "secret", "secretName"), ("configmaps", "configMap", "name")):
            if key in volume:
                ref = volume[key]
                data = self.read(kind, namespace, ref[field]) if self.read else None
                if data is None:
                    raise VolumeError(f"{kind} {namespace}/{ref[field]} not found")
                if kind == "secrets":
                    data = {k: base64.b64decode(v).decode() for k, v in data.items()}
                path = self.pod_dir / f"volumes/kubernetes.io~{key.lower()}" / name
                _materialize(path, data, ref.get("items"), int(ref.get("defaultMode", 0o644)))
                return path
        raise VolumeError(f"volume {name}: only hostPath, emptyDir, secret and configMap are supported")

    def setup(self) -> None:
        """Prepare every volume and mount point; the binds themselves are made at container start."""
        volumes = {v["name"]: v for v in self.pod["spec"].get("volumes", [])}
        sources: dict[str, Path] = {}
        for container in self.pod["spec"]["containers"]:
            binds = self.binds.setdefault(container["name"], [])
            for mount in container.get("volumeMounts", []):
                if mount["name"] not in volumes:
                    raise VolumeError(f"volumeMount {mount['name']} has no volume")
                if mount["name"] not in sources:
                    sources[mount["name"]] = self._source(volumes[mount["name"]])
                source = sources[mount["name"]]
                if mount.get("subPath"):
                    source = source / mount["subPath"]
                target = resolve_in_root(self.root, mount["mountPath"])
                if target == source or target in [t for _, t in binds]:
                    continue
                if source.is_dir():
                    target.mkdir(parents=True, exist_ok=True)
                else:
                    target.parent.mkdir(parents=True, exist_ok=True)
                    target.touch(exist_ok=True)
                binds.append((source, target))

    def binds_for(self, container: str) -> list[tuple[Path, Path]]:
        """(source, target) bind mounts of `container`, made in its own mount namespace."""
        return self.binds.get(container, [])

    def teardown(self) -> None:
        # The binds went with the containers' mount namespaces; only their sources are left.
        self.binds.clear()
        shutil.rmtree(self.pod_dir, ignore_errors=True)
