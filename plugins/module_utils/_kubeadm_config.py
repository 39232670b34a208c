# Copyright (c) tke.kms contributors
# Apache License 2.0 (see https://www.apache.org/licenses/LICENSE-2.0)
"""The kubeadm ClusterConfiguration: the encryption flag, volumes and mounts of the kube-apiserver manifest,
written into its apiServer section so that `kubeadm upgrade` (which regenerates the manifest from it) keeps
them, and taken out again.

PRIVATE to the collection. Runs on masters: standard library and PyYAML only (see _yaml_edit).

kubeadm.k8s.io/v1beta2 and v1beta3 keep apiServer.extraArgs as a mapping name -> value; v1beta4 (kubeadm
1.31) as a list of {name, value}. apiServer.extraVolumes is a list of {name, hostPath, mountPath, readOnly,
pathType} in all three.
"""

from __future__ import annotations

import posixpath
import re
import typing as t

from ansible_collections.tke.kms.plugins.module_utils import _manifest as mf
from ansible_collections.tke.kms.plugins.module_utils import _reload as rl
from ansible_collections.tke.kms.plugins.module_utils._errors import TkeKmsError
from ansible_collections.tke.kms.plugins.module_utils._yaml_edit import (
    Ref,
    YamlEditError,
    open_editor,
    syntax_error_message,
    yaml,
)

API_GROUP = "kubeadm.k8s.io"
MAP_ARGS_VERSIONS = ("v1beta2", "v1beta3")
LIST_ARGS_VERSIONS = ("v1beta4",)
KIND = "ClusterConfiguration"
CONFIGMAP_NAMESPACE = "kube-system"
CONFIGMAP_NAME = "kubeadm-config"
CONFIGMAP_KEY = "ClusterConfiguration"
FEATURE_GATES_ARG = "feature-gates"
# Names of the hostPath volumes kubeadm generates by itself: a path they show needs no extra volume.
KUBEADM_VOLUMES = (
    "k8s-certs",
    "ca-certs",
    "etc-pki",
    "etc-ca-certificates",
    "usr-share-ca-certificates",
    "usr-local-share-ca-certificates",
)
KUBEADM_VOLUME_PREFIXES = ("etcd-certs-",)
# A line that starts a new document of a multi-document file (kubeadm's own files use a bare ---).
DOCUMENT_START = re.compile(r"^---[ \t]*(?:#.*)?(?:\r?\n|$)", re.MULTILINE)


class KubeadmConfigError(TkeKmsError):
    """The kubeadm configuration cannot be used as asked; the message says what to fix."""


class ExtraVolume(t.NamedTuple):
    """One apiServer.extraVolumes entry."""

    name: str
    host_path: str
    mount_path: str
    read_only: bool
    path_type: str

    def as_dict(self) -> t.Dict[str, t.Any]:
        return {
            "name": self.name,
            "hostPath": self.host_path,
            "mountPath": self.mount_path,
            "readOnly": self.read_only,
            "pathType": self.path_type,
        }

    @classmethod
    def from_dict(cls, value: t.Any) -> t.Optional[ExtraVolume]:
        if not isinstance(value, dict):
            return None
        return cls(
            str(value.get("name") or ""),
            str(value.get("hostPath") or ""),
            str(value.get("mountPath") or ""),
            bool(value.get("readOnly")),
            str(value.get("pathType") or ""),
        )


class Wanted(t.NamedTuple):
    """What the ClusterConfiguration must carry: extra args (no leading --), feature gates, extra volumes."""

    args: t.Dict[str, str]
    feature_gates: t.Dict[str, str]
    volumes: t.List[ExtraVolume]


# What the manifest carries ----------------------------------------------------------------------------------


def wanted_from_manifest(
    manifest: mf.ApiserverManifest, socket_dir: str, gate_names: t.Sequence[str]
) -> Wanted:
    """The encryption flags, the named feature gates and the volumes showing the config and the plugin socket
    directory, as the manifest has them now (the rollout's edit is the source of truth)."""
    flags = manifest.flags()
    config_path = manifest.encryption_config_path()
    if not config_path:
        raise KubeadmConfigError(
            "%s names no encryption provider config, so there is nothing to keep across kubeadm upgrade; "
            "point kube-apiserver at the config first (tke.kms.apiserver_manifest), or use state=absent"
            % manifest.path
        )
    args = {}
    for flag in mf.ENCRYPTION_FLAGS:
        if flag in flags:
            args[flag[2:]] = flags[flag] if flags[flag] is not None else "true"
    gates = manifest.feature_gates()
    wanted_gates = {name: gates[name] for name in gate_names if name in gates}
    shown = posixpath.dirname(config_path) if rl.reloads_config(manifest) else config_path
    volumes: t.List[ExtraVolume] = []
    for path in (shown, socket_dir):
        volume = volume_showing(manifest, path)
        if volume is not None and volume.name not in [v.name for v in volumes]:
            volumes.append(volume)
    return Wanted(args, wanted_gates, volumes)


def volume_showing(manifest: mf.ApiserverManifest, path: str) -> t.Optional[ExtraVolume]:
    """The hostPath volume whose mount shows path in the container (the deepest mount), unless kubeadm makes
    that volume itself; KubeadmConfigError when no mount shows it."""
    path = posixpath.normpath(path)
    mounts = [m for m in manifest.container.value.get("volumeMounts") or [] if isinstance(m, dict)]
    volumes = {v.get("name"): v for v in manifest.spec.value.get("volumes") or [] if isinstance(v, dict)}
    best = None
    for mount in mounts:
        mount_path = posixpath.normpath(str(mount.get("mountPath") or "/"))
        shows = path == mount_path or path.startswith(mount_path.rstrip("/") + "/")
        if shows and (best is None or len(mount_path) > len(posixpath.normpath(best["mountPath"]))):
            best = mount
    if best is None:
        raise KubeadmConfigError(
            "%s: no volume mount shows %s in the kube-apiserver container; run tke.kms.apiserver_manifest "
            "first" % (manifest.path, path)
        )
    name = str(best.get("name"))
    if name in KUBEADM_VOLUMES or name.startswith(KUBEADM_VOLUME_PREFIXES):
        return None
    host = (volumes.get(name) or {}).get("hostPath")
    if not isinstance(host, dict) or not isinstance(host.get("path"), str):
        raise KubeadmConfigError(
            "%s: volume %s that shows %s is not a hostPath volume; kubeadm's extraVolumes can only carry "
            "hostPath volumes" % (manifest.path, name, path)
        )
    return ExtraVolume(
        name,
        host["path"],
        str(best["mountPath"]),
        bool(best.get("readOnly")),
        str(host.get("type") or ""),
    )


# The ClusterConfiguration document --------------------------------------------------------------------------


class ClusterConfiguration:
    """One ClusterConfiguration YAML document, with the edits of its apiServer section."""

    def __init__(self, text: str, what: str) -> None:
        self.what = what
        self.editor = open_editor(text, what, KubeadmConfigError)
        root = self.editor.root
        if not isinstance(root.value, dict) or root.value.get("kind") != KIND:
            kind = root.value.get("kind") if isinstance(root.value, dict) else type(root.value).__name__
            raise KubeadmConfigError("%s is not a kubeadm %s (kind: %s)" % (what, KIND, kind))
        self.root = root
        self.api_version = self._api_version(root.value.get("apiVersion"))

    def _api_version(self, value: t.Any) -> str:
        group, _sep, version = str(value).partition("/")
        if group != API_GROUP or version not in MAP_ARGS_VERSIONS + LIST_ARGS_VERSIONS:
            raise KubeadmConfigError(
                "%s has apiVersion %s; this collection edits %s only. Migrate it with "
                "`kubeadm config migrate` or add the encryption flag and volumes to its apiServer section "
                "by hand"
                % (
                    self.what,
                    value,
                    ", ".join(API_GROUP + "/" + v for v in MAP_ARGS_VERSIONS + LIST_ARGS_VERSIONS),
                )
            )
        return version

    @property
    def args_as_list(self) -> bool:
        return self.api_version in LIST_ARGS_VERSIONS

    # navigation -------------------------------------------------------------------------------------------

    def _child(self, parent: Ref, key: str, empty: t.Any, create: bool) -> t.Optional[Ref]:
        """parent[key], a mapping or list like `empty`; made anew (block style) if missing, null or empty."""
        ref = self.editor.get(parent, key)
        if ref is not None and ref.value not in (None, {}, []):
            if not isinstance(ref.value, type(empty)):
                raise KubeadmConfigError(
                    "%s: %s must be a %s" % (self.what, key, "mapping" if isinstance(empty, dict) else "list")
                )
            return ref
        if not create:
            return None
        if ref is not None:
            self.editor.remove_key(parent, key)  # null or {} / []: written anew in block style
        return self.editor.set_key(parent, key, type(empty)())

    def _api_server(self, create: bool) -> t.Optional[Ref]:
        return self._child(self.root, "apiServer", {}, create)

    # extraArgs --------------------------------------------------------------------------------------------

    def args(self) -> t.Dict[str, str]:
        """apiServer.extraArgs as name -> value (in a v1beta4 list, the last occurrence wins)."""
        api_server = self.root.value.get("apiServer")
        extra = api_server.get("extraArgs") if isinstance(api_server, dict) else None
        if isinstance(extra, dict):
            return {str(k): str(v) for k, v in extra.items()}
        if isinstance(extra, list):
            return {str(i.get("name")): str(i.get("value")) for i in extra if isinstance(i, dict)}
        return {}

    def set_arg(self, name: str, value: str) -> None:
        api_server = t.cast(Ref, self._api_server(create=True))
        if self.args_as_list:
            extra = t.cast(Ref, self._child(api_server, "extraArgs", [], create=True))
            matches = [
                r
                for r in self.editor.items(extra)
                if isinstance(r.value, dict) and r.value.get("name") == name
            ]
            for item in matches:
                if item.value.get("value") != value:
                    self.editor.set_key(item, "value", value)
            if not matches:
                self.editor.insert_item(extra, len(extra.value), {"name": name, "value": value})
            return
        extra = t.cast(Ref, self._child(api_server, "extraArgs", {}, create=True))
        if extra.value.get(name) != value:
            self.editor.set_key(extra, name, value)

    def remove_args(self, names: t.Sequence[str]) -> t.List[str]:
        """Remove the args; returns them as name=value. extraArgs goes when it empties."""
        api_server = self._api_server(create=False)
        extra = self.editor.get(api_server, "extraArgs") if api_server is not None else None
        if extra is None or not isinstance(extra.value, (dict, list)):
            return []
        removed = []
        if isinstance(extra.value, dict):
            for name in [n for n in extra.value if n in names]:
                removed.append("%s=%s" % (name, extra.value[name]))
                self.editor.remove_key(extra, name)
        else:
            for index in reversed(range(len(extra.value))):
                item = extra.value[index]
                if isinstance(item, dict) and item.get("name") in names:
                    removed.insert(0, "%s=%s" % (item.get("name"), item.get("value")))
                    self.editor.remove_item(extra, index)
        if removed and not extra.value:
            self.editor.remove_key(t.cast(Ref, api_server), "extraArgs")
        return removed

    def merge_feature_gates(self, gates: t.Dict[str, str]) -> None:
        if not gates:
            return
        current = mf.parse_feature_gates(self.args().get(FEATURE_GATES_ARG, ""))
        merged = dict(current)
        merged.update(gates)
        ordered = [name for name, _value in current] + [name for name in gates if name not in dict(current)]
        value = ",".join("%s=%s" % (name, merged[name]) for name in ordered)
        if value != self.args().get(FEATURE_GATES_ARG):
            self.set_arg(FEATURE_GATES_ARG, value)

    # extraVolumes -----------------------------------------------------------------------------------------

    def volumes(self) -> t.List[ExtraVolume]:
        api_server = self.root.value.get("apiServer")
        extra = api_server.get("extraVolumes") if isinstance(api_server, dict) else None
        return [v for v in (ExtraVolume.from_dict(i) for i in extra or []) if v is not None]

    def set_volume(self, volume: ExtraVolume) -> None:
        """Add the volume, or replace the one of that name when it differs."""
        api_server = t.cast(Ref, self._api_server(create=True))
        extra = t.cast(Ref, self._child(api_server, "extraVolumes", [], create=True))
        for index, item in enumerate(extra.value):
            if isinstance(item, dict) and item.get("name") == volume.name:
                if ExtraVolume.from_dict(item) != volume:
                    self.editor.remove_item(extra, index)
                    self.editor.insert_item(extra, index, volume.as_dict())
                return
        self.editor.insert_item(extra, len(extra.value), volume.as_dict())

    def remove_volumes(self, names: t.Sequence[str]) -> t.List[str]:
        """Remove the extraVolumes of these names; extraVolumes goes when it empties."""
        api_server = self._api_server(create=False)
        extra = self.editor.get(api_server, "extraVolumes") if api_server is not None else None
        if extra is None or not isinstance(extra.value, list):
            return []
        removed = []
        for index in reversed(range(len(extra.value))):
            item = extra.value[index]
            if isinstance(item, dict) and item.get("name") in names:
                removed.insert(0, str(item.get("name")))
                self.editor.remove_item(extra, index)
        if removed and not extra.value:
            self.editor.remove_key(t.cast(Ref, api_server), "extraVolumes")
        return removed

    # the edits --------------------------------------------------------------------------------------------

    def apply(self, wanted: Wanted) -> None:
        for name, value in wanted.args.items():
            self.set_arg(name, value)
        self.merge_feature_gates(wanted.feature_gates)
        for volume in wanted.volumes:
            self.set_volume(volume)

    def remove(self, volume_names: t.Sequence[str]) -> t.Dict[str, t.List[str]]:
        """Take the encryption flags and the named volumes out; feature gates stay, as in the manifest."""
        flags = self.remove_args([flag[2:] for flag in mf.ENCRYPTION_FLAGS])
        return dict(flags=flags, volumes=self.remove_volumes(volume_names))

    def render(self) -> str:
        try:
            return self.editor.render()
        except YamlEditError as exc:
            raise KubeadmConfigError(
                "%s cannot be edited in place (%s); add the encryption flag and volumes to its apiServer "
                "section by hand" % (self.what, exc)
            ) from exc


# Documents of a kubeadm config file -------------------------------------------------------------------------


def split_documents(text: str) -> t.List[str]:
    """The text cut at each '---' line, every byte kept (joining the parts gives the text back)."""
    starts = [m.start() for m in DOCUMENT_START.finditer(text)]
    cuts = [0] + [s for s in starts if s > 0] + [len(text)]
    return [text[cuts[i] : cuts[i + 1]] for i in range(len(cuts) - 1)]


class FileEdit(t.NamedTuple):
    text: str  # the whole file, edited
    outcome: t.Any  # what the edit returned
    before: str  # the ClusterConfiguration document alone (for a diff that shows no other document:
    after: str  # an InitConfiguration may hold bootstrap tokens)


def edit_file_text(text: str, what: str, edit: t.Callable[[ClusterConfiguration], t.Any]) -> FileEdit:
    """Apply edit to the one ClusterConfiguration document of a (multi-document) kubeadm config file; the
    other documents stay byte for byte."""
    if yaml is None:
        raise KubeadmConfigError("PyYAML is required")
    try:
        kinds = [d.get("kind") if isinstance(d, dict) else None for d in yaml.safe_load_all(text)]
    except yaml.YAMLError as exc:
        # Position only: an InitConfiguration in the same file may hold bootstrap tokens.
        raise KubeadmConfigError(syntax_error_message(what, exc)) from None
    if kinds.count(KIND) != 1:
        raise KubeadmConfigError(
            "%s must hold exactly one %s document, found %d" % (what, KIND, kinds.count(KIND))
        )
    parts = split_documents(text)
    for index, part in enumerate(parts):
        body = DOCUMENT_START.sub("", part, count=1) if DOCUMENT_START.match(part) else part
        try:
            loaded = yaml.safe_load(body)
        except yaml.YAMLError:
            loaded = None
        if isinstance(loaded, dict) and loaded.get("kind") == KIND:
            marker = part[: len(part) - len(body)]
            config = ClusterConfiguration(body, what + " (" + KIND + ")")
            outcome = edit(config)
            rendered = config.render()
            parts[index] = marker + rendered
            return FileEdit("".join(parts), outcome, body, rendered)
    raise KubeadmConfigError(
        "%s: the %s document could not be told apart from the others; separate the documents with lines "
        "holding only ---" % (what, KIND)
    )
