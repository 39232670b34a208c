#!/usr/bin/python
# Copyright (c) tke.kms contributors
# Apache License 2.0 (see https://www.apache.org/licenses/LICENSE-2.0)

from __future__ import annotations

DOCUMENTATION = r"""
module: kubeadm_config
short_description: Keep the encryption flag, volumes and mounts of kube-apiserver across C(kubeadm upgrade)
version_added: 0.2.0
description:
  - C(kubeadm upgrade) writes the kube-apiserver static-pod manifest anew from the kubeadm
    C(ClusterConfiguration) and drops every edit made to the manifest alone - the upgraded apiserver then
    starts without its encryption provider config and cannot read any Secret the KMS provider encrypted.
  - With O(state=present) this module copies what M(tke.kms.apiserver_manifest) put into the manifest on this
    master into the C(apiServer) section of the C(ClusterConfiguration) - the flags
    C(--encryption-provider-config) and C(--encryption-provider-config-automatic-reload) (when set) and the
    feature gates named in O(feature_gates) (when set) into C(extraArgs), and the C(hostPath) volumes whose
    mounts show the encryption config (its directory with automatic reload) and O(socket_dir) into
    C(extraVolumes), with their host path, mount path, C(readOnly) and C(pathType). A path that one of
    kubeadm's own volumes (C(k8s-certs), C(ca-certs), ...) shows needs no extra volume.
  - With O(state=absent) it takes C(--encryption-provider-config),
    C(--experimental-encryption-provider-config) and C(--encryption-provider-config-automatic-reload) out of
    C(extraArgs) and the volumes named O(config_volume_name) and O(socket_volume_name) out of C(extraVolumes);
    an C(extraArgs) or C(extraVolumes) left empty goes too. Feature gates stay, as in the manifest. It refuses
    while the manifest on this master still names an encryption config - a C(kubeadm upgrade) would then drop
    the flag the apiserver needs.
  - Two places hold a C(ClusterConfiguration). The C(kube-system/kubeadm-config) ConfigMap (key
    C(ClusterConfiguration)), which C(kubeadm upgrade apply) and C(kubeadm upgrade node) read (O(configmap));
    when it does not exist the cluster was not made by kubeadm and the module says so and changes nothing.
    And a kubeadm config file on the master (O(config_file)), for operators who pass one with C(--config);
    only its C(ClusterConfiguration) document is edited, the other documents stay byte for byte.
  - C(kubeadm.k8s.io/v1beta2) and C(v1beta3) (C(extraArgs) a mapping) and C(v1beta4) (kubeadm 1.31 and later,
    C(extraArgs) a list of C(name)/C(value)) are edited; any other C(apiVersion) is refused with what to do.
  - The edit is structural, as in M(tke.kms.apiserver_manifest) - comments, key order, quoting and the rest
    of the document stay as they are, and a second run changes nothing. The ConfigMap is replaced with its
    C(resourceVersion), so a concurrent change is not overwritten (the module reads it again and retries).
    The file is copied to O(backup_dir) and replaced atomically, keeping its mode and owner.
options:
  state:
    description:
      - V(present) copies the flag and volumes from the manifest; the manifest must name an encryption config.
      - V(absent) takes them out.
    type: str
    choices: [present, absent]
    default: present
  configmap:
    description: Edit the C(ClusterConfiguration) in the C(kube-system/kubeadm-config) ConfigMap.
    type: bool
    default: true
  config_file:
    description:
      - A kubeadm config file on the master (one or more YAML documents, one of them the
        C(ClusterConfiguration)) to edit as well. It must exist.
    type: path
  socket_dir:
    description: Directory of the KMS plugin's unix socket, whose volume is copied.
    type: path
    default: /var/run/tke-kms-plugin
  feature_gates:
    description:
      - Names of the gates whose C(--feature-gates) setting is copied from the manifest into the
        C(feature-gates) extra arg (merged with the gates already there). Gates the manifest does not set are
        left alone.
    type: list
    elements: str
    default: [KMSv1]
  config_volume_name:
    description: Name of the encryption config's volume that O(state=absent) removes.
    type: str
    default: encryption-provider-config
  socket_volume_name:
    description: Name of the plugin socket's volume that O(state=absent) removes.
    type: str
    default: tke-kms-plugin-socket
  backup_dir:
    description: Directory for the copy of the previous O(config_file).
    type: path
    default: /var/backups/tke-kms
extends_documentation_fragment:
  - tke.kms.attributes
  - tke.kms.attributes.MUTATING
  - tke.kms.master_api
requirements:
  - PyYAML on the master (Debian/Ubuntu C(python3-yaml), RHEL C(python3-pyyaml))
notes:
  - Run it with O(configmap=true) once per cluster after the manifest of B(every) master has the flag (and,
    with O(state=absent), after it left every master); the role M(tke.kms.apiserver) does so on the last
    master of its play. O(config_file) is per master.
  - C(kubeadm upgrade) must still run on each master as usual; it reads the ConfigMap. A file passed with
    C(--config) must be the O(config_file) the rollout edits.
seealso:
  - module: tke.kms.apiserver_manifest
author:
  - tke.kms maintainers (@tke-kms)
"""

EXAMPLES = r"""
- name: Keep the encryption flag and volumes across kubeadm upgrade
  tke.kms.kubeadm_config:
    config_file: /etc/kubernetes/kubeadm-config.yaml

- name: Take them out again once the flag has left every master's manifest
  tke.kms.kubeadm_config:
    state: absent
"""

RETURN = r"""
configmap:
  description: What happened to the C(kube-system/kubeadm-config) ConfigMap.
  returned: when O(configmap=true)
  type: dict
  contains:
    found:
      description: Whether the ConfigMap exists (false - not a kubeadm cluster; nothing was changed).
      type: bool
    changed:
      description: Whether its C(ClusterConfiguration) changed (or would change, in check mode).
      type: bool
    api_version:
      description: The C(apiVersion) of its C(ClusterConfiguration).
      type: str
      sample: kubeadm.k8s.io/v1beta3
config_file:
  description: What happened to O(config_file).
  returned: when O(config_file) is set
  type: dict
  contains:
    path:
      description: The file.
      type: str
    changed:
      description: Whether it changed (or would change, in check mode).
      type: bool
    api_version:
      description: The C(apiVersion) of its C(ClusterConfiguration).
      type: str
    backup_file:
      description: Copy of the previous file (when changed, not in check mode).
      type: str
extra_args:
  description: The extra args copied, name (without C(--)) to value.
  returned: when O(state=present)
  type: dict
  sample: {encryption-provider-config: /etc/kubernetes/encryption-provider-config.yaml}
extra_volumes:
  description: The extra volumes copied.
  returned: when O(state=present)
  type: list
  elements: dict
  sample: [{name: tke-kms-plugin-socket, hostPath: /var/run/tke-kms-plugin,
            mountPath: /var/run/tke-kms-plugin, readOnly: false, pathType: DirectoryOrCreate}]
removed:
  description: What O(state=absent) took out of each place, C(flags) as C(name=value) and C(volumes) by name.
  returned: when O(state=absent)
  type: dict
  sample: {configmap: {flags: [encryption-provider-config=/etc/kubernetes/encryption-provider-config.yaml],
           volumes: [encryption-provider-config, tke-kms-plugin-socket]}}
msg:
  description: A summary, for example that the cluster has no kubeadm-config ConfigMap.
  returned: always
  type: str
"""

import os
import typing as t

from ansible_collections.tke.kms.plugins.module_utils import _kubeadm_config as kc
from ansible_collections.tke.kms.plugins.module_utils._errors import TkeKmsError
from ansible_collections.tke.kms.plugins.module_utils._files import (
    atomic_write,
    backup,
    ensure_backup_dir,
    read_text,
)
from ansible_collections.tke.kms.plugins.module_utils._https import Endpoint, StatusError
from ansible_collections.tke.kms.plugins.module_utils._manifest import ApiserverManifest
from ansible_collections.tke.kms.plugins.module_utils._master_api import (
    master_api_argument_spec,
    master_endpoint,
    read_manifest,
)
from ansible_collections.tke.kms.plugins.module_utils._module import TkeKmsModule, merge_argument_specs
from ansible_collections.tke.kms.plugins.module_utils._yaml_edit import PYYAML, yaml

CONFIGMAP_PATH = "/api/v1/namespaces/%s/configmaps/%s" % (kc.CONFIGMAP_NAMESPACE, kc.CONFIGMAP_NAME)
CONFIGMAP_LABEL = "configmap %s/%s" % (kc.CONFIGMAP_NAMESPACE, kc.CONFIGMAP_NAME)
CONFLICT_RETRIES = 3


def argument_spec() -> t.Dict[str, t.Any]:
    return merge_argument_specs(
        master_api_argument_spec(),
        dict(
            state=dict(type="str", choices=["present", "absent"], default="present"),
            configmap=dict(type="bool", default=True),
            config_file=dict(type="path"),
            socket_dir=dict(type="path", default="/var/run/tke-kms-plugin"),
            feature_gates=dict(type="list", elements="str", default=["KMSv1"]),
            config_volume_name=dict(type="str", default="encryption-provider-config"),
            socket_volume_name=dict(type="str", default="tke-kms-plugin-socket"),
            backup_dir=dict(type="path", default="/var/backups/tke-kms"),
        ),
    )


def make_edit(
    params: t.Dict[str, t.Any], manifest: ApiserverManifest
) -> t.Tuple[t.Callable[[kc.ClusterConfiguration], t.Any], t.Optional[kc.Wanted]]:
    """The edit for the state asked - copy what the manifest carries, or take it out - and what it copies."""
    if params["state"] == "present":
        wanted = kc.wanted_from_manifest(manifest, params["socket_dir"], params["feature_gates"])
        return (lambda config: config.apply(wanted)), wanted
    if manifest.encryption_config_path():
        raise kc.KubeadmConfigError(
            "refusing to take the encryption flag out of the kubeadm ClusterConfiguration: %s still names "
            "%s, and a kubeadm upgrade would then start kube-apiserver without it. Take it out of the "
            "manifest first (tke.kms.apiserver_manifest state=absent)"
            % (manifest.path, manifest.encryption_config_path())
        )
    names = [params["config_volume_name"], params["socket_volume_name"]]
    return (lambda config: config.remove(names)), None


def diff_entry(before: str, after: str, header: str) -> t.Dict[str, str]:
    return dict(before=before, after=after, before_header=header, after_header=header)


def edit_configmap(
    module: TkeKmsModule, endpoint: Endpoint, edit: t.Callable[[kc.ClusterConfiguration], t.Any]
) -> t.Tuple[t.Dict[str, t.Any], t.Any, t.Optional[t.Dict[str, str]]]:
    """(result, what the edit returned, diff); reads again and retries when another writer came first."""
    for _attempt in range(CONFLICT_RETRIES):
        try:
            configmap = endpoint.json("GET", CONFIGMAP_PATH)
        except StatusError as exc:
            if exc.status == 404:
                return dict(found=False, changed=False), None, None
            raise
        text = (configmap.get("data") or {}).get(kc.CONFIGMAP_KEY)
        if not isinstance(text, str):
            raise kc.KubeadmConfigError(
                "%s has no %s key; is it the one kubeadm wrote?" % (CONFIGMAP_LABEL, kc.CONFIGMAP_KEY)
            )
        config = kc.ClusterConfiguration(text, "%s key %s" % (CONFIGMAP_LABEL, kc.CONFIGMAP_KEY))
        outcome = edit(config)
        new_text = config.render()
        result = dict(
            found=True, changed=new_text != text, api_version=kc.API_GROUP + "/" + config.api_version
        )
        diff = diff_entry(text, new_text, CONFIGMAP_LABEL) if result["changed"] else None
        if not result["changed"] or module.check_mode:
            return result, outcome, diff
        configmap["data"][kc.CONFIGMAP_KEY] = (
            new_text  # with its resourceVersion: a concurrent change gets 409
        )
        try:
            endpoint.json("PUT", CONFIGMAP_PATH, configmap)
        except StatusError as exc:
            if exc.status == 409:
                continue
            raise
        return result, outcome, diff
    raise kc.KubeadmConfigError(
        "%s kept changing while it was edited (%d tries); run again" % (CONFIGMAP_LABEL, CONFLICT_RETRIES)
    )


def edit_config_file(
    module: TkeKmsModule, path: str, edit: t.Callable[[kc.ClusterConfiguration], t.Any]
) -> t.Tuple[t.Dict[str, t.Any], t.Any, t.Optional[t.Dict[str, str]]]:
    text = read_text(path)
    if text is None:
        raise kc.KubeadmConfigError(
            "%s does not exist; name the kubeadm config file this master's kubeadm uses, or none" % path
        )
    edited = kc.edit_file_text(text, path, edit)
    api_version = yaml.safe_load(edited.after).get("apiVersion")
    result: t.Dict[str, t.Any] = dict(path=path, changed=edited.text != text, api_version=api_version)
    diff = diff_entry(edited.before, edited.after, path + " (" + kc.KIND + ")") if result["changed"] else None
    if result["changed"] and not module.check_mode:
        stat = os.stat(path)
        result["backup_file"] = backup(path, ensure_backup_dir(module.params["backup_dir"], []))
        atomic_write(path, edited.text, stat.st_mode & 0o7777, (stat.st_uid, stat.st_gid))
    return result, edited.outcome, diff


def summary(params: t.Dict[str, t.Any], result: t.Dict[str, t.Any]) -> str:
    places = []
    if "configmap" in result:
        if not result["configmap"]["found"]:
            places.append(
                "%s does not exist - not a kubeadm cluster (or not one kubeadm upgrade manages); left alone"
                % CONFIGMAP_LABEL
            )
        else:
            places.append(
                "%s %s" % (CONFIGMAP_LABEL, "changed" if result["configmap"]["changed"] else "unchanged")
            )
    if "config_file" in result:
        places.append(
            "%s %s" % (params["config_file"], "changed" if result["config_file"]["changed"] else "unchanged")
        )
    return "; ".join(places) or "nothing to edit (configmap=false and no config_file)"


def main() -> None:
    module = TkeKmsModule(argument_spec(), libraries=[PYYAML], supports_check_mode=True)
    params = module.params
    result: t.Dict[str, t.Any] = dict(changed=False)
    diffs = []
    removed = {}
    try:
        manifest = read_manifest(params["manifest_path"])
        edit, wanted = make_edit(params, manifest)
        if wanted is not None:
            args = dict(wanted.args)
            if wanted.feature_gates:
                args[kc.FEATURE_GATES_ARG] = ",".join("%s=%s" % item for item in wanted.feature_gates.items())
            result.update(extra_args=args, extra_volumes=[v.as_dict() for v in wanted.volumes])
        if params["config_file"]:
            result["config_file"], removed["config_file"], diff = edit_config_file(
                module, params["config_file"], edit
            )
            diffs.append(diff)
        if params["configmap"]:
            with master_endpoint(params, manifest) as endpoint:
                result["configmap"], removed["configmap"], diff = edit_configmap(module, endpoint, edit)
            diffs.append(diff)
    except (TkeKmsError, OSError, ValueError) as exc:
        module.fail_from_exception(exc, **result)
    result["changed"] = any(
        place.get("changed") for place in (result.get("configmap"), result.get("config_file")) if place
    )
    if params["state"] == "absent":
        result["removed"] = {place: what for place, what in removed.items() if what is not None}
    result["msg"] = summary(params, result)
    diffs = [d for d in diffs if d]
    if module._diff and diffs:
        result["diff"] = diffs
    module.exit_json(**result)


if __name__ == "__main__":
    main()
