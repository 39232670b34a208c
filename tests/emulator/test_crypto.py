"""Encrypt, Decrypt and GenerateDataKey through the real SDK: blobs, limits, contexts, states, rotation."""

from __future__ import annotations

import base64
import binascii
import json

import pytest
from tke_kms_plugin.emulator import Emulator
from tke_kms_plugin.emulator.testing import make_kms_client

from tests.emulator.helpers import api_error, b64, call, create_key, decrypt, encrypt

CONTEXT = json.dumps({"cluster": "lab", "resource": "secrets"})


@pytest.fixture
def key_id(kms_client) -> str:
    return create_key(kms_client, "crypto")


def test_round_trip_without_key_id_on_decrypt(kms_client, key_id):
    blob = encrypt(kms_client, key_id, b"a data encryption key")
    decrypted = call(kms_client, "Decrypt", CiphertextBlob=blob)
    assert decrypted.KeyId == key_id
    assert base64.b64decode(decrypted.Plaintext) == b"a data encryption key"


def test_blob_is_shaped_like_tencents_and_opaque(kms_client, key_id):
    blob = encrypt(kms_client, key_id, b"x" * 32)
    segments = blob.split("-k-")
    assert len(segments) == 3
    assert len(base64.b64decode(segments[1], validate=True)) == 16
    for segment in segments:
        base64.b64decode(segment, validate=True)
    with pytest.raises(binascii.Error):
        base64.b64decode(blob, validate=True)  # a client must not decode the whole blob
    assert key_id not in blob
    assert key_id.encode() not in b"".join(base64.b64decode(s) for s in segments)
    assert encrypt(kms_client, key_id, b"x" * 32) != blob  # fresh nonce each time


def test_plaintext_limits(kms_client, key_id):
    assert decrypt(kms_client, encrypt(kms_client, key_id, b"\xff" * 4096)) == b"\xff" * 4096
    too_big = api_error(kms_client, "Encrypt", KeyId=key_id, Plaintext=b64(b"\0" * 4097))
    assert too_big.code == "InvalidParameterValue.InvalidPlaintext"
    assert "4096" in too_big.message
    for bad in ("not base64!", "YWJj=", ""):
        assert api_error(kms_client, "Encrypt", KeyId=key_id, Plaintext=bad).code == (
            "InvalidParameterValue.InvalidPlaintext"
        )
    assert api_error(kms_client, "Encrypt", KeyId=key_id).code == "MissingParameter"


def test_encryption_context_is_bound(kms_client, key_id):
    blob = encrypt(kms_client, key_id, b"secret", CONTEXT)
    assert decrypt(kms_client, blob, CONTEXT) == b"secret"
    for wrong in (None, json.dumps({"cluster": "other", "resource": "secrets"})):
        assert api_error(kms_client, "Decrypt", CiphertextBlob=blob, EncryptionContext=wrong).code == (
            "InvalidParameterValue.InvalidCiphertext"
        )
    plain_blob = encrypt(kms_client, key_id, b"secret")
    assert api_error(kms_client, "Decrypt", CiphertextBlob=plain_blob, EncryptionContext=CONTEXT).code == (
        "InvalidParameterValue.InvalidCiphertext"
    )


def test_encryption_context_limits(kms_client, key_id):
    largest = json.dumps({"k": "v" * 1015})
    assert len(largest) == 1024
    assert decrypt(kms_client, encrypt(kms_client, key_id, b"s", largest), largest) == b"s"
    too_long = json.dumps({"k": "v" * 1016})
    for bad in (too_long, "not json", '["a list"]'):
        assert api_error(
            kms_client, "Encrypt", KeyId=key_id, Plaintext=b64(b"s"), EncryptionContext=bad
        ).code == ("InvalidParameterValue")


@pytest.mark.parametrize("segment", [0, 1, 2])
def test_tampered_blob_is_invalid_ciphertext(kms_client, key_id, segment):
    segments = encrypt(kms_client, key_id, b"integrity").split("-k-")
    raw = bytearray(base64.b64decode(segments[segment]))
    raw[len(raw) // 2] ^= 0x01
    segments[segment] = b64(bytes(raw))
    assert api_error(kms_client, "Decrypt", CiphertextBlob="-k-".join(segments)).code == (
        "InvalidParameterValue.InvalidCiphertext"
    )


@pytest.mark.parametrize(
    "blob",
    ["", "plainbase64==", "a-k-b", "YQ==-k-YQ==-k-YQ==", "%%%-k-%%%-k-%%%", "YQ==-k-YQ==-k-YQ==-k-YQ=="],
)
def test_malformed_blob_is_invalid_ciphertext(kms_client, blob):
    error = api_error(kms_client, "Decrypt", CiphertextBlob=blob)
    assert error.code in {"InvalidParameterValue.InvalidCiphertext", "MissingParameter"}
    if blob:
        assert error.code == "InvalidParameterValue.InvalidCiphertext"


def test_disabled_and_pending_delete_keys_refuse_crypto(kms_client, key_id):
    blob = encrypt(kms_client, key_id, b"before")
    call(kms_client, "DisableKey", KeyId=key_id)
    assert api_error(kms_client, "Encrypt", KeyId=key_id, Plaintext=b64(b"x")).code == (
        "ResourceUnavailable.CmkDisabled"
    )
    assert api_error(kms_client, "Decrypt", CiphertextBlob=blob).code == "ResourceUnavailable.CmkDisabled"
    assert api_error(kms_client, "GenerateDataKey", KeyId=key_id, KeySpec="AES_256").code == (
        "ResourceUnavailable.CmkDisabled"
    )
    call(kms_client, "ScheduleKeyDeletion", KeyId=key_id, PendingWindowInDays=7)
    assert api_error(kms_client, "Decrypt", CiphertextBlob=blob).code == "ResourceUnavailable.CmkDisabled"
    call(kms_client, "CancelKeyDeletion", KeyId=key_id)
    call(kms_client, "EnableKey", KeyId=key_id)
    assert decrypt(kms_client, blob) == b"before"


def test_unknown_and_malformed_key_ids(kms_client):
    missing = "00000000-1111-11e9-b129-5cb9019b4b01"
    assert api_error(kms_client, "Encrypt", KeyId=missing, Plaintext=b64(b"x")).code == (
        "ResourceUnavailable.CmkNotFound"
    )
    assert api_error(kms_client, "Encrypt", KeyId="alias/mine", Plaintext=b64(b"x")).code == (
        "InvalidParameterValue.InvalidKeyId"
    )


def test_blob_from_another_region_is_not_found(emulator, emulator_credentials, kms_client, key_id):
    blob = encrypt(kms_client, key_id, b"guangzhou only")
    shanghai = make_kms_client(emulator.endpoint, *emulator_credentials, region="ap-shanghai")
    assert api_error(shanghai, "Decrypt", CiphertextBlob=blob).code == "ResourceUnavailable.CmkNotFound"
    assert api_error(shanghai, "Encrypt", KeyId=key_id, Plaintext=b64(b"x")).code == (
        "ResourceUnavailable.CmkNotFound"
    )


def test_rotation_keeps_old_blobs_and_encrypts_with_newest_material(emulator: Emulator, kms_client, key_id):
    old_blob = encrypt(kms_client, key_id, b"old", CONTEXT)
    assert emulator.inspect_ciphertext(old_blob) == {"key_id": key_id, "material_version": 1}
    assert emulator.rotate_key_now(key_id, "ap-guangzhou") == 2
    new_blob = encrypt(kms_client, key_id, b"new", CONTEXT)
    assert emulator.inspect_ciphertext(new_blob)["material_version"] == 2
    assert decrypt(kms_client, old_blob, CONTEXT) == b"old"
    assert decrypt(kms_client, new_blob, CONTEXT) == b"new"
    assert call(kms_client, "DescribeKey", KeyId=key_id).KeyMetadata.LastRotateTime > 0


def test_automatic_rotation_when_due(emulator: Emulator, kms_client, key_id):
    old_blob = encrypt(kms_client, key_id, b"old")
    call(kms_client, "EnableKeyRotation", KeyId=key_id, RotateDays=7)
    emulator.advance_time(7 * 86400 + 1)
    new_blob = encrypt(kms_client, key_id, b"new")
    assert emulator.inspect_ciphertext(new_blob)["material_version"] == 2
    assert decrypt(kms_client, old_blob) == b"old"


def test_generate_data_key(kms_client, key_id):
    for fields, size in (
        ({"KeySpec": "AES_256"}, 32),
        ({"KeySpec": "AES_128"}, 16),
        ({"NumberOfBytes": 1024}, 1024),
    ):
        generated = call(kms_client, "GenerateDataKey", KeyId=key_id, **fields)
        plaintext = base64.b64decode(generated.Plaintext)
        assert len(plaintext) == size
        assert generated.KeyId == key_id
        assert decrypt(kms_client, generated.CiphertextBlob) == plaintext
    both = call(kms_client, "GenerateDataKey", KeyId=key_id, KeySpec="AES_256", NumberOfBytes=7)
    assert len(base64.b64decode(both.Plaintext)) == 7  # NumberOfBytes wins
    with_context = call(
        kms_client, "GenerateDataKey", KeyId=key_id, KeySpec="AES_256", EncryptionContext=CONTEXT
    )
    assert decrypt(kms_client, with_context.CiphertextBlob, CONTEXT) == base64.b64decode(
        with_context.Plaintext
    )
    assert api_error(kms_client, "GenerateDataKey", KeyId=key_id).code == "MissingParameter"
    assert (
        api_error(kms_client, "GenerateDataKey", KeyId=key_id, KeySpec="AES_512").code
        == "InvalidParameterValue"
    )
    for size in (0, 1025):
        assert api_error(kms_client, "GenerateDataKey", KeyId=key_id, NumberOfBytes=size).code == (
            "InvalidParameterValue"
        )
    assert api_error(
        kms_client, "GenerateDataKey", KeyId=key_id, KeySpec="AES_256", IsHostedByKms=1
    ).code == ("UnsupportedOperation")
