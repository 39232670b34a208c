# Copyright (c) tke.kms contributors
# Apache License 2.0 (see https://www.apache.org/licenses/LICENSE-2.0)
"""The kube-apiserver static-pod manifest: reading its flags and version, adding what KMS encryption needs,
and removing it again.

PRIVATE to the collection. Runs on masters: standard library and PyYAML only (see _yaml_edit).
"""

from __future__ import annotations

import posixpath
import typing as t

from ansible_collections.tke.kms.plugins.module_utils._errors import TkeKmsError
from ansible_collections.tke.kms.plugins.module_utils._kube_version import (
    KubeVersion,
    parse_version,
    version_from_image,
)
from ansible_collections.tke.kms.plugins.module_utils._yaml_edit import Ref, YamlEditError, open_editor, yaml

CONTAINER_NAME = "kube-apiserver"
ENCRYPTION_FLAG = "--encryption-provider-config"
LEGACY_ENCRYPTION_FLAG = "--experimental-encryption-provider-config"
AUTOMATIC_RELOAD_FLAG = "--encryption-provider-config-automatic-reload"
# Every flag that turns encryption at rest on or tunes it; removed together when turning it off.
ENCRYPTION_FLAGS = (ENCRYPTION_FLAG, LEGACY_ENCRYPTION_FLAG, AUTOMATIC_RELOAD_FLAG)
FEATURE_GATES_FLAG = "--feature-gates"
CONFIG_CHECKSUM_ANNOTATION = "tke.kms/encryption-config-sha256"


class ManifestError(TkeKmsError):
    """The manifest cannot be used as asked; the message says what to fix."""


def encryption_flag_for(version: KubeVersion) -> str:
    """Kubernetes 1.10-1.12 only know the experimental flag; 1.13 renamed it."""
    return LEGACY_ENCRYPTION_FLAG if version < (1, 13) else ENCRYPTION_FLAG


def split_flag(item: t.Any) -> t.Tuple[t.Optional[str], t.Optional[str]]:
    """('--name', 'value') for '--name=value', ('--name', None) for a bare '--name', else (None, None)."""
    if not isinstance(item, str) or not item.startswith("--"):
        return None, None
    name, sep, value = item.partition("=")
    return name, (value if sep else None)


def parse_feature_gates(value: str) -> t.List[t.Tuple[str, str]]:
    gates = []
    for part in value.split(","):
        name, _sep, setting = part.strip().partition("=")
        if name:
            gates.append((name, setting))
    return gates


def host_path_for(mounts: t.List[t.Any], volumes: t.List[t.Any], container_path: str) -> t.Optional[str]:
    """The host path a container path maps to through the pod's hostPath volumes (None if not mounted)."""
    by_name = {v.get("name"): v for v in volumes if isinstance(v, dict)}
    best = None
    for mount in mounts:
        if not isinstance(mount, dict) or not isinstance(mount.get("mountPath"), str):
            continue
        mount_path = mount["mountPath"].rstrip("/") or "/"
        if container_path != mount_path and not container_path.startswith(mount_path.rstrip("/") + "/"):
            continue
        host = (by_name.get(mount.get("name")) or {}).get("hostPath")
        if not isinstance(host, dict) or not isinstance(host.get("path"), str):
            continue
        if best is None or len(mount_path) > len(best[0]):
            best = (mount_path, host["path"])
    if best is None:
        return None
    mount_path, host = best
    return posixpath.normpath(host + container_path[len(mount_path) :])


class HostPathMount(t.NamedTuple):
    """A host path the kube-apiserver container must see at the same path."""

    name: str  # volume name used if a volume has to be added
    path: str
    type: str  # hostPath type
    read_only: bool


class ApiserverManifest:
    """A parsed kube-apiserver manifest, with the edits this collection makes to it."""

    def __init__(self, text: str, path: str = "the manifest") -> None:
        self.path = path
        self.editor = open_editor(text, path, ManifestError)
        pod = self.editor.root
        if not isinstance(pod.value, dict) or pod.value.get("kind") != "Pod":
            raise ManifestError("%s is not a Pod manifest (kind: %s)" % (path, _kind_of(pod.value)))
        self.pod = pod
        self.spec = self._mapping(pod, "spec", "the pod")
        containers = self.editor.get(self.spec, "containers")
        if containers is None or not isinstance(containers.value, list):
            raise ManifestError("%s has no spec.containers list" % path)
        names = [c.value.get("name") for c in self.editor.items(containers) if isinstance(c.value, dict)]
        matches = [
            c
            for c in self.editor.items(containers)
            if isinstance(c.value, dict) and c.value.get("name") == CONTAINER_NAME
        ]
        if not matches:
            raise ManifestError(
                "%s has no container named %s (containers: %s); is this the kube-apiserver manifest?"
                % (path, CONTAINER_NAME, ", ".join(str(n) for n in names) or "none")
            )
        self.container = matches[0]
        self.flags_ref = self._flags_list()

    # reading ----------------------------------------------------------------------------------------------

    def _mapping(self, parent: Ref, key: str, what: str) -> Ref:
        child = self.editor.get(parent, key)
        if child is None or not isinstance(child.value, dict):
            raise ManifestError("%s: %s has no %s mapping" % (self.path, what, key))
        return child

    def _flags_list(self) -> Ref:
        candidates = []
        for key in ("command", "args"):
            ref = self.editor.get(self.container, key)
            if ref is None:
                continue
            if not isinstance(ref.value, list) or not all(isinstance(i, str) for i in ref.value):
                raise ManifestError(
                    "%s: container %s: %s must be a list of strings" % (self.path, CONTAINER_NAME, key)
                )
            candidates.append(ref)
        with_flags = [ref for ref in candidates if any(split_flag(i)[0] for i in ref.value)]
        if with_flags:
            return with_flags[0]
        if candidates:
            return candidates[-1]
        raise ManifestError("%s: container %s has neither command nor args" % (self.path, CONTAINER_NAME))

    @property
    def image(self) -> t.Optional[str]:
        return self.container.value.get("image")

    def flags(self) -> t.Dict[str, t.Optional[str]]:
        """Flag name -> value (the last occurrence wins, as in kube-apiserver); '--a b' pairs count too."""
        result: t.Dict[str, t.Optional[str]] = {}
        items = self.flags_ref.value
        for index, item in enumerate(items):
            name, value = split_flag(item)
            if name is None:
                continue
            if value is None and index + 1 < len(items) and not str(items[index + 1]).startswith("-"):
                value = items[index + 1]
            result[name] = value
        return result

    def version(self, override: t.Optional[str] = None) -> KubeVersion:
        if override:
            try:
                return parse_version(override)
            except ValueError as exc:
                raise ManifestError(str(exc)) from exc
        version = version_from_image(self.image)
        if version is None:
            raise ManifestError(
                "%s: cannot tell the Kubernetes version from the image %r; set kubernetes_version"
                % (self.path, self.image)
            )
        return version

    def encryption_config_path(self) -> t.Optional[str]:
        flags = self.flags()
        return flags.get(ENCRYPTION_FLAG) or flags.get(LEGACY_ENCRYPTION_FLAG)

    def encryption_config_host_path(self) -> t.Optional[str]:
        """Where the named encryption configuration is on the master: the host path of its mount."""
        path = self.encryption_config_path()
        return (self.host_path_of(path) or path) if path else None

    def feature_gates(self) -> t.Dict[str, str]:
        return dict(parse_feature_gates(self.flags().get(FEATURE_GATES_FLAG) or ""))

    def _list(self, parent: Ref, key: str) -> t.List[t.Any]:
        value = parent.value.get(key)
        return value if isinstance(value, list) else []

    def host_path_of(self, container_path: str) -> t.Optional[str]:
        return host_path_for(
            self._list(self.container, "volumeMounts"), self._list(self.spec, "volumes"), container_path
        )

    # editing ----------------------------------------------------------------------------------------------

    def set_flag(self, name: str, value: str, replaces: t.Sequence[str] = ()) -> None:
        """Make '--name=value' the setting of the flag; flags named in replaces are renamed to it."""
        items = self.flags_ref.value
        found = False
        for index in range(len(items)):
            flag, current = split_flag(items[index])
            if flag != name and flag not in replaces:
                continue
            found = True
            if current is None and index + 1 < len(items) and not items[index + 1].startswith("-"):
                if flag != name:
                    self.editor.set_scalar(self.flags_ref, index, name)
                if items[index + 1] != value:
                    self.editor.set_scalar(self.flags_ref, index + 1, value)
            elif items[index] != "%s=%s" % (name, value):
                self.editor.set_scalar(self.flags_ref, index, "%s=%s" % (name, value))
        if not found:
            self.editor.insert_item(self.flags_ref, self._flag_position(name), "%s=%s" % (name, value))

    def _flag_position(self, name: str) -> int:
        """kubeadm writes flags sorted by name: keep them so; otherwise append."""
        items = self.flags_ref.value
        flag_positions = [(i, split_flag(item)[0]) for i, item in enumerate(items) if split_flag(item)[0]]
        names = [flag for _index, flag in flag_positions]
        if names == sorted(names):
            for index, flag in flag_positions:
                if t.cast(str, flag) > name:
                    return index
        return len(items)

    def merge_feature_gates(self, gates: t.Dict[str, bool]) -> None:
        if not gates:
            return
        current = parse_feature_gates(self.flags().get(FEATURE_GATES_FLAG) or "")
        merged = dict(current)
        for gate, enabled in gates.items():
            merged[gate] = "true" if enabled else "false"
        ordered = [name for name, _value in current] + [name for name in gates if name not in dict(current)]
        value = ",".join("%s=%s" % (name, merged[name]) for name in ordered)
        self.set_flag(FEATURE_GATES_FLAG, value)

    def ensure_host_path(self, mount: HostPathMount) -> None:
        """Make mount.path visible in the container at the same path unless a mount shows it already."""
        if self.host_path_of(mount.path) == posixpath.normpath(mount.path):
            return
        volumes = self.sequence(self.spec, "volumes")
        mounts = self.sequence(self.container, "volumeMounts")
        volume = next(
            (
                v
                for v in self.editor.items(volumes)
                if isinstance(v.value, dict) and v.value.get("name") == mount.name
            ),
            None,
        )
        if volume is None:
            self.editor.insert_item(
                volumes,
                len(volumes.value),
                {"hostPath": {"path": mount.path, "type": mount.type}, "name": mount.name},
            )
        else:
            host = self.editor.get(volume, "hostPath")
            if (
                host is None
                or not isinstance(host.value, dict)
                or not isinstance(host.value.get("path"), str)
            ):
                raise ManifestError(
                    "%s: volume %s exists but is not a hostPath volume; choose another volume name"
                    % (self.path, mount.name)
                )
            self.editor.set_key(host, "path", mount.path)
        existing = next(
            (
                m
                for m in self.editor.items(mounts)
                if isinstance(m.value, dict) and m.value.get("name") == mount.name
            ),
            None,
        )
        if existing is None:
            entry: t.Dict[str, t.Any] = {"mountPath": mount.path, "name": mount.name}
            if mount.read_only:
                entry["readOnly"] = True
            self.editor.insert_item(mounts, len(mounts.value), entry)
        else:
            self.editor.set_key(existing, "mountPath", mount.path)
        if self.host_path_of(mount.path) != posixpath.normpath(mount.path):
            raise ManifestError(
                "%s: %s stays hidden by another volume mount; fix the mounts by hand"
                % (self.path, mount.path)
            )

    def sequence(self, parent: Ref, key: str) -> Ref:
        """The list parent[key], created empty when missing."""
        ref = self.editor.get(parent, key)
        if ref is None or ref.value is None:
            if ref is not None:
                raise ManifestError("%s: %s is empty (null); remove it or make it a list" % (self.path, key))
            return self.editor.set_key(parent, key, [])
        if not isinstance(ref.value, list):
            raise ManifestError("%s: %s must be a list" % (self.path, key))
        return ref

    def set_annotation(self, key: str, value: str) -> None:
        metadata = self.editor.get(self.pod, "metadata")
        if metadata is None or not isinstance(metadata.value, dict):
            raise ManifestError("%s has no metadata" % self.path)
        annotations = self.editor.get(metadata, "annotations")
        if annotations is None:
            annotations = self.editor.set_key(metadata, "annotations", {})
        elif not isinstance(annotations.value, dict):
            raise ManifestError("%s: metadata.annotations must be a mapping" % self.path)
        if annotations.value.get(key) != value:
            self.editor.set_key(annotations, key, value)

    def remove_flags(self, names: t.Sequence[str]) -> t.List[str]:
        """Remove each occurrence of the flags (a separate value item too); returns them as '--name=value'."""
        items = self.flags_ref.value  # the list remove_item deletes from
        removed: t.List[str] = []
        index = 0
        while index < len(items):
            name, value = split_flag(items[index])
            if name is None or name not in names:
                index += 1
                continue
            self.editor.remove_item(self.flags_ref, index)
            if value is None and index < len(items) and not items[index].startswith("-"):
                value = items[index]
                self.editor.remove_item(self.flags_ref, index)
            removed.append(name if value is None else "%s=%s" % (name, value))
        return removed

    def remove_host_path(self, name: str) -> t.Tuple[bool, bool]:
        """Remove the hostPath volume `name` and the container's mounts of it: (volume gone, mount gone).

        A volume of that name that is not a hostPath volume is not one this collection adds: it stays, and
        so do its mounts.
        """
        volumes = self.editor.get(self.spec, "volumes")
        volume_items = volumes.value if volumes is not None and isinstance(volumes.value, list) else []
        named = [i for i, v in enumerate(volume_items) if isinstance(v, dict) and v.get("name") == name]
        if any(not isinstance(volume_items[i].get("hostPath"), dict) for i in named):
            return False, False
        mounts_removed = self._remove_named(self.container, "volumeMounts", name)
        volume_removed = self._remove_named(self.spec, "volumes", name)
        return volume_removed, mounts_removed

    def _remove_named(self, parent: Ref, key: str, name: str) -> bool:
        """Remove the items called `name` from the list parent[key]; the key goes when the list empties."""
        sequence = self.editor.get(parent, key)
        if sequence is None or not isinstance(sequence.value, list):
            return False
        found = [i for i, v in enumerate(sequence.value) if isinstance(v, dict) and v.get("name") == name]
        for index in reversed(found):
            self.editor.remove_item(sequence, index)
        if found and not sequence.value:
            self.editor.remove_key(parent, key)
        return bool(found)

    def remove_annotation(self, key: str) -> bool:
        """Remove a pod annotation; the annotations mapping goes when it empties."""
        metadata = self.editor.get(self.pod, "metadata")
        annotations = self.editor.get(metadata, "annotations") if metadata is not None else None
        if annotations is None or not isinstance(annotations.value, dict) or key not in annotations.value:
            return False
        self.editor.remove_key(annotations, key)
        if not annotations.value:
            self.editor.remove_key(t.cast(Ref, metadata), "annotations")
        return True

    def render(self) -> t.Tuple[str, bool]:
        """The edited text and whether comments and layout were kept (False: re-dumped, comments lost)."""
        try:
            return self.editor.render(), True
        except YamlEditError:
            return yaml.safe_dump(
                self.editor.data, default_flow_style=False, sort_keys=False, allow_unicode=True
            ), False


def _kind_of(value: t.Any) -> str:
    return str(value.get("kind")) if isinstance(value, dict) else type(value).__name__


def apiserver_url(flags: t.Dict[str, t.Optional[str]]) -> str:
    """This master's own apiserver endpoint, from its flags (not a load balancer in front of several)."""
    bind = flags.get("--bind-address") or ""
    wildcard = bind in ("", "0.0.0.0", "::")  # listening everywhere: reach it at its advertised address
    host = (flags.get("--advertise-address") or "127.0.0.1") if wildcard else bind
    if ":" in host:
        host = "[%s]" % host
    return "https://%s:%s" % (host, flags.get("--secure-port") or "6443")


def etcd_settings(flags: t.Dict[str, t.Optional[str]]) -> t.Dict[str, t.Any]:
    """How this apiserver reaches etcd: endpoints, its client certificate, and the key prefix."""
    servers = [s.strip() for s in (flags.get("--etcd-servers") or "").split(",") if s.strip()]
    return dict(
        servers=servers,
        ca_file=flags.get("--etcd-cafile"),
        cert_file=flags.get("--etcd-certfile"),
        key_file=flags.get("--etcd-keyfile"),
        prefix=flags.get("--etcd-prefix") or "/registry",
    )
