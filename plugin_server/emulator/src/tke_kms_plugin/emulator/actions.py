"""The KMS 2019-01-18 actions: parameter schemas, rules and limits as Tencent documents them.

Each handler gets the validated params and the request's region and returns the Response fields
(RequestId is added by the caller). Errors are raised as ApiError with Tencent's codes.
"""

from __future__ import annotations

import base64
import json
import os
import re
from collections.abc import Callable
from dataclasses import dataclass
from typing import Any

from . import blobs
from .errors import ApiError
from .params import (
    MEMBER_ACCOUNT,
    TAG,
    TAG_FILTER,
    Field,
    integer,
    list_of,
    string,
    string_list,
    structure,
    unsupported,
    validate,
)
from .store import SECONDS_PER_DAY, Key, KeyStore

ALIAS_PATTERN = re.compile(r"^[A-Za-z0-9][A-Za-z0-9_-]{0,59}$")
RESERVED_ALIAS_PREFIX = "kms-"  # reserved for cloud products (and the console refuses "KMS-")
KEY_ID_PATTERN = re.compile(r"^[0-9a-fA-F]{8}-[0-9a-fA-F]{4}-[0-9a-fA-F]{4}-[0-9a-fA-F]{4}-[0-9a-fA-F]{12}$")
MAX_PLAINTEXT_BYTES = 4096
MAX_ENCRYPTION_CONTEXT_CHARS = 1024
MAX_DESCRIPTION_BYTES = 1024
MAX_DATA_KEY_DESCRIPTION_BYTES = 100
MAX_LIST_LIMIT = 200
MAX_DESCRIBE_KEYS = 100
PENDING_WINDOW_DAYS = (7, 30)
ROTATE_DAYS = (7, 365)
DEFAULT_ROTATE_DAYS = 365
DATA_KEY_SPECS = {"AES_128": 16, "AES_256": 32}
DATA_KEY_BYTES = (1, 1024)
SYMMETRIC_USAGE = "ENCRYPT_DECRYPT"
ASYMMETRIC_USAGES = frozenset(
    {
        "ASYMMETRIC_DECRYPT_RSA_2048",
        "ASYMMETRIC_DECRYPT_SM2",
        "ASYMMETRIC_SIGN_VERIFY_SM2",
        "ASYMMETRIC_SIGN_VERIFY_ECC",
        "ASYMMETRIC_SIGN_VERIFY_RSA_2048",
        "ASYMMETRIC_SIGN_VERIFY_ECDSA384",
    }
)
KEY_USAGES = ASYMMETRIC_USAGES | {SYMMETRIC_USAGE}
# ListKeyDetail's KeyState filter: 0 all, then these; 4 PendingImport and 5 Archived never occur here.
KEY_STATE_FILTER = {1: "Enabled", 2: "Disabled", 3: "PendingDelete", 4: "PendingImport", 5: "Archived"}
CREATOR_UIN = 100000000001  # the emulator's one fake account

Handler = Callable[[KeyStore, str, dict[str, Any]], dict[str, Any]]


@dataclass(frozen=True, slots=True)
class Action:
    fields: dict[str, Field]
    handler: Handler

    def run(self, name: str, store: KeyStore, region: str, params: dict[str, Any]) -> dict[str, Any]:
        return self.handler(store, region, validate(name, self.fields, params))


ACTIONS: dict[str, Action] = {}
MEMBER = unsupported(MEMBER_ACCOUNT, "MemberAccount")
HSM_CLUSTER = unsupported(lambda value: isinstance(value, str), "String")


def action(name: str, **fields: Field) -> Callable[[Handler], Handler]:
    def register(handler: Handler) -> Handler:
        ACTIONS[name] = Action(fields, handler)
        return handler

    return register


# -- shared rules ------------------------------------------------------------------------------------


def check_alias(alias: str) -> str:
    if not ALIAS_PATTERN.match(alias):
        raise ApiError(
            "InvalidParameterValue.InvalidAlias",
            "Alias must be 1-60 letters, digits, '-' or '_', starting with a letter or digit.",
        )
    if alias.lower().startswith(RESERVED_ALIAS_PREFIX):
        raise ApiError(
            "InvalidParameterValue.InvalidAlias",
            "Alias must not start with 'kms-' (reserved for cloud products).",
        )
    return alias


def check_description(description: str, limit: int = MAX_DESCRIPTION_BYTES) -> str:
    if len(description.encode("utf-8")) > limit:
        raise ApiError("InvalidParameterValue", f"Description must be at most {limit} bytes.")
    return description


def check_key_id(key_id: str) -> str:
    if not KEY_ID_PATTERN.match(key_id):
        raise ApiError("InvalidParameterValue.InvalidKeyId", f"KeyId {key_id!r} is not a valid CMK id.")
    return key_id


def check_unique_alias(store: KeyStore, region: str, alias: str, key: Key | None = None) -> None:
    owner = store.alias_owner(region, alias)
    if owner is not None and owner is not key:
        raise ApiError(
            "InvalidParameterValue.AliasAlreadyExists", f"Alias {alias!r} already exists in {region}."
        )


def check_encryption_context(params: dict[str, Any]) -> str:
    context = params.get("EncryptionContext", "")
    if not context:
        return ""
    if len(context) > MAX_ENCRYPTION_CONTEXT_CHARS:
        raise ApiError(
            "InvalidParameterValue",
            f"EncryptionContext must be at most {MAX_ENCRYPTION_CONTEXT_CHARS} characters.",
        )
    try:
        parsed = json.loads(context)
    except ValueError:
        parsed = None
    if not isinstance(parsed, dict):
        raise ApiError("InvalidParameterValue", "EncryptionContext must be a JSON object, as a string.")
    return context


def decode_plaintext(text: str) -> bytes:
    try:
        plaintext = blobs.strict_b64decode(text)
    except ValueError as err:  # binascii.Error and UnicodeEncodeError are ValueErrors
        raise ApiError("InvalidParameterValue.InvalidPlaintext", "Plaintext must be base64 encoded.") from err
    if not plaintext:
        raise ApiError("InvalidParameterValue.InvalidPlaintext", "Plaintext must not be empty.")
    if len(plaintext) > MAX_PLAINTEXT_BYTES:
        raise ApiError(
            "InvalidParameterValue.InvalidPlaintext",
            f"Plaintext is {len(plaintext)} bytes; at most {MAX_PLAINTEXT_BYTES} (before base64) allowed.",
        )
    return plaintext


def existing_key(store: KeyStore, region: str, key_id: str) -> Key:
    return store.get(region, check_key_id(key_id))


def usable_key(store: KeyStore, region: str, key_id: str) -> Key:
    """A key that may encrypt or decrypt now."""
    key = existing_key(store, region, key_id)
    if key.key_state != "Enabled":
        raise ApiError(
            "ResourceUnavailable.CmkDisabled", f"The key {key.key_id} is {key.key_state}, not Enabled."
        )
    return key


def refuse_pending_delete(key: Key, action_name: str) -> None:
    if key.key_state == "PendingDelete":
        raise ApiError(
            "ResourceUnavailable.CmkStateNotSupport",
            f"{action_name} is not allowed on key {key.key_id} while it is PendingDelete.",
        )


def in_range(value: int, bounds: tuple[int, int], code: str, name: str) -> int:
    if not bounds[0] <= value <= bounds[1]:
        raise ApiError(code, f"{name} must be between {bounds[0]} and {bounds[1]}, got {value}.")
    return value


def key_summary(key: Key) -> dict[str, Any]:
    """The fields CreateKey answers with, which KeyMetadata starts with too."""
    return {
        "KeyId": key.key_id,
        "Alias": key.alias,
        "CreateTime": key.create_time,
        "Description": key.description,
        "KeyState": key.key_state,
        "KeyUsage": key.key_usage,
    }


def key_metadata(key: Key) -> dict[str, Any]:
    return {
        **key_summary(key),
        "Type": 1,
        "CreatorUin": CREATOR_UIN,
        "KeyRotationEnabled": key.rotation_enabled,
        "Owner": "user",
        "NextRotateTime": key.next_rotate_time if key.rotation_enabled else 0,
        "DeletionDate": key.deletion_date,
        "Origin": "TENCENT_KMS",
        "ValidTo": 0,
        "ResourceId": f"creatorUin/{CREATOR_UIN}/{key.key_id}",
        "HsmClusterId": "",
        "RotateDays": key.rotate_days,
        "LastRotateTime": key.last_rotate_time,
        "IsSyncReplica": 0,
        "SourceRegion": "",
        "SyncStatus": 0,
        "SyncMessages": "",
        "SyncStartTime": 0,
        "SyncEndTime": 0,
        "SourceHsmClusterId": "",
        "CreatorUinString": str(CREATOR_UIN),
    }


def page(params: dict[str, Any], items: list[Any]) -> list[Any]:
    offset = params.get("Offset", 0)
    limit = params.get("Limit", 10)
    if offset < 0:
        raise ApiError("InvalidParameterValue", f"Offset must not be negative, got {offset}.")
    in_range(limit, (1, MAX_LIST_LIMIT), "InvalidParameterValue", "Limit")
    return items[offset : offset + limit]


def check_role(params: dict[str, Any]) -> int:
    return in_range(params.get("Role", 0), (0, 1), "InvalidParameterValue", "Role")


# -- key management ----------------------------------------------------------------------------------


@action(
    "CreateKey",
    Alias=string(required=True),
    Description=string(),
    KeyUsage=string(),
    Type=integer(),
    Tags=structure(list_of(TAG), "Array of Tag"),
    HsmClusterId=HSM_CLUSTER,
)
def create_key(store: KeyStore, region: str, params: dict[str, Any]) -> dict[str, Any]:
    alias = check_alias(params["Alias"])
    description = check_description(params.get("Description", ""))
    usage = params.get("KeyUsage") or SYMMETRIC_USAGE
    if usage in ASYMMETRIC_USAGES:
        raise ApiError(
            "UnsupportedOperation", f"KeyUsage {usage} is not implemented by the tke-kms emulator."
        )
    if usage != SYMMETRIC_USAGE:
        raise ApiError(
            "InvalidParameterValue.InvalidKeyUsage", f"KeyUsage {usage!r} is not a valid key usage."
        )
    key_type = params.get("Type", 1)
    if key_type == 2:
        raise ApiError(
            "UnsupportedOperation", "Type 2 (EXTERNAL key material) is not implemented by the emulator."
        )
    if key_type != 1:
        raise ApiError("InvalidParameterValue.InvalidType", f"Type must be 1 or 2, got {key_type}.")
    tags: dict[str, str] = {}
    for tag in params.get("Tags", []):
        if not tag.get("TagKey"):
            raise ApiError("InvalidParameter", "Every Tag needs a non-empty TagKey.")
        if tag["TagKey"] in tags:
            raise ApiError(
                "InvalidParameterValue.TagKeysDuplicated", f"Tag key {tag['TagKey']!r} is repeated."
            )
        tags[tag["TagKey"]] = tag.get("TagValue") or ""
    with store.transaction():
        check_unique_alias(store, region, alias)
        key = store.create(region, alias=alias, description=description, tags=tags, key_usage=usage)
    return {
        **key_summary(key),
        "TagCode": 0,
        "TagMsg": "Success",
        "HsmClusterId": "",
    }


@action("DescribeKey", KeyId=string(required=True), MemberAccount=MEMBER)
def describe_key(store: KeyStore, region: str, params: dict[str, Any]) -> dict[str, Any]:
    return {"KeyMetadata": key_metadata(existing_key(store, region, params["KeyId"]))}


@action("DescribeKeys", KeyIds=string_list(required=True), MemberAccount=MEMBER)
def describe_keys(store: KeyStore, region: str, params: dict[str, Any]) -> dict[str, Any]:
    key_ids = params["KeyIds"]
    if len(key_ids) > MAX_DESCRIBE_KEYS:
        raise ApiError(
            "InvalidParameterValue", f"KeyIds holds {len(key_ids)} ids; at most {MAX_DESCRIBE_KEYS}."
        )
    if len(set(key_ids)) != len(key_ids):
        raise ApiError("InvalidParameterValue.DuplicatedKeyId", "KeyIds holds the same id more than once.")
    return {"KeyMetadatas": [key_metadata(existing_key(store, region, key_id)) for key_id in key_ids]}


@action("ListKeys", Offset=integer(), Limit=integer(), Role=integer(), HsmClusterId=HSM_CLUSTER)
def list_keys(store: KeyStore, region: str, params: dict[str, Any]) -> dict[str, Any]:
    # Role 1 means keys created by cloud products; the emulator has none.
    keys = [] if check_role(params) else store.keys(region)
    listed = [key for key in reversed(keys) if key.key_state in ("Enabled", "Disabled")]
    return {"Keys": [{"KeyId": key.key_id} for key in page(params, listed)], "TotalCount": len(listed)}


@action(
    "ListKeyDetail",
    Offset=integer(),
    Limit=integer(),
    Role=integer(),
    OrderType=integer(),
    KeyState=integer(),
    SearchKeyAlias=string(),
    Origin=string(),
    KeyUsage=string(),
    TagFilters=structure(list_of(TAG_FILTER), "Array of TagFilter"),
    HsmClusterId=HSM_CLUSTER,
    MemberAccounts=unsupported(list_of(MEMBER_ACCOUNT), "Array of MemberAccount"),
)
def list_key_detail(store: KeyStore, region: str, params: dict[str, Any]) -> dict[str, Any]:
    keys = [] if check_role(params) else store.keys(region)
    order = in_range(params.get("OrderType", 0), (0, 1), "InvalidParameterValue", "OrderType")
    if order == 0:  # CreateTime descending
        keys.reverse()
    state = in_range(params.get("KeyState", 0), (0, 5), "InvalidParameterValue", "KeyState")
    if state:
        keys = [key for key in keys if key.key_state == KEY_STATE_FILTER[state]]
    search = params.get("SearchKeyAlias", "").lower()
    if search:
        keys = [key for key in keys if search in key.alias.lower() or search in key.key_id.lower()]
    origin = params.get("Origin") or "ALL"
    if origin not in ("ALL", "TENCENT_KMS", "EXTERNAL"):
        raise ApiError(
            "InvalidParameterValue", f"Origin must be TENCENT_KMS, EXTERNAL or ALL, got {origin!r}."
        )
    if origin == "EXTERNAL":
        keys = []
    usage = params.get("KeyUsage") or SYMMETRIC_USAGE  # empty means symmetric keys only, as documented
    if usage != "ALL" and usage not in KEY_USAGES:
        raise ApiError(
            "InvalidParameterValue.InvalidKeyUsage", f"KeyUsage {usage!r} is not a valid key usage."
        )
    if usage != "ALL":
        keys = [key for key in keys if key.key_usage == usage]
    for tag_filter in params.get("TagFilters", []):
        wanted, values = tag_filter.get("TagKey"), tag_filter.get("TagValue") or []
        keys = [key for key in keys if wanted in key.tags and (not values or key.tags[wanted] in values)]
    return {"TotalCount": len(keys), "KeyMetadatas": [key_metadata(key) for key in page(params, keys)]}


@action("UpdateAlias", Alias=string(required=True), KeyId=string(required=True), MemberAccount=MEMBER)
def update_alias(store: KeyStore, region: str, params: dict[str, Any]) -> dict[str, Any]:
    alias = check_alias(params["Alias"])
    with store.transaction():
        key = existing_key(store, region, params["KeyId"])
        refuse_pending_delete(key, "UpdateAlias")
        check_unique_alias(store, region, alias, key)
        key.alias = alias
    return {}


@action(
    "UpdateKeyDescription",
    Description=string(required=True),
    KeyId=string(required=True),
    MemberAccount=MEMBER,
)
def update_key_description(store: KeyStore, region: str, params: dict[str, Any]) -> dict[str, Any]:
    description = check_description(params["Description"])
    with store.transaction():
        existing_key(store, region, params["KeyId"]).description = description
    return {}


def _switch_key_state(
    store: KeyStore, region: str, key_id: str, state: str, action_name: str
) -> dict[str, Any]:
    with store.transaction():
        key = existing_key(store, region, key_id)
        refuse_pending_delete(key, action_name)
        key.key_state = state
    return {}


@action("EnableKey", KeyId=string(required=True), MemberAccount=MEMBER)
def enable_key(store: KeyStore, region: str, params: dict[str, Any]) -> dict[str, Any]:
    return _switch_key_state(store, region, params["KeyId"], "Enabled", "EnableKey")


@action("DisableKey", KeyId=string(required=True), MemberAccount=MEMBER)
def disable_key(store: KeyStore, region: str, params: dict[str, Any]) -> dict[str, Any]:
    return _switch_key_state(store, region, params["KeyId"], "Disabled", "DisableKey")


@action(
    "ScheduleKeyDeletion",
    KeyId=string(required=True),
    PendingWindowInDays=integer(required=True),
    MemberAccount=MEMBER,
)
def schedule_key_deletion(store: KeyStore, region: str, params: dict[str, Any]) -> dict[str, Any]:
    days = in_range(
        params["PendingWindowInDays"],
        PENDING_WINDOW_DAYS,
        "InvalidParameter.InvalidPendingWindowInDays",
        "PendingWindowInDays",
    )
    with store.transaction():
        key = existing_key(store, region, params["KeyId"])
        refuse_pending_delete(key, "ScheduleKeyDeletion")
        if key.key_state != "Disabled":
            raise ApiError(
                "ResourceUnavailable.CmkShouldBeDisabled",
                f"Disable key {key.key_id} before scheduling its deletion.",
            )
        key.key_state = "PendingDelete"
        key.deletion_date = store.now() + days * SECONDS_PER_DAY
    return {"DeletionDate": key.deletion_date, "KeyId": key.key_id}


@action("CancelKeyDeletion", KeyId=string(required=True), MemberAccount=MEMBER)
def cancel_key_deletion(store: KeyStore, region: str, params: dict[str, Any]) -> dict[str, Any]:
    with store.transaction():
        key = existing_key(store, region, params["KeyId"])
        if key.key_state != "PendingDelete":
            raise ApiError(
                "ResourceUnavailable.CmkNotPendingDelete", f"The key {key.key_id} is not PendingDelete."
            )
        key.key_state = "Disabled"
        key.deletion_date = 0
    return {"KeyId": key.key_id}


@action("EnableKeyRotation", KeyId=string(required=True), RotateDays=integer(), MemberAccount=MEMBER)
def enable_key_rotation(store: KeyStore, region: str, params: dict[str, Any]) -> dict[str, Any]:
    days = in_range(
        params.get("RotateDays", DEFAULT_ROTATE_DAYS), ROTATE_DAYS, "InvalidParameterValue", "RotateDays"
    )
    with store.transaction():
        key = existing_key(store, region, params["KeyId"])
        refuse_pending_delete(key, "EnableKeyRotation")
        if not key.rotation_enabled or key.rotate_days != days:
            key.rotation_enabled = True
            key.rotate_days = days
            key.next_rotate_time = store.now() + days * SECONDS_PER_DAY
    return {}


@action("DisableKeyRotation", KeyId=string(required=True), MemberAccount=MEMBER)
def disable_key_rotation(store: KeyStore, region: str, params: dict[str, Any]) -> dict[str, Any]:
    with store.transaction():
        key = existing_key(store, region, params["KeyId"])
        refuse_pending_delete(key, "DisableKeyRotation")
        key.rotation_enabled = False
        key.next_rotate_time = 0
    return {}


@action("GetKeyRotationStatus", KeyId=string(required=True), MemberAccount=MEMBER)
def get_key_rotation_status(store: KeyStore, region: str, params: dict[str, Any]) -> dict[str, Any]:
    return {"KeyRotationEnabled": existing_key(store, region, params["KeyId"]).rotation_enabled}


# -- cryptography ------------------------------------------------------------------------------------


def encrypt_with(key: Key, plaintext: bytes, encryption_context: str) -> str:
    version = key.current_version
    cipher = key.cipher(version)
    assert cipher is not None  # a key always has at least one material version
    return blobs.seal(cipher, key.key_id, version, plaintext, encryption_context)


@action(
    "Encrypt",
    KeyId=string(required=True),
    Plaintext=string(required=True),
    EncryptionContext=string(),
)
def encrypt(store: KeyStore, region: str, params: dict[str, Any]) -> dict[str, Any]:
    plaintext = decode_plaintext(params["Plaintext"])
    context = check_encryption_context(params)
    key = usable_key(store, region, params["KeyId"])
    return {"CiphertextBlob": encrypt_with(key, plaintext, context), "KeyId": key.key_id}


@action(
    "Decrypt",
    CiphertextBlob=string(required=True),
    EncryptionContext=string(),
    EncryptionPublicKey=unsupported(lambda value: isinstance(value, str), "String"),
    EncryptionAlgorithm=unsupported(lambda value: isinstance(value, str), "String"),
)
def decrypt(store: KeyStore, region: str, params: dict[str, Any]) -> dict[str, Any]:
    context = check_encryption_context(params)
    try:
        sealed = blobs.parse(params["CiphertextBlob"])
    except blobs.BlobError as err:
        raise ApiError(
            "InvalidParameterValue.InvalidCiphertext", f"CiphertextBlob is not valid: {err}."
        ) from err
    key = usable_key(store, region, sealed.key_id)
    cipher = key.cipher(sealed.material_version)
    try:
        if cipher is None:
            raise blobs.BlobError("unknown key material version")
        plaintext = blobs.open_sealed(cipher, sealed, context)
    except blobs.BlobError as err:
        raise ApiError(
            "InvalidParameterValue.InvalidCiphertext", f"CiphertextBlob is not valid: {err}."
        ) from err
    return {"KeyId": key.key_id, "Plaintext": base64.b64encode(plaintext).decode("ascii")}


@action(
    "GenerateDataKey",
    KeyId=string(required=True),
    KeySpec=string(),
    NumberOfBytes=integer(),
    EncryptionContext=string(),
    EncryptionPublicKey=unsupported(lambda value: isinstance(value, str), "String"),
    EncryptionAlgorithm=unsupported(lambda value: isinstance(value, str), "String"),
    IsHostedByKms=unsupported(lambda value: isinstance(value, int), "Integer"),
    DataKeyName=unsupported(lambda value: isinstance(value, str), "String"),
    Description=string(),
    HsmClusterId=HSM_CLUSTER,
    Tags=unsupported(list_of(TAG), "Array of Tag"),
)
def generate_data_key(store: KeyStore, region: str, params: dict[str, Any]) -> dict[str, Any]:
    if "NumberOfBytes" in params:  # wins over KeySpec, as documented
        size = in_range(params["NumberOfBytes"], DATA_KEY_BYTES, "InvalidParameterValue", "NumberOfBytes")
    elif "KeySpec" in params:
        if params["KeySpec"] not in DATA_KEY_SPECS:
            raise ApiError(
                "InvalidParameterValue", f"KeySpec must be AES_128 or AES_256, got {params['KeySpec']!r}."
            )
        size = DATA_KEY_SPECS[params["KeySpec"]]
    else:
        raise ApiError("MissingParameter", "One of the parameters `KeySpec` or `NumberOfBytes` is required.")
    check_description(params.get("Description", ""), MAX_DATA_KEY_DESCRIPTION_BYTES)
    context = check_encryption_context(params)
    key = usable_key(store, region, params["KeyId"])
    data_key = os.urandom(size)
    return {
        "KeyId": key.key_id,
        "Plaintext": base64.b64encode(data_key).decode("ascii"),
        "CiphertextBlob": encrypt_with(key, data_key, context),
    }
