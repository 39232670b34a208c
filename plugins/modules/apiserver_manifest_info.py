#!/usr/bin/python
# Copyright (c) tke.kms contributors
# Apache License 2.0 (see https://www.apache.org/licenses/LICENSE-2.0)

from __future__ import annotations

DOCUMENTATION = r"""
module: apiserver_manifest_info
short_description: Read what the KMS rollout needs from a kube-apiserver static-pod manifest
version_added: 0.1.0
description:
  - Parses the kube-apiserver static-pod manifest of a master and returns its Kubernetes version (from the
    image tag), the encryption configuration it uses if any, its feature gates, how it reaches etcd and its
    own endpoint.
  - Reads the encryption configuration the manifest names (at the host path its volume mount shows) and
    returns its entries and KMS providers, never key material.
  - Fails with a clear message when the file is not YAML, not a Pod, or has no C(kube-apiserver) container,
    and when the encryption configuration it names is not a valid one (a YAML error is reported by file, line
    and column only, as the line may hold an C(aescbc) key).
options:
  path:
    description: The kube-apiserver static-pod manifest.
    type: path
    default: /etc/kubernetes/manifests/kube-apiserver.yaml
  kubernetes_version:
    description: Use this version instead of reading it from the image tag (for images without a version tag).
    type: str
  provider_name:
    description:
      - A KMS provider name; RV(provider) is its entry in the configuration the manifest names.
      - With O(kms_api_version), the name whose existing provider decides V(auto).
    type: str
  kms_api_version:
    description:
      - The KMS API version asked for (as M(tke.kms.encryption_config) takes it); RV(kms) then holds the
        decisions M(tke.kms.encryption_config) makes with it, so that a play can act on them first (count
        objects for a cache size only where one applies).
      - Needs O(provider_name). Fails as M(tke.kms.encryption_config) would for V(v2) before Kubernetes 1.27.
    type: str
    choices: [auto, v1, v2]
  encryption_config_path:
    description:
      - The encryption configuration to be written, when it is not the one the manifest names; RV(kms) is
        decided with the providers of this file (a missing file has none).
    type: path
extends_documentation_fragment:
  - tke.kms.attributes
  - tke.kms.attributes.INFO_MODULE
requirements:
  - PyYAML on the master (Debian/Ubuntu C(python3-yaml), RHEL C(python3-pyyaml))
seealso:
  - module: tke.kms.apiserver_manifest
author:
  - tke.kms maintainers (@tke-kms)
"""

EXAMPLES = r"""
- name: Read the apiserver manifest
  tke.kms.apiserver_manifest_info:
  register: manifest_info

- name: Show the version
  ansible.builtin.debug:
    msg: "kube-apiserver {{ manifest_info.kubernetes_version }}, config {{
         manifest_info.encryption_config_path }}"
"""

RETURN = r"""
kubernetes_version:
  description: The apiserver version.
  returned: always
  type: str
  sample: 1.30.2
minor_version:
  description: Major and minor version, what the configuration format depends on.
  returned: always
  type: str
  sample: "1.30"
image:
  description: The kube-apiserver container image.
  returned: always
  type: str
  sample: registry.k8s.io/kube-apiserver:v1.30.2
encryption_flag:
  description: The flag this version uses for the encryption provider configuration.
  returned: always
  type: str
  sample: --encryption-provider-config
encryption_config_path:
  description: The configuration file the apiserver is started with (either flag spelling), null if none.
  returned: always
  type: str
encryption_entries:
  description:
    - The entries of the encryption configuration the manifest names, in file order. Provider labels are
      C(kms:<name>) for KMS providers, else the provider type (V(aescbc), V(aesgcm), V(secretbox),
      V(identity)); the first one encrypts new writes.
    - Empty when the manifest names no configuration or the file does not exist.
  returned: always
  type: list
  elements: dict
  sample: [{resources: [secrets, configmaps], providers: [kms:tke-kms-plugin, aescbc, identity]}]
  contains:
    resources:
      description: The resources of the entry.
      type: list
      elements: str
    providers:
      description: Its provider labels, in order.
      type: list
      elements: str
kms_providers:
  description: Each KMS provider of that configuration once, by name, in file order.
  returned: always
  type: list
  elements: dict
  contains:
    name:
      description: The provider name (part of the stored data's prefix).
      type: str
    endpoint:
      description: The C(endpoint) as written.
      type: str
      sample: unix:///var/run/tke-kms-plugin/server.sock
    socket:
      description: The unix socket path of the endpoint, normalised (a leading C(/var/run/) becomes C(/run/)).
      type: str
      sample: /run/tke-kms-plugin/server.sock
    api_version:
      description: The KMS API of the provider.
      type: str
      sample: v2
    resources:
      description: The resources of every entry that carries it.
      type: list
      elements: str
    write:
      description: Whether it is the first provider (encrypts new writes) of at least one entry.
      type: bool
config_checksum:
  description: The configuration checksum recorded by M(tke.kms.apiserver_manifest), null if none.
  returned: always
  type: str
feature_gates:
  description: The C(--feature-gates) settings, gate name to value.
  returned: always
  type: dict
  sample: {KMSv1: "true"}
flags:
  description: Every C(--flag) of the container, with its value (null for a flag without value).
  returned: always
  type: dict
url:
  description: This master's own apiserver endpoint (bind or advertise address and secure port).
  returned: always
  type: str
  sample: https://10.0.0.11:6443
etcd:
  description: How the apiserver reaches etcd.
  returned: always
  type: dict
  contains:
    servers:
      description: The C(--etcd-servers) endpoints.
      type: list
      elements: str
    ca_file:
      description: C(--etcd-cafile).
      type: str
    cert_file:
      description: C(--etcd-certfile).
      type: str
    key_file:
      description: C(--etcd-keyfile).
      type: str
    prefix:
      description: C(--etcd-prefix) (default V(/registry)).
      type: str
encryption_config_file:
  description:
    - The encryption configuration to write - O(encryption_config_path), else the one the manifest names, else
      C(/etc/kubernetes/encryption-provider-config.yaml).
  returned: always
  type: str
  sample: /etc/kubernetes/encryption-provider-config.yaml
automatic_reload_supported:
  description:
    - Whether this kube-apiserver has C(--encryption-provider-config-automatic-reload) (Kubernetes 1.26 or
      newer), which O(tke.kms.apiserver_manifest#module:automatic_reload) needs.
  returned: always
  type: bool
kms_health_check:
  description:
    - Whether C(/readyz) of this apiserver has C(kms-provider) checks - its configuration has a KMS provider
      and it is Kubernetes 1.16 or newer.
  returned: always
  type: bool
provider:
  description:
    - The item of RV(kms_providers) named O(provider_name); empty when there is none.
  returned: when O(provider_name) is set
  type: dict
  sample: {name: tke-kms-plugin, api_version: v1, resources: [secrets], write: true}
entries_still_encrypting:
  description:
    - The entries of the configuration that would still encrypt once the provider O(provider_name) has left
      (a provider other than C(identity) remains), as C(resources [providers]). While there are any, the
      C(--encryption-provider-config) flag must stay or their objects become unreadable.
  returned: when O(provider_name) is set
  type: list
  elements: str
  sample: ["configmaps [aesgcm, identity]"]
kms:
  description: What M(tke.kms.encryption_config) decides for O(kms_api_version) and O(provider_name).
  returned: when O(kms_api_version) is set
  type: dict
  contains:
    api_version:
      description:
        - The KMS API version O(kms_api_version) resolves to - with V(auto), the version of an existing
          provider named O(provider_name) (its data needs it), else V(v2) from Kubernetes 1.29, else V(v1).
      type: str
      sample: v2
    cachesize_applies:
      description: Whether the provider has a DEK cache size (KMS v1 only).
      type: bool
    feature_gates:
      description: The feature gates kube-apiserver needs for it (C(KMSv1=true) for KMS v1 on 1.29+).
      type: dict
      sample: {KMSv1: true}
"""

import typing as t

from ansible_collections.tke.kms.plugins.module_utils import _encryption_config as ec
from ansible_collections.tke.kms.plugins.module_utils import _manifest as mf
from ansible_collections.tke.kms.plugins.module_utils import _reload as rl
from ansible_collections.tke.kms.plugins.module_utils._errors import TkeKmsError
from ansible_collections.tke.kms.plugins.module_utils._kube_version import KubeVersion
from ansible_collections.tke.kms.plugins.module_utils._master_api import read_manifest
from ansible_collections.tke.kms.plugins.module_utils._module import TkeKmsModule
from ansible_collections.tke.kms.plugins.module_utils._yaml_edit import PYYAML


def argument_spec() -> t.Dict[str, t.Any]:
    return dict(
        path=dict(type="path", default="/etc/kubernetes/manifests/kube-apiserver.yaml"),
        kubernetes_version=dict(type="str"),
        provider_name=dict(type="str"),
        kms_api_version=dict(type="str", choices=["auto", "v1", "v2"]),
        encryption_config_path=dict(type="path"),
    )


def kms_decisions(
    requested: str, version: KubeVersion, config: t.Optional[t.Dict[str, t.Any]], name: str
) -> t.Dict[str, t.Any]:
    """The KMS API version, cache size and feature gates that tke.kms.encryption_config will decide."""
    api_version = ec.resolve_kms_api_version(requested, version, config, name)
    return dict(
        api_version=api_version,
        cachesize_applies=ec.cachesize_applies(api_version),
        feature_gates=ec.feature_gates_for(api_version, version),
    )


def decisions(
    params: t.Dict[str, t.Any], version: KubeVersion, config: t.Optional[t.Dict[str, t.Any]], config_file: str
) -> t.Dict[str, t.Any]:
    """The provider entry and the KMS decisions the options ask for."""
    result: t.Dict[str, t.Any] = {}
    name = params["provider_name"]
    if name is not None:
        result["provider"] = ec.provider_entry(config, name)
        result["entries_still_encrypting"] = ec.entries_still_encrypting(config, name)
    if params["kms_api_version"] is not None:
        target = ec.read_config(config_file) if params["encryption_config_path"] else config
        result["kms"] = kms_decisions(params["kms_api_version"], version, target, name)
    return result


def main() -> None:
    module = TkeKmsModule(
        argument_spec(),
        libraries=[PYYAML],
        required_by=dict(kms_api_version="provider_name"),
        supports_check_mode=True,
    )
    path = module.params["path"]
    try:
        manifest = read_manifest(path)
        version = manifest.version(module.params["kubernetes_version"])
        config_path = manifest.encryption_config_host_path()
        config = ec.read_config(config_path) if config_path else None
        given = module.params["encryption_config_path"]
        config_file = ec.config_file(given, manifest.encryption_config_path())
        decided = decisions(module.params, version, config, config_file)
    except (TkeKmsError, OSError, ValueError) as exc:
        module.fail_from_exception(exc)
    flags = manifest.flags()
    annotations = (manifest.pod.value.get("metadata") or {}).get("annotations") or {}
    module.exit_json(
        changed=False,
        path=path,
        kubernetes_version=str(version),
        minor_version=version.minor_version,
        image=manifest.image,
        encryption_flag=mf.encryption_flag_for(version),
        encryption_config_path=manifest.encryption_config_path(),
        encryption_config_file=config_file,
        encryption_entries=ec.entry_labels(config),
        kms_providers=ec.kms_providers(config),
        kms_health_check=ec.has_kms_health_check(config, version),
        automatic_reload_supported=version >= rl.MINIMUM_VERSION,
        config_checksum=annotations.get(mf.CONFIG_CHECKSUM_ANNOTATION),
        feature_gates=manifest.feature_gates(),
        flags=flags,
        url=mf.apiserver_url(flags),
        etcd=mf.etcd_settings(flags),
        **decided,
    )


if __name__ == "__main__":
    main()
