#!/usr/bin/python
# Copyright (c) tke.kms contributors
# Apache License 2.0 (see https://www.apache.org/licenses/LICENSE-2.0)

from __future__ import annotations

DOCUMENTATION = r"""
module: secret_storage_info
short_description: Count how the cluster's Secrets (and other resources) are stored in etcd, and which are
                   not yet stored as the rollout wants (with KMS, or in the clear)
version_added: 0.1.0
description:
  - Reads the Secrets' raw values from etcd, as the kube-apiserver of this master stored them, and classifies
    each by its storage prefix - C(k8s:enc:kms:v2:<name>:), C(k8s:enc:aescbc:v1:<key>:), ..., or none
    (stored in the clear, C(identity)).
  - Uses the apiserver's own etcd endpoints and client certificate from its manifest, so the master needs
    neither etcdctl nor anything but Python's standard library (and PyYAML to read the manifest). Values are
    never returned.
  - Counts the objects of every resource in O(resources) - Secrets by default; give every resource of the
    encryption configuration's entries that carry the provider, so none is left under an old key.
options:
  resources:
    description:
      - The resources to count, named as an EncryptionConfiguration names them - the plural for the core
        group (V(secrets), V(configmaps), V(services), ...), C(<plural>.<group>) otherwise
        (V(deployments.apps), V(widgets.example.com) for a custom resource).
      - Their etcd keys follow kube-apiserver's layout - C(<etcd_prefix>/<plural>/) for the core and
        built-in groups (with kube-apiserver's exceptions, for example C(services/specs), C(minions) for
        nodes, C(ingress) for ingresses), C(<etcd_prefix>/<group>/<plural>/) for any other group (custom
        resources, C(apiservices.apiregistration.k8s.io),
        C(customresourcedefinitions.apiextensions.k8s.io)).
      - Wildcards (C(*.*), C(*.<group>)) and subresources are refused.
    type: list
    elements: str
    default: [secrets]
  manifest_path:
    description: The kube-apiserver manifest whose etcd flags give the defaults below.
    type: path
    default: /etc/kubernetes/manifests/kube-apiserver.yaml
  provider_name:
    description:
      - Name of the KMS provider whose prefix counts as encrypted (RV(encrypted_count)).
      - With O(target=kms), every Secret stored otherwise is pending - during a key rotation, give the NEW
        provider's name, and the Secrets still under the old provider are pending.
    type: str
    default: tke-kms-plugin
  target:
    description:
      - How the Secrets should be stored, which decides what is pending.
      - V(kms) - with the KMS provider O(provider_name); anything else (the clear, another key, another KMS
        provider) is pending.
      - V(identity) - in the clear, when turning encryption off; every Secret stored with an encryption
        prefix (C(k8s:enc:)), whatever the provider, is pending.
    type: str
    choices: [kms, identity]
    default: kms
  list_pending:
    description: Return the names of the pending Secrets (RV(pending); other resources are only counted).
    type: bool
    default: true
  page_size:
    description: Keys read from etcd per request.
    type: int
    default: 500
extends_documentation_fragment:
  - tke.kms.master_etcd
  - tke.kms.attributes
  - tke.kms.attributes.INFO_MODULE
seealso:
  - module: tke.kms.reencrypt
  - module: tke.kms.encryption_verify
author:
  - tke.kms maintainers (@tke-kms)
"""

EXAMPLES = r"""
- name: Which Secrets still need to be rewritten?
  tke.kms.secret_storage_info:
  register: storage

- name: Rewrite them
  tke.kms.reencrypt:
    secrets: "{{ storage.pending }}"
  when: storage.pending_count > 0

- name: During a key rotation - which Secrets are not yet under the new provider?
  tke.kms.secret_storage_info:
    provider_name: tke-kms-plugin-2
  register: storage

- name: When turning encryption off - which Secrets are still encrypted?
  tke.kms.secret_storage_info:
    target: identity
  register: storage
"""

RETURN = r"""
total:
  description: Number of objects of O(resources) in etcd (of Secrets, with the default O(resources)).
  returned: always
  type: int
by_storage:
  description: Number of objects of O(resources) per storage (C(identity) for the clear).
  returned: always
  type: dict
  sample: {identity: 12, "kms:v1:tke-kms-plugin": 3040}
encrypted_count:
  description: Objects of O(resources) stored with the KMS provider O(provider_name) (whatever O(target) is).
  returned: always
  type: int
pending_count:
  description: Objects of O(resources) not stored as O(target) wants.
  returned: always
  type: int
per_resource:
  description: The same counts for each resource of O(resources).
  returned: always
  type: dict
  sample: {secrets: {total: 40, by_storage: {"kms:v2:tke-kms-plugin": 40}, encrypted_count: 40,
           pending_count: 0}, configmaps: {total: 12, by_storage: {"aescbc:v1:key1": 12}, encrypted_count: 0,
           pending_count: 12}}
pending_resources:
  description:
    - The resources of O(resources) other than V(secrets) with pending objects. Only Secrets are listed by
      name (RV(pending)); rewrite every object of these resources.
  returned: always
  type: list
  elements: str
  sample: [configmaps]
target:
  description: The O(target) the Secrets were counted against.
  returned: always
  type: str
  sample: kms
pending:
  description: C(namespace/name) of the pending Secrets (only Secrets, whatever O(resources) holds).
  returned: when O(list_pending=true)
  type: list
  elements: str
"""


from ansible_collections.tke.kms.plugins.module_utils._etcd import (
    TARGETS,
    census_of_resources,
    etcd_argument_spec,
    etcd_reader,
)
from ansible_collections.tke.kms.plugins.module_utils._https import HttpsError
from ansible_collections.tke.kms.plugins.module_utils._manifest import ManifestError
from ansible_collections.tke.kms.plugins.module_utils._master_api import manifest_argument_spec
from ansible_collections.tke.kms.plugins.module_utils._module import TkeKmsModule, merge_argument_specs
from ansible_collections.tke.kms.plugins.module_utils._yaml_edit import PYYAML


def main() -> None:
    spec = merge_argument_specs(
        manifest_argument_spec(),
        etcd_argument_spec(),
        dict(
            resources=dict(type="list", elements="str", default=["secrets"]),
            provider_name=dict(type="str", default="tke-kms-plugin"),
            target=dict(type="str", choices=list(TARGETS), default="kms"),
            list_pending=dict(type="bool", default=True),
            page_size=dict(type="int", default=500),
        ),
    )
    module = TkeKmsModule(spec, libraries=[PYYAML], supports_check_mode=True)
    params = module.params
    try:
        reader, prefix = etcd_reader(params)
        found, each = census_of_resources(
            reader,
            prefix,
            params["provider_name"],
            params["resources"],
            params["page_size"],
            target=params["target"],
            list_pending=params["list_pending"],
        )
    except (ManifestError, HttpsError, ValueError) as exc:
        module.fail_from_exception(exc)
    result = dict(
        changed=False,
        target=params["target"],
        per_resource={resource: c.counts() for resource, c in each.items()},
        pending_resources=[r for r, c in each.items() if r != "secrets" and c.pending_count],
        **found.counts(),
    )
    if params["list_pending"]:
        result["pending"] = found.pending
    module.exit_json(**result)


if __name__ == "__main__":
    main()
