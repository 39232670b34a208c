#!/usr/bin/python
# Copyright (c) tke.kms contributors
# Apache License 2.0 (see https://www.apache.org/licenses/LICENSE-2.0)

from __future__ import annotations

DOCUMENTATION = r"""
module: reencrypt
short_description: Rewrite Secrets so that they are stored with the current write provider (KMS)
version_added: 0.1.0
description:
  - Stores Secrets again, unchanged, through the kube-apiserver of this master. The apiserver then encrypts
    each with the first provider of its encryption configuration - after the write phase, the KMS provider.
  - With O(secrets), only those are rewritten (M(tke.kms.secret_storage_info) returns the ones not yet stored
    with KMS, which makes a repeated run a no-op). Without it, every Secret of the cluster is listed page by
    page and rewritten.
  - A conflict (the Secret changed meanwhile) is retried with a fresh copy; a Secret deleted meanwhile is
    skipped. A Secret the apiserver did not need to store again (already with the write provider) keeps its
    resourceVersion and is counted as unchanged, so the task reports a change only when something was
    rewritten.
  - Run it only when every apiserver has the KMS provider first, or a Secret may be rewritten by an apiserver
    that still writes with the old provider.
options:
  secrets:
    description: C(namespace/name) of the Secrets to rewrite. If not set, all Secrets.
    type: list
    elements: str
  page_size:
    description: Secrets per list request, without O(secrets).
    type: int
    default: 100
  conflict_retries:
    description: How often a Secret that changed meanwhile is read again and retried.
    type: int
    default: 5
extends_documentation_fragment:
  - tke.kms.master_api
  - tke.kms.attributes
  - tke.kms.attributes.MUTATING
attributes:
  check_mode:
    details: Reports how many Secrets would be rewritten; without O(secrets) that is every Secret.
  diff_mode:
    support: none
seealso:
  - module: tke.kms.secret_storage_info
author:
  - tke.kms maintainers (@tke-kms)
"""

EXAMPLES = r"""
- name: Find the Secrets still stored without KMS
  tke.kms.secret_storage_info:
  register: storage

- name: Rewrite them with KMS
  tke.kms.reencrypt:
    secrets: "{{ storage.pending }}"
  when: storage.pending_count > 0
"""

RETURN = r"""
rewritten:
  description: Secrets stored again with the write provider (would be, in check mode).
  returned: always
  type: int
unchanged:
  description: Secrets the apiserver did not need to store again.
  returned: always
  type: int
missing:
  description: Secrets that were deleted before they could be rewritten.
  returned: always
  type: int
"""

import typing as t

from ansible.module_utils.basic import AnsibleModule, missing_required_lib
from ansible_collections.tke.kms.plugins.module_utils._https import HttpsError
from ansible_collections.tke.kms.plugins.module_utils._manifest import ManifestError
from ansible_collections.tke.kms.plugins.module_utils._master_api import (
    master_api_argument_spec,
    master_endpoint,
    read_manifest,
)
from ansible_collections.tke.kms.plugins.module_utils._secrets_api import (
    MISSING,
    REWRITTEN,
    UNCHANGED,
    get_secret,
    list_secrets,
    rewrite,
)
from ansible_collections.tke.kms.plugins.module_utils._yaml_edit import yaml


def split_names(module: AnsibleModule, names: t.List[str]) -> t.List[t.Tuple[str, str]]:
    pairs = []
    for entry in names:
        namespace, _sep, name = entry.partition("/")
        if not namespace or not name or "/" in name:
            module.fail_json(msg="secrets must be given as namespace/name, got %r" % entry)
        pairs.append((namespace, name))
    return pairs


def main() -> None:
    spec = master_api_argument_spec()
    spec.update(
        secrets=dict(type="list", elements="str", no_log=False),
        page_size=dict(type="int", default=100),
        conflict_retries=dict(type="int", default=5),
    )
    module = AnsibleModule(argument_spec=spec, supports_check_mode=True)
    if yaml is None:
        module.fail_json(msg=missing_required_lib("PyYAML"))
    params = module.params
    counts = {REWRITTEN: 0, UNCHANGED: 0, MISSING: 0}
    try:
        endpoint = master_endpoint(params, read_manifest(params["manifest_path"]))
    except (ManifestError, HttpsError) as exc:
        module.fail_json(msg=str(exc))
    with endpoint:
        try:
            if params["secrets"] is not None:
                for namespace, name in split_names(module, params["secrets"]):
                    if module.check_mode:
                        found = get_secret(endpoint, namespace, name) is not None
                        counts[REWRITTEN if found else MISSING] += 1
                    else:
                        counts[rewrite(endpoint, namespace, name, retries=params["conflict_retries"])] += 1
            else:
                for secret in list_secrets(endpoint, params["page_size"]):
                    meta = secret["metadata"]
                    if module.check_mode:
                        counts[REWRITTEN] += 1
                    else:
                        outcome = rewrite(
                            endpoint, meta["namespace"], meta["name"], secret, params["conflict_retries"]
                        )
                        counts[outcome] += 1
        except HttpsError as exc:
            module.fail_json(msg="re-encryption stopped: %s" % exc, changed=counts[REWRITTEN] > 0, **counts)
    module.exit_json(changed=counts[REWRITTEN] > 0, **counts)


if __name__ == "__main__":
    main()
