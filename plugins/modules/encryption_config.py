#!/usr/bin/python
# Copyright (c) tke.kms contributors
# Apache License 2.0 (see https://www.apache.org/licenses/LICENSE-2.0)

from __future__ import annotations

DOCUMENTATION = r"""
module: encryption_config
short_description: Place the Tencent KMS provider in a kube-apiserver encryption provider configuration, or
                   remove it
version_added: 0.1.0
description:
  - Reads the encryption provider configuration of a master (if there is one), keeps every provider it has
    (for example C(aescbc) keys, which remain needed to read data written with them), places the KMS provider
    for the requested O(phase), and writes the file atomically with mode C(0600), owned by root.
  - With O(state=absent) it removes the KMS provider instead (the last step of a key rotation, or of turning
    encryption off), once another provider encrypts new writes.
  - The file format follows O(kubernetes_version) - C(v1)/C(EncryptionConfig) for 1.10 to 1.12,
    C(apiserver.config.k8s.io/v1)/C(EncryptionConfiguration) for 1.13 and newer (an old-format file is
    converted).
  - The file is parsed and merged as data, never edited with patterns. A file that holds anything other than
    an encryption configuration is refused and left as it is.
  - Key material of C(aescbc), C(aesgcm) and C(secretbox) providers is redacted in the diff and in messages.
  - Writing the file does not make a running kube-apiserver read it; M(tke.kms.apiserver_manifest) records the
    file's checksum in the static-pod manifest so that kubelet restarts the apiserver.
  - "Rotation to a new key is a KMS provider with a new O(provider_name) (and socket): O(phase=read) for
    it gives C([old, new, identity]), O(phase=write) then C([new, old, identity]); after every Secret is
    rewritten, O(state=absent) for the old name gives C([new, identity])."
  - "Turning encryption off: O(phase=decrypt) gives C([identity, kms]); after every Secret is rewritten in
    the clear, O(state=absent) gives C([identity])."
options:
  path:
    description: Path of the configuration file on the master.
    type: path
    default: /etc/kubernetes/encryption-provider-config.yaml
  kubernetes_version:
    description:
      - Version of the cluster's kube-apiserver, for example V(1.29.3); it selects the file format and the
        default KMS API version. M(tke.kms.apiserver_manifest_info) reads it from the manifest.
      - With O(state=absent) the file keeps its format.
    type: str
    required: true
  phase:
    description:
      - V(read) makes every apiserver able to read KMS data before any apiserver writes it - a missing KMS
        provider is added right after the provider that currently encrypts writes. A KMS provider that is
        already first stays first.
      - V(write) puts the KMS provider first, so it encrypts all new writes; the other providers stay as read
        fallbacks in their order, and C(identity) goes last.
      - V(decrypt) puts C(identity) first, so new writes are stored in the clear; every other provider, the
        KMS provider included, stays after it in its order to read what is still encrypted. C(identity) is
        added if the entry has none. The KMS provider is not added when missing and an existing one is kept
        exactly as it is (O(endpoint), O(kms_api_version), O(cachesize), O(min_cachesize) and O(timeout) are
        ignored).
      - Roll O(phase=read) out to every master (and restart every apiserver) before O(phase=write) on any of
        them.
      - Ignored with O(state=absent).
    type: str
    choices: [read, write, decrypt]
    default: write
  state:
    description:
      - V(present) places the KMS provider as O(phase) says.
      - V(absent) removes the KMS provider named O(provider_name) from the entry of O(resources), and
        changes nothing else (the other options but O(path), O(resources) and O(backup_dir) are ignored). It
        is refused while that provider is first - it encrypts new writes, and the data it wrote would become
        unreadable; run O(phase=write) for another provider or O(phase=decrypt) first, restart every
        apiserver and rewrite every Secret. A provider that is already gone, or a missing file, is no change.
        An entry left with only C(identity) is kept (a valid configuration that stores in the clear).
    type: str
    choices: [present, absent]
    default: present
  provider_name:
    description:
      - Name of the KMS provider. It is stored in every encrypted value's prefix (C(k8s:enc:kms:v1:<name>:)),
        so it must never change while data encrypted under it exists. C(tke-kms-plugin) is the name the Go
        plugin's documentation used, so existing data usually carries it.
    type: str
    default: tke-kms-plugin
  endpoint:
    description: The plugin's unix socket, as the apiserver sees it.
    type: str
    default: unix:///var/run/tke-kms-plugin/server.sock
  kms_api_version:
    description:
      - KMS provider API. V(auto) keeps the version of an existing provider named O(provider_name) (its data
        needs it), else uses V(v2) from Kubernetes 1.29 and V(v1) below.
      - V(v2) needs Kubernetes 1.27 or newer. V(v1) on 1.29 or newer needs the apiserver flag
        C(--feature-gates=KMSv1=true) (the M(tke.kms.apiserver_manifest) option
        O(tke.kms.apiserver_manifest#module:feature_gates) adds it; the C(tke.kms.apiserver) role does so by
        itself).
      - An existing provider is never switched between v1 and v2 in place; that would make its data
        unreadable.
    type: str
    choices: [auto, v1, v2]
    default: auto
  cachesize:
    description:
      - KMS v1 only - how many decrypted data keys the apiserver caches. Every Secret has its own data key, so
        a cache smaller than the number of Secrets makes each apiserver restart decrypt keys through Tencent
        KMS again and again; use at least 1.2 times the number of Secrets (the C(tke.kms.encryption_config)
        role does).
      - If not set, an existing provider's value is kept, else V(1000) (the apiserver's default) is written -
        in both cases raised to O(min_cachesize).
      - Not allowed with KMS v2.
    type: int
  min_cachesize:
    description:
      - KMS v1 only, when O(cachesize) is not set - the cache size is at least this. Give it 1.2 times the
        number of Secrets (the C(tke.kms.encryption_config) role counts them in etcd). Ignored with KMS v2.
    type: int
  timeout:
    description: How long the apiserver waits for the plugin on each call, as a duration such as V(3s).
    type: str
    default: 3s
  resources:
    description:
      - The resources whose entry holds the KMS provider. An existing entry that lists them is edited (it may
        list more resources); otherwise a new entry is added first.
    type: list
    elements: str
    default: [secrets]
  backup_dir:
    description:
      - Directory where the current file is copied (with its mode) before it is changed. Not created or used
        when nothing changes.
    type: path
extends_documentation_fragment:
  - tke.kms.attributes
  - tke.kms.attributes.MUTATING
requirements:
  - PyYAML on the master (Debian/Ubuntu C(python3-yaml), RHEL C(python3-pyyaml))
seealso:
  - module: tke.kms.apiserver_manifest
  - module: tke.kms.apiserver_manifest_info
  - name: Encrypting confidential data at rest
    description: The Kubernetes documentation of the encryption provider configuration.
    link: https://kubernetes.io/docs/tasks/administer-cluster/encrypt-data/
author:
  - tke.kms maintainers (@tke-kms)
"""

EXAMPLES = r"""
- name: Let every apiserver read KMS data (phase 1 of 2, on all masters first)
  tke.kms.encryption_config:
    kubernetes_version: "{{ manifest_info.kubernetes_version }}"
    phase: read
    backup_dir: /var/backups/tke-kms

- name: Encrypt new writes with KMS (phase 2 of 2)
  tke.kms.encryption_config:
    kubernetes_version: 1.20.2
    phase: write
    kms_api_version: v1
    cachesize: 6000

# Rotation to a new key: a second provider with a new name and socket. Each step on every master, and every
# apiserver restarted, before the next step; the Secrets are rewritten before the old provider goes.
- name: Let every apiserver read with the new key ([old, new, identity])
  tke.kms.encryption_config:
    kubernetes_version: 1.30.2
    provider_name: tke-kms-plugin-2
    endpoint: unix:///var/run/tke-kms-plugin-2/server.sock
    phase: read

- name: Encrypt new writes with the new key ([new, old, identity])
  tke.kms.encryption_config:
    kubernetes_version: 1.30.2
    provider_name: tke-kms-plugin-2
    endpoint: unix:///var/run/tke-kms-plugin-2/server.sock
    phase: write

- name: Remove the old provider once no Secret is stored under it ([new, identity])
  tke.kms.encryption_config:
    kubernetes_version: 1.30.2
    provider_name: tke-kms-plugin
    state: absent
    backup_dir: /var/backups/tke-kms

# Turning encryption off.
- name: Store new writes in the clear, keep reading KMS data ([identity, kms])
  tke.kms.encryption_config:
    kubernetes_version: 1.30.2
    phase: decrypt

- name: Remove the KMS provider once every Secret is stored in the clear ([identity])
  tke.kms.encryption_config:
    kubernetes_version: 1.30.2
    state: absent
"""

RETURN = r"""
path:
  description: The configuration file.
  returned: always
  type: str
  sample: /etc/kubernetes/encryption-provider-config.yaml
created:
  description: Whether the file did not exist before (it is created, or would be in check mode).
  returned: always
  type: bool
backup_file:
  description: Copy of the previous file, when one was made.
  returned: when changed and O(backup_dir) is set and the file existed
  type: str
  sample: /var/backups/tke-kms/encryption-provider-config.yaml.20261127T101500.123456
checksum:
  description:
    - SHA-256 of the file content as written (in check mode, as it would be written). Give it to
      M(tke.kms.apiserver_manifest) as O(tke.kms.apiserver_manifest#module:encryption_config_checksum).
    - V(null) when O(state=absent) and there is no file.
  returned: always
  type: str
providers:
  description:
    - Provider labels, in order, of the entry that holds O(resources) (empty when there is none).
  returned: always
  type: list
  elements: str
  sample: [kms:tke-kms-plugin, aescbc, identity]
provider_resources:
  description:
    - The resources of every entry that carries the KMS provider O(provider_name) after the change (with
      O(state=absent), the ones that carried it before) - what re-encryption must rewrite and verification
      must count, which is more than O(resources) when an entry lists several resources.
    - Empty when no entry carries it.
  returned: always
  type: list
  elements: str
  sample: [secrets, configmaps]
removed:
  description: Whether the KMS provider was removed (or would be, in check mode).
  returned: when O(state=absent)
  type: bool
feature_gates:
  description:
    - The feature gates kube-apiserver needs for the KMS provider placed - C(KMSv1=true) for a KMS v1 provider
      on Kubernetes 1.29 or newer (give them to M(tke.kms.apiserver_manifest) as
      O(tke.kms.apiserver_manifest#module:feature_gates)). Empty with O(phase=decrypt) or O(state=absent).
  returned: always
  type: dict
  sample: {KMSv1: true}
kms_api_version:
  description:
    - The KMS provider API that was used (O(kms_api_version=auto) resolved).
    - With O(phase=decrypt) or O(state=absent), the API of the existing provider named O(provider_name)
      (V(null) when there is none).
  returned: always
  type: str
  sample: v2
format:
  description: apiVersion and kind of the file (V(null) when O(state=absent) and there is no file).
  returned: always
  type: dict
  sample: {apiVersion: apiserver.config.k8s.io/v1, kind: EncryptionConfiguration}
"""

import os
import typing as t

from ansible_collections.tke.kms.plugins.module_utils import _encryption_config as ec
from ansible_collections.tke.kms.plugins.module_utils._errors import TkeKmsError
from ansible_collections.tke.kms.plugins.module_utils._files import (
    atomic_write,
    backup,
    ensure_backup_dir,
    read_text,
)
from ansible_collections.tke.kms.plugins.module_utils._kube_version import parse_version
from ansible_collections.tke.kms.plugins.module_utils._module import TkeKmsModule
from ansible_collections.tke.kms.plugins.module_utils._yaml_edit import PYYAML

MODE = 0o600
MANIFESTS_DIR = "/etc/kubernetes/manifests"


def argument_spec() -> t.Dict[str, t.Any]:
    return dict(
        path=dict(type="path", default=ec.DEFAULT_CONFIG_PATH),
        kubernetes_version=dict(type="str", required=True),
        phase=dict(type="str", choices=["read", "write", "decrypt"], default="write"),
        state=dict(type="str", choices=["present", "absent"], default="present"),
        provider_name=dict(type="str", default="tke-kms-plugin"),
        endpoint=dict(type="str", default="unix:///var/run/tke-kms-plugin/server.sock"),
        kms_api_version=dict(type="str", choices=["auto", "v1", "v2"], default="auto"),
        cachesize=dict(type="int"),
        min_cachesize=dict(type="int"),
        timeout=dict(type="str", default="3s"),
        resources=dict(type="list", elements="str", default=["secrets"]),
        backup_dir=dict(type="path"),
    )


def places_kms(params: t.Dict[str, t.Any]) -> bool:
    """Whether this run adds or updates the KMS provider (the options that describe it matter)."""
    return params["state"] == "present" and params["phase"] != "decrypt"


def validate(module: TkeKmsModule) -> None:
    params = module.params
    if ":" in params["provider_name"] or not params["provider_name"]:
        module.fail_json(
            msg="provider_name must be non-empty and must not contain ':' (got %r)" % params["provider_name"]
        )
    if not places_kms(params):
        return
    if not params["endpoint"].startswith("unix://"):
        module.fail_json(
            msg="endpoint must be a unix socket URL such as unix:///var/run/tke-kms-plugin/server.sock"
        )
    if params["cachesize"] is not None and params["cachesize"] == 0:
        module.fail_json(
            msg="cachesize 0 is invalid; use a positive size, or a negative one to disable the cache"
        )


def desired_cachesize(
    module: TkeKmsModule, existing: t.Optional[t.Dict[str, t.Any]], api_version: str
) -> t.Optional[int]:
    if not ec.cachesize_applies(api_version):
        if module.params["cachesize"] is not None:
            module.fail_json(
                msg="cachesize is only valid for KMS v1; KMS v2 providers have no DEK cache size"
            )
        return None
    if module.params["cachesize"] is not None:
        return module.params["cachesize"]
    current = ec.find_kms(existing, module.params["provider_name"]) if existing else None
    size = ec.DEFAULT_V1_CACHESIZE
    if current is not None and current["kms"].get("cachesize") is not None:
        size = current["kms"]["cachesize"]
    if size > 0 and module.params["min_cachesize"]:  # a negative size disables the cache on purpose
        size = max(size, module.params["min_cachesize"])
    return size


def file_state_differs(path: str) -> bool:
    stat = os.stat(path)
    wrong_owner = os.geteuid() == 0 and (stat.st_uid, stat.st_gid) != (0, 0)
    return (stat.st_mode & 0o7777) != MODE or wrong_owner


def desired_config(
    module: TkeKmsModule, existing: t.Optional[t.Dict[str, t.Any]]
) -> t.Tuple[t.Optional[t.Dict[str, t.Any]], t.Optional[str]]:
    """The configuration to have (None: state absent and no file) and the KMS provider's API version."""
    params = module.params
    name, resources, path = params["provider_name"], params["resources"], params["path"]
    if params["state"] == "absent":
        if existing is None:
            return None, None
        desired = ec.remove_kms(existing, name, resources=resources, path=path)
        return desired, _api_version_of(ec.kms_in_entry(existing, resources, name))
    if params["phase"] == "decrypt":
        version = parse_version(params["kubernetes_version"])
        desired = ec.build(existing, version, None, phase="decrypt", resources=resources, path=path)
        return desired, _api_version_of(ec.kms_in_entry(desired, resources, name))
    version = parse_version(params["kubernetes_version"])
    api_version = ec.resolve_kms_api_version(params["kms_api_version"], version, existing, name)
    kms = ec.KmsProvider(
        name=name,
        endpoint=params["endpoint"],
        api_version=api_version,
        timeout=params["timeout"],
        cachesize=desired_cachesize(module, existing, api_version),
    )
    if ec.needs_kms_v1_gate(api_version, version):
        module.warn(
            "KMS v1 is disabled by default since Kubernetes 1.29: kube-apiserver needs "
            "--feature-gates=KMSv1=true for this configuration (the tke.kms.apiserver role adds it). "
            "Prefer kms_api_version v2."
        )
    desired = ec.build(existing, version, kms, phase=params["phase"], resources=resources, path=path)
    return desired, api_version


def _api_version_of(provider: t.Optional[t.Dict[str, t.Any]]) -> t.Optional[str]:
    return ec.kms_api_version_of(provider) if provider else None


def main() -> None:
    module = TkeKmsModule(argument_spec(), libraries=[PYYAML], supports_check_mode=True)
    validate(module)
    params = module.params
    path = params["path"]
    try:
        version = parse_version(params["kubernetes_version"])  # a bad version fails in every state
        current_text = read_text(path)
        existing = ec.parse(current_text, path) if current_text is not None else None
        desired, api_version = desired_config(module, existing)
    except (TkeKmsError, OSError, ValueError) as exc:
        module.fail_from_exception(exc)

    result: t.Dict[str, t.Any] = dict(
        changed=False,
        path=path,
        kms_api_version=api_version,
        feature_gates=ec.feature_gates_for(api_version, version) if places_kms(params) else {},
    )
    if params["state"] == "absent":
        result["removed"] = existing != desired
    carrier = existing if params["state"] == "absent" else desired
    result["provider_resources"] = ec.provider_resources(carrier, params["provider_name"])
    if desired is None:  # state=absent and no file: nothing to remove
        module.exit_json(checksum=None, providers=[], created=False, format=None, **result)
    desired = t.cast(t.Dict[str, t.Any], desired)
    content_changed = existing != desired
    new_text = ec.render(desired) if content_changed else t.cast(str, current_text)
    attributes_changed = current_text is not None and not content_changed and file_state_differs(path)
    result.update(
        changed=content_changed or attributes_changed,
        created=current_text is None,
        checksum=ec.checksum(new_text),
        providers=ec.summary(desired, params["resources"]),
        format=dict(apiVersion=desired["apiVersion"], kind=desired["kind"]),
    )
    if module._diff and content_changed:
        result["diff"] = dict(
            before=ec.redacted_text(existing),
            after=ec.redacted_text(desired),
            before_header=path,
            after_header=path,
        )
    if module.check_mode or not result["changed"]:
        module.exit_json(**result)

    try:
        if content_changed:
            if current_text is not None and params["backup_dir"]:
                backup_dir = ensure_backup_dir(params["backup_dir"], [MANIFESTS_DIR])
                result["backup_file"] = backup(path, backup_dir)
            atomic_write(path, new_text, MODE, owner=(0, 0))
        else:
            os.chmod(path, MODE)
            if os.geteuid() == 0:
                os.chown(path, 0, 0)
    except (OSError, ValueError) as exc:
        result["changed"] = False  # the file was not replaced
        module.fail_from_exception(exc, "cannot write %s" % path, **result)
    module.exit_json(**result)


if __name__ == "__main__":
    main()
