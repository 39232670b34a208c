#!/usr/bin/python
# Copyright (c) tke.kms contributors
# Apache License 2.0 (see https://www.apache.org/licenses/LICENSE-2.0)

from __future__ import annotations

DOCUMENTATION = r"""
module: apiserver_manifest
short_description: Point a kube-apiserver static pod at an encryption provider configuration and a KMS plugin
                   socket
version_added: 0.1.0
description:
  - Edits the kube-apiserver static-pod manifest of a master so that the apiserver reads the encryption
    provider configuration and reaches the KMS plugin socket, and changes nothing else.
  - Sets C(--encryption-provider-config) (C(--experimental-encryption-provider-config) on Kubernetes 1.12 and
    older; the other spelling is renamed), and adds C(hostPath) volumes and volume mounts for the
    configuration file and for the plugin's socket directory, unless an existing mount already shows them at
    the same path.
  - Records the SHA-256 of the configuration in the pod annotation C(tke.kms/encryption-config-sha256).
    kubelet restarts a static pod only when its manifest changes, so this is what makes a changed
    configuration take effect, and it tells which configuration a running apiserver was started with.
  - The edit is structural (the manifest is parsed, and each change is applied at its place in the text), so
    comments, key order, quoting and indentation are kept, and a second run changes nothing. The result is
    checked to load to exactly the intended pod. In the rare layouts where an in-place edit is impossible the
    manifest is written out again in full (comments are then lost; a warning says so).
  - The previous manifest is copied to O(backup_dir) first, which must be outside the manifests directory -
    kubelet runs every file in that directory, a backup there included.
  - The new manifest is written to a dotfile in the same directory (ignored by kubelet) and renamed into
    place.
  - With O(state=absent) it takes all of that out again, as the last step of turning encryption off - the
    flag (both spellings, and C(--encryption-provider-config-automatic-reload)), the C(hostPath) volumes and
    volume mounts named O(config_volume_name) and O(socket_volume_name), and the annotation. The same
    structural edit, backup, check and diff apply; a manifest that has none of them is no change.
  - Before it takes the flag out, O(state=absent) reads the encryption configuration and refuses (naming
    the entries, their resources and provider labels, and changing nothing) unless every entry has only the
    C(identity) provider - without the flag the apiserver could not read what another provider still
    protects.
  - Kubernetes older than 1.10 has no KMS provider; O(state=present) refuses it.
  - With O(automatic_reload) the apiserver reloads a changed configuration by itself, without a restart
    (Kubernetes 1.26 and later) - see that option.
options:
  path:
    description: The kube-apiserver static-pod manifest.
    type: path
    default: /etc/kubernetes/manifests/kube-apiserver.yaml
  state:
    description:
      - V(present) points the apiserver at the configuration and the socket.
      - V(absent) removes the flags C(--encryption-provider-config),
        C(--experimental-encryption-provider-config) and C(--encryption-provider-config-automatic-reload),
        the C(hostPath) volumes named O(config_volume_name) and O(socket_volume_name) with their volume mounts
        (only those, by name; a volume of that name that is not a C(hostPath) volume is left with its
        mounts), and the annotation C(tke.kms/encryption-config-sha256). A C(volumes), C(volumeMounts) or
        C(annotations) left empty goes too. Feature gates stay as they are. O(encryption_config_checksum),
        O(restart_on_config_change), O(automatic_reload), O(socket_dir) and O(feature_gates) are ignored.
      - It refuses while the encryption configuration (O(encryption_config_path), else the file the
        manifest names) has an entry with a provider other than C(identity).
      - Only run O(state=absent) once the configuration has identity first on every master and every
        Secret is stored in the clear (M(tke.kms.encryption_config)
        O(tke.kms.encryption_config#module:phase=decrypt), M(tke.kms.secret_storage_info)
        O(tke.kms.secret_storage_info#module:target=identity)); without the flag the apiserver cannot read
        anything still encrypted.
    type: str
    choices: [present, absent]
    default: present
  kubernetes_version:
    description:
      - Version of the apiserver, for example V(1.20.2). If not set, it is read from the container image tag.
    type: str
  encryption_config_path:
    description:
      - The encryption provider configuration, on the master (it is mounted at the same path).
      - With O(state=present), V(/etc/kubernetes/encryption-provider-config.yaml) if not set.
      - With O(state=absent), the configuration that must hold only C(identity) entries; if not set, the file
        the manifest names (at the host path of its mount).
    type: path
  encryption_config_checksum:
    description:
      - SHA-256 to record in the annotation. If not set, it is computed from the file at
        O(encryption_config_path), which must then exist. M(tke.kms.encryption_config) returns it (also in
        check mode).
    type: str
  restart_on_config_change:
    description:
      - Record the configuration checksum in the pod annotation (see the description).
      - Ignored with O(automatic_reload).
    type: bool
    default: true
  automatic_reload:
    description:
      - Make the apiserver reload a changed configuration by itself instead of being restarted for it
        (Kubernetes 1.26 and later; older versions are refused). Sets
        C(--encryption-provider-config-automatic-reload=true), mounts the configuration's B(directory) (a
        C(hostPath) volume of type C(DirectoryOrCreate), read-only) instead of the file, and removes the
        checksum annotation, so that a new configuration no longer changes the manifest.
      - A mount of the configuration file itself becomes the directory mount (it keeps its volume name;
        otherwise the volume is O(config_volume_name)); when another mount already shows the directory,
        the file mount just goes. A single-file mount would bind the old file for ever - the configuration
        is replaced by renaming a new file over it.
      - The directory is visible to the apiserver; keep the configuration in a directory of its own (for
        example C(/etc/kubernetes/encryption/config.yaml)) rather than next to kubeconfigs.
      - Turning the option on changes the manifest once (kubelet restarts the apiserver); after that, a
        changed configuration leaves the manifest as it is. Wait for the apiserver to load it with
        M(tke.kms.apiserver_reload_wait).
      - V(false) adds nothing and takes nothing out - a manifest that reloads already keeps its flag and
        mount, and gets the checksum annotation back.
    type: bool
    default: false
  socket_dir:
    description: Directory of the KMS plugin's unix socket, on the master (mounted at the same path).
    type: path
    default: /var/run/tke-kms-plugin
  socket_volume_name:
    description: Name of the volume added for O(socket_dir).
    type: str
    default: tke-kms-plugin-socket
  config_volume_name:
    description: Name of the volume added for O(encryption_config_path).
    type: str
    default: encryption-provider-config
  feature_gates:
    description:
      - Feature gates to set in C(--feature-gates), gate name to V(true) or V(false), merged with the ones
        already there (which are kept). KMS v1 needs the gate C(KMSv1) set to V(true) from Kubernetes 1.29.
    type: dict
    default: {}
  backup_dir:
    description: Directory for the copy of the previous manifest. Must not be the manifests directory or
                 inside it.
    type: path
    default: /var/backups/tke-kms
extends_documentation_fragment:
  - tke.kms.attributes
  - tke.kms.attributes.MUTATING
requirements:
  - PyYAML on the master (Debian/Ubuntu C(python3-yaml), RHEL C(python3-pyyaml))
notes:
  - C(kubeadm upgrade) regenerates the manifest from the kubeadm C(ClusterConfiguration);
    M(tke.kms.kubeadm_config) (run by the role C(tke.kms.apiserver)) writes the flag and volumes there too.
seealso:
  - module: tke.kms.encryption_config
  - module: tke.kms.apiserver_health
  - module: tke.kms.apiserver_reload_wait
author:
  - tke.kms maintainers (@tke-kms)
"""

EXAMPLES = r"""
- name: Point kube-apiserver at the encryption config and the plugin socket
  tke.kms.apiserver_manifest:
    encryption_config_checksum: "{{ encryption_config_result.checksum }}"
  register: manifest

- name: Let kube-apiserver reload the encryption config by itself from now on (Kubernetes 1.26+)
  tke.kms.apiserver_manifest:
    automatic_reload: true
  register: manifest

- name: Turn encryption at rest off on this master (after the decrypt phase and the rewrite)
  tke.kms.apiserver_manifest:
    state: absent
  register: manifest

- name: Roll back to the previous manifest
  ansible.builtin.copy:
    src: "{{ manifest.backup_file }}"
    dest: /etc/kubernetes/manifests/kube-apiserver.yaml
    remote_src: true
    mode: preserve
  when: manifest.backup_file is defined
"""

RETURN = r"""
path:
  description: The manifest.
  returned: always
  type: str
backup_file:
  description: Copy of the previous manifest.
  returned: when changed (not in check mode)
  type: str
  sample: /var/backups/tke-kms/kube-apiserver.yaml.20261127T101500.123456
kubernetes_version:
  description: The apiserver version used (given, or read from the image).
  returned: always
  type: str
  sample: 1.30.2
encryption_flag:
  description: The flag that names the configuration file.
  returned: when O(state=present)
  type: str
  sample: --encryption-provider-config
automatic_reload:
  description: Whether the manifest now makes the apiserver reload a changed configuration by itself.
  returned: when O(state=present)
  type: bool
removed:
  description: What O(state=absent) removed (or would remove, in check mode); empty lists when nothing.
  returned: when O(state=absent)
  type: dict
  contains:
    flags:
      description: The removed flags, as C(--name=value).
      type: list
      elements: str
      sample: [--encryption-provider-config=/etc/kubernetes/encryption-provider-config.yaml]
    volumes:
      description: Names of the removed volumes.
      type: list
      elements: str
      sample: [encryption-provider-config, tke-kms-plugin-socket]
    volume_mounts:
      description: Names of the volumes whose mounts were removed from the kube-apiserver container.
      type: list
      elements: str
      sample: [encryption-provider-config, tke-kms-plugin-socket]
    annotations:
      description: The removed annotation keys.
      type: list
      elements: str
      sample: [tke.kms/encryption-config-sha256]
entries:
  description:
    - Why O(state=absent) refused - the entries of the encryption configuration with a provider other than
      C(identity), as their resources and provider labels (C(kms:<name>), V(aescbc), ...; never key material).
  returned: when O(state=absent) refuses
  type: list
  elements: dict
  sample: [{resources: [configmaps], providers: [aesgcm, identity]}]
layout_preserved:
  description: False when the manifest had to be written out in full (comments lost).
  returned: always
  type: bool
written_at:
  description:
    - Time the new manifest was put in place, in seconds since the epoch on the master's clock. An apiserver
      process started after it runs the new manifest (M(tke.kms.apiserver_health)
      O(tke.kms.apiserver_health#module:started_after)).
  returned: when changed (not in check mode)
  type: float
"""

import hashlib
import os
import time
import typing as t

from ansible_collections.tke.kms.plugins.module_utils import _encryption_config as ec
from ansible_collections.tke.kms.plugins.module_utils import _manifest as mf
from ansible_collections.tke.kms.plugins.module_utils import _reload as rl
from ansible_collections.tke.kms.plugins.module_utils._errors import TkeKmsError
from ansible_collections.tke.kms.plugins.module_utils._files import (
    atomic_write,
    backup,
    ensure_backup_dir,
    read_text,
)
from ansible_collections.tke.kms.plugins.module_utils._module import TkeKmsModule
from ansible_collections.tke.kms.plugins.module_utils._yaml_edit import PYYAML


def argument_spec() -> t.Dict[str, t.Any]:
    return dict(
        path=dict(type="path", default="/etc/kubernetes/manifests/kube-apiserver.yaml"),
        state=dict(type="str", choices=["present", "absent"], default="present"),
        kubernetes_version=dict(type="str"),
        encryption_config_path=dict(type="path"),
        encryption_config_checksum=dict(type="str"),
        restart_on_config_change=dict(type="bool", default=True),
        automatic_reload=dict(type="bool", default=False),
        socket_dir=dict(type="path", default="/var/run/tke-kms-plugin"),
        socket_volume_name=dict(type="str", default="tke-kms-plugin-socket"),
        config_volume_name=dict(type="str", default="encryption-provider-config"),
        feature_gates=dict(type="dict", default={}),
        backup_dir=dict(type="path", default="/var/backups/tke-kms"),
    )


def config_checksum(module: TkeKmsModule, path: str) -> str:
    given = module.params["encryption_config_checksum"]
    if given:
        return given
    try:
        with open(path, "rb") as handle:
            return hashlib.sha256(handle.read()).hexdigest()
    except FileNotFoundError:
        module.fail_json(
            msg="%s does not exist on this master; write it first (tke.kms.encryption_config) or pass "
            "encryption_config_checksum" % path
        )
    raise AssertionError("unreachable")


def edit(module: TkeKmsModule, manifest: mf.ApiserverManifest) -> t.Tuple[str, str]:
    """Apply the changes; returns (version, flag name)."""
    params = module.params
    version = manifest.version(params["kubernetes_version"])
    ec.config_format(version)  # ConfigError before 1.10: no KMS provider to point the apiserver at
    config_path = ec.config_file(params["encryption_config_path"], None)
    flag = mf.encryption_flag_for(version)
    other = mf.LEGACY_ENCRYPTION_FLAG if flag == mf.ENCRYPTION_FLAG else mf.ENCRYPTION_FLAG
    manifest.set_flag(flag, config_path, replaces=(other,))
    if params["automatic_reload"]:
        rl.refuse_old_version(version)
        manifest.set_flag(mf.AUTOMATIC_RELOAD_FLAG, "true")
        rl.mount_config_directory(manifest, params["config_volume_name"], config_path)
    else:
        manifest.ensure_host_path(mf.HostPathMount(params["config_volume_name"], config_path, "File", True))
    manifest.ensure_host_path(
        mf.HostPathMount(params["socket_volume_name"], params["socket_dir"], "DirectoryOrCreate", False)
    )
    gates = {}
    for name, enabled in params["feature_gates"].items():
        gates[name] = module.boolean(enabled)
    manifest.merge_feature_gates(gates)
    if params["automatic_reload"]:
        manifest.remove_annotation(mf.CONFIG_CHECKSUM_ANNOTATION)  # a new config must not restart the pod
    elif params["restart_on_config_change"]:
        manifest.set_annotation(mf.CONFIG_CHECKSUM_ANNOTATION, config_checksum(module, config_path))
    return str(version), flag


def edit_absent(module: TkeKmsModule, manifest: mf.ApiserverManifest) -> t.Tuple[str, t.Dict[str, t.Any]]:
    """Take out everything edit() puts in; returns (version, what was removed)."""
    params = module.params
    version = manifest.version(params["kubernetes_version"])
    if manifest.encryption_config_path():
        refuse_while_encrypted(
            module, params["encryption_config_path"] or manifest.encryption_config_host_path()
        )
    removed: t.Dict[str, t.List[str]] = dict(
        flags=manifest.remove_flags(mf.ENCRYPTION_FLAGS), volumes=[], volume_mounts=[], annotations=[]
    )
    for name in (params["config_volume_name"], params["socket_volume_name"]):
        volume_removed, mount_removed = manifest.remove_host_path(name)
        if volume_removed:
            removed["volumes"].append(name)
        if mount_removed:
            removed["volume_mounts"].append(name)
    if manifest.remove_annotation(mf.CONFIG_CHECKSUM_ANNOTATION):
        removed["annotations"].append(mf.CONFIG_CHECKSUM_ANNOTATION)
    return str(version), removed


def refuse_while_encrypted(module: TkeKmsModule, config_path: t.Optional[str]) -> None:
    """Fail unless every entry of the configuration is identity only (ConfigError for an unreadable one)."""
    config = ec.read_config(t.cast(str, config_path))
    if config is None:
        module.warn("%s does not exist, so nothing in it needs the flag; taking the flag out" % config_path)
        return
    entries = ec.non_identity_entries(config)
    if entries:
        module.fail_json(
            msg="refusing to take the encryption provider config out of %s: %s still has entries with "
            "providers other than identity (%s), and without the flag the apiserver cannot read what they "
            "encrypted. Make each entry identity only first (tke.kms.encryption_config phase=decrypt, "
            "rewrite every object of its resources, then remove each provider), or keep the flag"
            % (module.params["path"], config_path, ec.describe_entries(entries)),
            changed=False,
            entries=entries,
        )


def main() -> None:
    module = TkeKmsModule(argument_spec(), libraries=[PYYAML], supports_check_mode=True)
    path = module.params["path"]
    text = read_text(path)
    if text is None:
        module.fail_json(msg="%s does not exist; is this a master with a kube-apiserver static pod?" % path)
    details: t.Dict[str, t.Any] = {}
    try:
        manifest = mf.ApiserverManifest(t.cast(str, text), path)
        if module.params["state"] == "absent":
            version, details["removed"] = edit_absent(module, manifest)
        else:
            version, details["encryption_flag"] = edit(module, manifest)
            details["automatic_reload"] = rl.reloads_config(manifest)
    except (TkeKmsError, OSError, ValueError) as exc:
        module.fail_from_exception(exc)
    new_text, preserved = manifest.render()
    result: t.Dict[str, t.Any] = dict(
        changed=new_text != text,
        path=path,
        kubernetes_version=version,
        layout_preserved=preserved,
        **details,
    )
    if not preserved:
        module.warn(
            "%s could not be edited in place; it is written out in full and its comments are lost" % path
        )
    if module._diff and result["changed"]:
        result["diff"] = dict(before=text, after=new_text, before_header=path, after_header=path)
    if module.check_mode or not result["changed"]:
        module.exit_json(**result)
    try:
        backup_dir = ensure_backup_dir(module.params["backup_dir"], [os.path.dirname(path)])
        result["backup_file"] = backup(path, backup_dir)
        stat = os.stat(path)
        # Taken before the rename, so no restart caused by the new manifest can look older than it.
        result["written_at"] = time.time()
        atomic_write(path, new_text, stat.st_mode & 0o7777, owner=(stat.st_uid, stat.st_gid))
    except (OSError, ValueError) as exc:
        result["changed"] = False  # the manifest was not replaced
        module.fail_from_exception(exc, "cannot write %s" % path, **result)
    module.exit_json(**result)


if __name__ == "__main__":
    main()
