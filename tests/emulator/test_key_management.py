"""Key management actions through the real SDK: fields, alias rules, state machine, listing, rotation."""

from __future__ import annotations

import pytest
from tke_kms_plugin.emulator import Emulator
from tke_kms_plugin.emulator.testing import make_kms_client

from tests.emulator.helpers import api_error, call, create_key

DAY = 86400


def test_create_key_returns_documented_fields(kms_client):
    created = call(kms_client, "CreateKey", Alias="etcd-secrets", Description="k8s secrets at rest")
    assert created.Alias == "etcd-secrets"
    assert created.Description == "k8s secrets at rest"
    assert created.KeyState == "Enabled"
    assert created.KeyUsage == "ENCRYPT_DECRYPT"
    assert created.CreateTime > 1_600_000_000
    assert len(created.KeyId) == 36 and created.KeyId.count("-") == 4
    assert created.RequestId


def test_describe_key_metadata(kms_client):
    key_id = create_key(kms_client, "meta", Description="d")
    metadata = call(kms_client, "DescribeKey", KeyId=key_id).KeyMetadata
    assert (metadata.KeyId, metadata.Alias, metadata.Description) == (key_id, "meta", "d")
    assert (metadata.KeyState, metadata.KeyUsage, metadata.Origin, metadata.Type) == (
        "Enabled",
        "ENCRYPT_DECRYPT",
        "TENCENT_KMS",
        1,
    )
    assert metadata.KeyRotationEnabled is False
    assert metadata.DeletionDate == 0
    assert metadata.ResourceId.endswith(key_id)


@pytest.mark.parametrize(
    "alias",
    ["", "-leading-dash", "has space", "x" * 61, "kms-reserved", "KMS-reserved", "dot.ted", "中文"],
)
def test_invalid_alias_is_refused(kms_client, alias):
    error = api_error(kms_client, "CreateKey", Alias=alias)
    assert error.code in {"InvalidParameterValue.InvalidAlias", "MissingParameter"}
    if alias:
        assert error.code == "InvalidParameterValue.InvalidAlias"


@pytest.mark.parametrize("alias", ["a", "A1_b-2", "x" * 60, "0starts-with-digit"])
def test_valid_alias_edges(kms_client, alias):
    assert call(kms_client, "CreateKey", Alias=alias).Alias == alias


def test_alias_unique_per_region(emulator, emulator_credentials, kms_client):
    create_key(kms_client, "shared")
    assert (
        api_error(kms_client, "CreateKey", Alias="shared").code == "InvalidParameterValue.AliasAlreadyExists"
    )
    shanghai = make_kms_client(emulator.endpoint, *emulator_credentials, region="ap-shanghai")
    assert call(shanghai, "CreateKey", Alias="shared").Alias == "shared"


def test_create_key_parameter_rules(kms_client):
    assert api_error(kms_client, "CreateKey").code == "MissingParameter"
    long_description = "d" * 1025
    assert (
        api_error(kms_client, "CreateKey", Alias="a", Description=long_description).code
        == "InvalidParameterValue"
    )
    assert api_error(kms_client, "CreateKey", Alias="a", KeyUsage="NOPE").code == (
        "InvalidParameterValue.InvalidKeyUsage"
    )
    assert api_error(kms_client, "CreateKey", Alias="a", KeyUsage="ASYMMETRIC_DECRYPT_RSA_2048").code == (
        "UnsupportedOperation"
    )
    assert api_error(kms_client, "CreateKey", Alias="a", Type=3).code == "InvalidParameterValue.InvalidType"
    tags = [{"TagKey": "env", "TagValue": "a"}, {"TagKey": "env", "TagValue": "b"}]
    assert (
        api_error(kms_client, "CreateKey", Alias="a", Tags=tags).code
        == "InvalidParameterValue.TagKeysDuplicated"
    )


def test_key_id_format_and_existence(kms_client):
    assert (
        api_error(kms_client, "DescribeKey", KeyId="not-a-key-id").code
        == "InvalidParameterValue.InvalidKeyId"
    )
    missing = "00000000-1111-11e9-b129-5cb9019b4b01"
    assert api_error(kms_client, "DescribeKey", KeyId=missing).code == "ResourceUnavailable.CmkNotFound"
    assert api_error(kms_client, "DescribeKey").code == "MissingParameter"


def test_keys_are_per_region(emulator, emulator_credentials, kms_client):
    key_id = create_key(kms_client, "regional")
    shanghai = make_kms_client(emulator.endpoint, *emulator_credentials, region="ap-shanghai")
    assert api_error(shanghai, "DescribeKey", KeyId=key_id).code == "ResourceUnavailable.CmkNotFound"
    assert call(shanghai, "ListKeys").TotalCount == 0


def test_describe_keys(kms_client):
    first, second = create_key(kms_client, "one"), create_key(kms_client, "two")
    metadatas = call(kms_client, "DescribeKeys", KeyIds=[second, first]).KeyMetadatas
    assert [m.Alias for m in metadatas] == ["two", "one"]
    assert api_error(kms_client, "DescribeKeys", KeyIds=[first, first]).code == (
        "InvalidParameterValue.DuplicatedKeyId"
    )
    missing = "00000000-1111-11e9-b129-5cb9019b4b01"
    assert (
        api_error(kms_client, "DescribeKeys", KeyIds=[first, missing]).code
        == "ResourceUnavailable.CmkNotFound"
    )


def test_update_alias_and_description(kms_client):
    key_id = create_key(kms_client, "before")
    other = create_key(kms_client, "taken")
    call(kms_client, "UpdateAlias", KeyId=key_id, Alias="after")
    call(kms_client, "UpdateKeyDescription", KeyId=key_id, Description="new words")
    metadata = call(kms_client, "DescribeKey", KeyId=key_id).KeyMetadata
    assert (metadata.Alias, metadata.Description) == ("after", "new words")
    assert api_error(kms_client, "UpdateAlias", KeyId=key_id, Alias="taken").code == (
        "InvalidParameterValue.AliasAlreadyExists"
    )
    assert api_error(kms_client, "UpdateAlias", KeyId=other, Alias="kms-x").code == (
        "InvalidParameterValue.InvalidAlias"
    )
    # The old alias is free again.
    assert call(kms_client, "CreateKey", Alias="before").Alias == "before"
    assert api_error(kms_client, "UpdateKeyDescription", KeyId=key_id).code == "MissingParameter"


def test_enable_disable_and_deletion_state_machine(kms_client):
    key_id = create_key(kms_client, "lifecycle")

    def state() -> str:
        return call(kms_client, "DescribeKey", KeyId=key_id).KeyMetadata.KeyState

    assert api_error(kms_client, "ScheduleKeyDeletion", KeyId=key_id, PendingWindowInDays=7).code == (
        "ResourceUnavailable.CmkShouldBeDisabled"
    )
    assert (
        api_error(kms_client, "CancelKeyDeletion", KeyId=key_id).code
        == "ResourceUnavailable.CmkNotPendingDelete"
    )
    call(kms_client, "DisableKey", KeyId=key_id)
    assert state() == "Disabled"
    call(kms_client, "DisableKey", KeyId=key_id)  # idempotent
    for days in (6, 31):
        assert api_error(kms_client, "ScheduleKeyDeletion", KeyId=key_id, PendingWindowInDays=days).code == (
            "InvalidParameter.InvalidPendingWindowInDays"
        )
    scheduled = call(kms_client, "ScheduleKeyDeletion", KeyId=key_id, PendingWindowInDays=7)
    assert scheduled.KeyId == key_id
    metadata = call(kms_client, "DescribeKey", KeyId=key_id).KeyMetadata
    assert metadata.KeyState == "PendingDelete"
    assert metadata.DeletionDate == scheduled.DeletionDate
    assert 7 * DAY - 60 <= scheduled.DeletionDate - metadata.CreateTime <= 7 * DAY + 60
    for action in ("EnableKey", "DisableKey", "EnableKeyRotation"):
        assert api_error(kms_client, action, KeyId=key_id).code == "ResourceUnavailable.CmkStateNotSupport"
    assert api_error(kms_client, "UpdateAlias", KeyId=key_id, Alias="x").code == (
        "ResourceUnavailable.CmkStateNotSupport"
    )
    assert call(kms_client, "CancelKeyDeletion", KeyId=key_id).KeyId == key_id
    assert state() == "Disabled"
    assert call(kms_client, "DescribeKey", KeyId=key_id).KeyMetadata.DeletionDate == 0
    call(kms_client, "EnableKey", KeyId=key_id)
    assert state() == "Enabled"


def test_scheduled_key_is_deleted_after_its_window(emulator: Emulator, kms_client):
    key_id = create_key(kms_client, "doomed")
    call(kms_client, "DisableKey", KeyId=key_id)
    call(kms_client, "ScheduleKeyDeletion", KeyId=key_id, PendingWindowInDays=7)
    emulator.advance_time(7 * DAY - 3600)
    assert call(kms_client, "DescribeKey", KeyId=key_id).KeyMetadata.KeyState == "PendingDelete"
    emulator.advance_time(3601)
    assert api_error(kms_client, "DescribeKey", KeyId=key_id).code == "ResourceUnavailable.CmkNotFound"
    assert call(kms_client, "CreateKey", Alias="doomed").Alias == "doomed"  # alias freed


def test_rotation_settings(emulator: Emulator, kms_client):
    key_id = create_key(kms_client, "rotating")
    assert call(kms_client, "GetKeyRotationStatus", KeyId=key_id).KeyRotationEnabled is False
    for days in (6, 366):
        assert api_error(kms_client, "EnableKeyRotation", KeyId=key_id, RotateDays=days).code == (
            "InvalidParameterValue"
        )
    call(kms_client, "EnableKeyRotation", KeyId=key_id, RotateDays=30)
    assert call(kms_client, "GetKeyRotationStatus", KeyId=key_id).KeyRotationEnabled is True
    metadata = call(kms_client, "DescribeKey", KeyId=key_id).KeyMetadata
    assert metadata.KeyRotationEnabled is True
    assert metadata.RotateDays == 30
    assert 30 * DAY - 60 <= metadata.NextRotateTime - metadata.CreateTime <= 30 * DAY + 60

    emulator.advance_time(30 * DAY + 1)  # automatic rotation is due
    rotated = call(kms_client, "DescribeKey", KeyId=key_id).KeyMetadata
    assert rotated.LastRotateTime >= metadata.NextRotateTime
    assert rotated.NextRotateTime >= rotated.LastRotateTime + 30 * DAY

    call(kms_client, "DisableKeyRotation", KeyId=key_id)
    assert call(kms_client, "GetKeyRotationStatus", KeyId=key_id).KeyRotationEnabled is False
    assert call(kms_client, "DescribeKey", KeyId=key_id).KeyMetadata.NextRotateTime == 0


def test_default_rotation_period_is_365_days(kms_client):
    key_id = create_key(kms_client, "yearly")
    call(kms_client, "EnableKeyRotation", KeyId=key_id)
    assert call(kms_client, "DescribeKey", KeyId=key_id).KeyMetadata.RotateDays == 365


def test_list_keys_paging_and_states(kms_client):
    key_ids = [create_key(kms_client, f"list-{i}") for i in range(5)]
    call(kms_client, "DisableKey", KeyId=key_ids[0])
    call(kms_client, "ScheduleKeyDeletion", KeyId=key_ids[0], PendingWindowInDays=7)
    listed = call(kms_client, "ListKeys", Limit=200)
    assert listed.TotalCount == 4  # PendingDelete keys are not listed
    assert {k.KeyId for k in listed.Keys} == set(key_ids[1:])
    first_page = call(kms_client, "ListKeys", Offset=0, Limit=3)
    second_page = call(kms_client, "ListKeys", Offset=3, Limit=3)
    assert (len(first_page.Keys), len(second_page.Keys), first_page.TotalCount) == (3, 1, 4)
    assert {k.KeyId for k in first_page.Keys + second_page.Keys} == set(key_ids[1:])
    assert call(kms_client, "ListKeys", Role=1).TotalCount == 0
    assert api_error(kms_client, "ListKeys", Limit=201).code == "InvalidParameterValue"
    assert api_error(kms_client, "ListKeys", Offset=-1).code == "InvalidParameterValue"


def test_list_key_detail_filters(kms_client):
    web = create_key(kms_client, "web-frontend", Tags=[{"TagKey": "team", "TagValue": "web"}])
    api = create_key(kms_client, "api-backend", Tags=[{"TagKey": "team", "TagValue": "api"}])
    old = create_key(kms_client, "web-legacy")
    call(kms_client, "DisableKey", KeyId=old)

    def aliases(**filters) -> list[str]:
        return [m.Alias for m in call(kms_client, "ListKeyDetail", **filters).KeyMetadatas]

    assert aliases() == ["web-legacy", "api-backend", "web-frontend"]  # newest first by default
    assert aliases(OrderType=1) == ["web-frontend", "api-backend", "web-legacy"]
    assert aliases(SearchKeyAlias="WEB") == ["web-legacy", "web-frontend"]  # fuzzy, case-insensitive
    assert aliases(SearchKeyAlias=api[:8]) == ["api-backend"]  # also matches KeyId
    assert aliases(KeyState=1) == ["api-backend", "web-frontend"]
    assert aliases(KeyState=2) == ["web-legacy"]
    assert aliases(KeyState=3) == []
    assert aliases(KeyUsage="ALL") == aliases(KeyUsage="ENCRYPT_DECRYPT") == aliases()
    assert aliases(KeyUsage="ASYMMETRIC_DECRYPT_SM2") == []
    assert aliases(Origin="EXTERNAL") == []
    assert aliases(TagFilters=[{"TagKey": "team", "TagValue": ["web"]}]) == ["web-frontend"]
    assert aliases(TagFilters=[{"TagKey": "team"}]) == ["api-backend", "web-frontend"]
    paged = call(kms_client, "ListKeyDetail", Offset=1, Limit=1)
    assert paged.TotalCount == 3
    assert [m.Alias for m in paged.KeyMetadatas] == ["api-backend"]
    assert web != api
    assert api_error(kms_client, "ListKeyDetail", KeyState=9).code == "InvalidParameterValue"
    assert (
        api_error(kms_client, "ListKeyDetail", KeyUsage="NOPE").code
        == "InvalidParameterValue.InvalidKeyUsage"
    )
