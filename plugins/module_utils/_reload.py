# Copyright (c) tke.kms contributors
# Apache License 2.0 (see https://www.apache.org/licenses/LICENSE-2.0)
"""Encryption configs that kube-apiserver reloads by itself (--encryption-provider-config-automatic-reload):
the directory mount the manifest needs for it, and what the apiserver's metrics say about the config in force.

PRIVATE to the collection. Runs on masters: standard library and PyYAML only.

Why a directory: the rollout replaces the config by writing a new file and renaming it over the old one. A
hostPath mount of the file itself binds the old inode into the container, so the apiserver would read the old
config for ever; a mount of the directory shows the new file.
"""

from __future__ import annotations

import hashlib
import posixpath
import re
import typing as t

from ansible_collections.tke.kms.plugins.module_utils import _manifest as mf
from ansible_collections.tke.kms.plugins.module_utils._kube_version import KubeVersion
from ansible_collections.tke.kms.plugins.module_utils._yaml_edit import Ref

MINIMUM_VERSION = (1, 26)  # the first kube-apiserver with --encryption-provider-config-automatic-reload
DIRECTORY_TYPE = "DirectoryOrCreate"
METRIC_PREFIX = b"apiserver_encryption_config_controller_"
LAST_CONFIG = "apiserver_encryption_config_controller_last_config_info"
RELOADS = "apiserver_encryption_config_controller_automatic_reloads_total"
LAST_RELOAD = "apiserver_encryption_config_controller_automatic_reload_last_timestamp_seconds"
# Kubernetes 1.26 and 1.27 count successes and failures under their own names.
OLD_FAILURES = "apiserver_encryption_config_controller_automatic_reload_failures_total"
TRUE_VALUES = ("1", "t", "T", "true", "TRUE", "True")  # what Go's strconv.ParseBool takes as true
SAMPLE = re.compile(r"^([a-zA-Z_:][a-zA-Z0-9_:]*)(?:\{(.*)\})?\s+(\S+)")
LABEL = re.compile(r'([a-zA-Z_][a-zA-Z0-9_]*)="((?:[^"\\]|\\.)*)"')


def refuse_old_version(version: KubeVersion) -> None:
    if version < MINIMUM_VERSION:
        raise mf.ManifestError(
            "Kubernetes %s has no --encryption-provider-config-automatic-reload (it came with 1.26): this "
            "apiserver loads a changed encryption config only when it restarts; turn automatic reload off "
            "for this cluster" % str(version)
        )


def reloads_config(manifest: mf.ApiserverManifest) -> bool:
    """Whether the manifest turns automatic reload on (a bare flag counts as true, as in kube-apiserver)."""
    flags = manifest.flags()
    return mf.AUTOMATIC_RELOAD_FLAG in flags and (flags[mf.AUTOMATIC_RELOAD_FLAG] or "true") in TRUE_VALUES


def config_hash(data: bytes) -> str:
    """The hash kube-apiserver reports for a config: sha256 of the file's exact bytes."""
    return "sha256:" + hashlib.sha256(data).hexdigest()


# The manifest ----------------------------------------------------------------------------------------------


def norm_path(path: t.Any) -> t.Optional[str]:
    return posixpath.normpath(path) if isinstance(path, str) and path else None


def mounts_file(manifest: mf.ApiserverManifest, path: str) -> bool:
    """Whether the kube-apiserver container mounts this very file (not a directory holding it)."""
    mounts = manifest.container.value.get("volumeMounts") or []
    return any(isinstance(m, dict) and norm_path(m.get("mountPath")) == norm_path(path) for m in mounts)


def _named(sequence: Ref, manifest: mf.ApiserverManifest, name: str) -> t.List[Ref]:
    return [
        ref
        for ref in manifest.editor.items(sequence)
        if isinstance(ref.value, dict) and ref.value.get("name") == name
    ]


def _set(manifest: mf.ApiserverManifest, mapping: Ref, key: str, value: t.Any) -> None:
    if mapping.value.get(key) != value:  # an equal value stays byte for byte as it is
        manifest.editor.set_key(mapping, key, value)


def mount_config_directory(manifest: mf.ApiserverManifest, volume_name: str, config_path: str) -> None:
    """Show the config's directory in the kube-apiserver container at the same path through a hostPath
    directory volume, and take out any mount of the file itself (it would pin the file's old inode).

    A file mount of the config becomes the directory mount (same volume name); without one, the volume
    volume_name is used or added. A directory already shown by another mount is left as it is.
    """
    config = t.cast(str, norm_path(config_path))
    directory = posixpath.dirname(config)
    mounts = manifest.sequence(manifest.container, "volumeMounts")
    volumes = manifest.sequence(manifest.spec, "volumes")
    file_mounts = [m for m in mounts.value if isinstance(m, dict) and norm_path(m.get("mountPath")) == config]
    target = str(file_mounts[-1].get("name")) if file_mounts else volume_name
    others = [
        m for m in mounts.value if isinstance(m, dict) and m.get("name") != target and m not in file_mounts
    ]
    if mf.host_path_for(others, volumes.value, directory) == directory:
        _remove_file_mounts(manifest, mounts, volumes, config)
        return
    _point_volume_at(manifest, volumes, target, directory)
    named = _named(mounts, manifest, target)
    if named:
        _set(manifest, named[0], "mountPath", directory)
    else:
        manifest.editor.insert_item(
            mounts, len(mounts.value), {"mountPath": directory, "name": target, "readOnly": True}
        )
    _remove_file_mounts(manifest, mounts, volumes, config)
    shown = mf.host_path_for(mounts.value, volumes.value, config)
    if shown != config:
        raise mf.ManifestError(
            "%s: %s stays hidden by another volume mount (it shows %s); fix the mounts by hand"
            % (manifest.path, config, shown)
        )


def _point_volume_at(manifest: mf.ApiserverManifest, volumes: Ref, name: str, directory: str) -> None:
    found = _named(volumes, manifest, name)
    if not found:
        manifest.editor.insert_item(
            volumes,
            len(volumes.value),
            {"hostPath": {"path": directory, "type": DIRECTORY_TYPE}, "name": name},
        )
        return
    host = manifest.editor.get(found[0], "hostPath")
    if host is None or not isinstance(host.value, dict):
        raise mf.ManifestError(
            "%s: volume %s exists but is not a hostPath volume; choose another volume name"
            % (manifest.path, name)
        )
    _set(manifest, host, "path", directory)
    _set(manifest, host, "type", DIRECTORY_TYPE)


def _remove_file_mounts(manifest: mf.ApiserverManifest, mounts: Ref, volumes: Ref, config: str) -> None:
    """Remove the mounts of the config file itself, and their hostPath volumes once nothing mounts them."""
    index = 0
    names = set()
    while index < len(mounts.value):
        mount = mounts.value[index]
        if isinstance(mount, dict) and norm_path(mount.get("mountPath")) == config:
            names.add(mount.get("name"))
            manifest.editor.remove_item(mounts, index)
        else:
            index += 1
    still_used = {m.get("name") for m in mounts.value if isinstance(m, dict)}
    index = 0
    while index < len(volumes.value):
        volume = volumes.value[index]
        if (
            isinstance(volume, dict)
            and volume.get("name") in names - still_used
            and isinstance(volume.get("hostPath"), dict)
        ):
            manifest.editor.remove_item(volumes, index)
        else:
            index += 1


# The metrics -----------------------------------------------------------------------------------------------


class ReloadState(t.NamedTuple):
    """What one /metrics answer says about the encryption config in force."""

    config_hashes: t.List[str]  # hashes of the config in force (empty: the apiserver does not report them)
    failures: float  # failed automatic reloads since the apiserver started
    last_success_at: t.Optional[float]  # seconds since the epoch
    last_failure_at: t.Optional[float]


def samples(body: bytes, prefix: bytes) -> t.Iterator[t.Tuple[str, t.Dict[str, str], float]]:
    """(name, labels, value) of each sample line of a Prometheus text answer whose name starts with prefix."""
    for raw in body.splitlines():
        if not raw.startswith(prefix):
            continue
        match = SAMPLE.match(raw.decode("utf-8", "replace"))
        if not match:
            continue
        try:
            value = float(match.group(3))
        except ValueError:
            continue
        yield match.group(1), dict(LABEL.findall(match.group(2) or "")), value


def reload_state(body: bytes) -> ReloadState:
    hashes: t.List[str] = []
    failures = 0.0
    last: t.Dict[str, float] = {}
    for name, labels, value in samples(body, METRIC_PREFIX):
        status = labels.get("status")
        if name == LAST_CONFIG and value == 1 and labels.get("hash"):
            hashes.append(labels["hash"])
        elif (name == RELOADS and status == "failure") or name == OLD_FAILURES:
            failures += value
        elif name == LAST_RELOAD and status in ("success", "failure") and value > 0:
            last[status] = max(value, last.get(status, 0.0))
    return ReloadState(hashes, failures, last.get("success"), last.get("failure"))
