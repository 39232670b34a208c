#!/usr/bin/python
# Copyright (c) tke.kms contributors
# Apache License 2.0 (see https://www.apache.org/licenses/LICENSE-2.0)

from __future__ import annotations

DOCUMENTATION = r"""
module: kms_key_info
short_description: Look up Tencent Cloud KMS keys
version_added: 0.1.0
description:
  - Returns the KMS keys (CMKs) created by the account in a region, selected by exact alias, key ids, a fuzzy
    search
    and/or key state. Without a selection, every key of the region is returned.
options:
  alias:
    description:
      - Exact alias of the key.
    type: str
  key_id:
    description:
      - Ids of keys. Unknown ids are left out of the result.
    type: list
    elements: str
    aliases: [key_ids]
  search:
    description:
      - Fuzzy match on alias or key id, as the KMS console search does.
    type: str
  key_state:
    description:
      - Only keys in this state.
    type: str
    choices: [all, Enabled, Disabled, PendingDelete, PendingImport, Archived]
    default: all
extends_documentation_fragment:
  - tke.kms.tencentcloud
  - tke.kms.attributes
  - tke.kms.attributes.INFO_MODULE
  - tke.kms.attributes.TENCENTCLOUD_GROUP
author:
  - tke.kms maintainers (@tke-kms)
"""

EXAMPLES = r"""
- name: Find the key of the cluster by alias
  tke.kms.kms_key_info:
    alias: k8s-prod-secrets
    region: ap-guangzhou
  register: found

- name: Fail early when the key is not usable
  ansible.builtin.assert:
    that:
      - found.kms_keys | length == 1
      - found.kms_keys[0].KeyState == 'Enabled'
    fail_msg: The KMS key k8s-prod-secrets is missing or not enabled

- name: List the keys waiting for deletion
  tke.kms.kms_key_info:
    key_state: PendingDelete
    region: ap-guangzhou
"""

RETURN = r"""
kms_keys:
  description:
    - The matching keys, with the fields of the KMS C(KeyMetadata) structure (KeyId, Alias, Description,
      KeyState,
      KeyUsage, KeyRotationEnabled, CreateTime, DeletionDate, Origin, ...).
    - Named C(kms_keys) because C(result.keys) would be the dictionary method in Jinja.
  returned: always
  type: list
  elements: dict
  sample:
    - KeyId: 23e80852-1e38-11e9-b129-5cb9019b4b01
      Alias: k8s-prod-secrets
      KeyState: Enabled
      KeyUsage: ENCRYPT_DECRYPT
      KeyRotationEnabled: true
"""

import typing as t

from ansible_collections.tke.kms.plugins.module_utils._errors import TkeKmsError
from ansible_collections.tke.kms.plugins.module_utils._kms_keys import (
    KEY_STATE_FILTERS,
    describe_key,
    find_key_by_alias,
    list_key_details,
)
from ansible_collections.tke.kms.plugins.module_utils._tencentcloud import (
    KmsClient,
    TencentKmsModule,
)


def select_keys(kms: KmsClient, params: t.Dict[str, t.Any]) -> t.List[t.Dict[str, t.Any]]:
    if params["key_id"]:
        keys = [key for key in (describe_key(kms, key_id) for key_id in params["key_id"]) if key]
    elif params["alias"]:
        found = find_key_by_alias(kms, params["alias"])
        keys = [found] if found else []
    else:
        return list_key_details(kms, search=params["search"], key_state=params["key_state"])
    if params["alias"]:
        keys = [key for key in keys if key.get("Alias") == params["alias"]]
    if params["search"]:
        needle = params["search"].lower()
        keys = [
            key for key in keys if needle in key.get("Alias", "").lower() or needle in key.get("KeyId", "")
        ]
    if params["key_state"] != "all":
        keys = [key for key in keys if key.get("KeyState") == params["key_state"]]
    return keys


def main() -> None:
    module = TencentKmsModule(
        argument_spec=dict(
            alias=dict(type="str"),
            key_id=dict(type="list", elements="str", aliases=["key_ids"]),
            search=dict(type="str"),
            key_state=dict(type="str", choices=list(KEY_STATE_FILTERS), default="all"),
        ),
        supports_check_mode=True,
    )
    try:
        module.exit_json(changed=False, kms_keys=select_keys(module.kms, module.params))
    except TkeKmsError as exc:
        module.fail_from_exception(exc)


if __name__ == "__main__":
    main()
