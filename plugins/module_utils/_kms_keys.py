# Copyright (c) tke.kms contributors
# Apache License 2.0 (see https://www.apache.org/licenses/LICENSE-2.0)
"""KMS key lookups shared by tke.kms.kms_key and tke.kms.kms_key_info.

PRIVATE to the collection.
"""

from __future__ import annotations

import re
import typing as t

from ansible_collections.tke.kms.plugins.module_utils._errors import InvalidValue
from ansible_collections.tke.kms.plugins.module_utils._tencentcloud import KmsClient, TencentCloudError

PAGE_SIZE = 200
# ListKeyDetail's KeyState filter.
KEY_STATE_FILTERS = {
    "all": 0,
    "Enabled": 1,
    "Disabled": 2,
    "PendingDelete": 3,
    "PendingImport": 4,
    "Archived": 5,
}
KEY_TYPES = {"TENCENT_KMS": 1, "EXTERNAL": 2}
_ALIAS = re.compile(r"^[A-Za-z0-9][A-Za-z0-9_-]{0,59}$")
NOT_FOUND_CODES = ("ResourceUnavailable.CmkNotFound", "ResourceNotFound")


def alias_problem(alias: str) -> t.Optional[str]:
    """Why KMS would refuse this alias, checked here so check mode predicts what a real run does."""
    if not _ALIAS.match(alias):
        return (
            "alias %r is invalid: use 1-60 letters, digits, '-' or '_', starting with a letter or digit"
            % alias
        )
    if alias.lower().startswith("kms-"):
        return "alias %r is invalid: the prefix 'kms-' is reserved for Tencent Cloud products" % alias
    return None


def list_key_details(
    kms: KmsClient, search: t.Optional[str] = None, key_state: str = "all"
) -> t.List[t.Dict[str, t.Any]]:
    """Every user-created key of the region (optionally fuzzy-matched on alias or KeyId), all pages."""
    params: t.Dict[str, t.Any] = dict(
        Limit=PAGE_SIZE, Role=0, KeyState=KEY_STATE_FILTERS[key_state], KeyUsage="ALL", Origin="ALL"
    )
    if search:
        params["SearchKeyAlias"] = search
    keys: t.List[t.Dict[str, t.Any]] = []
    while True:
        params["Offset"] = len(keys)
        response = kms.call("ListKeyDetail", params)
        page = response.get("KeyMetadatas") or []
        keys.extend(page)
        if not page or len(keys) >= (response.get("TotalCount") or 0):
            return keys


def find_key_by_alias(kms: KmsClient, alias: str) -> t.Optional[t.Dict[str, t.Any]]:
    """The key whose alias is exactly `alias`; SearchKeyAlias is a fuzzy match, so filter here."""
    matches = [key for key in list_key_details(kms, search=alias) if key.get("Alias") == alias]
    if len(matches) > 1:
        ids = ", ".join(sorted(key.get("KeyId", "?") for key in matches))
        raise InvalidValue("alias %r matches several keys (%s); select one with key_id" % (alias, ids))
    return matches[0] if matches else None


def describe_key(kms: KmsClient, key_id: str) -> t.Optional[t.Dict[str, t.Any]]:
    """KeyMetadata of `key_id`, or None when the key does not exist."""
    try:
        return kms.call("DescribeKey", {"KeyId": key_id}).get("KeyMetadata")
    except TencentCloudError as exc:
        if exc.code in NOT_FOUND_CODES:
            return None
        raise


def rotation_enabled(kms: KmsClient, key: t.Dict[str, t.Any]) -> bool:
    """KeyRotationEnabled from the metadata, asking GetKeyRotationStatus when the metadata leaves it out."""
    if key.get("KeyRotationEnabled") is not None:
        return bool(key["KeyRotationEnabled"])
    return bool(kms.call("GetKeyRotationStatus", {"KeyId": key["KeyId"]}).get("KeyRotationEnabled"))
