"""Calling the emulator the way production code does: through the SDK's request models."""

from __future__ import annotations

import base64
import json
from typing import Any

import pytest
from tencentcloud.common.exception.tencent_cloud_sdk_exception import TencentCloudSDKException
from tencentcloud.kms.v20190118 import models
from tencentcloud.kms.v20190118.kms_client import KmsClient


def call(client: KmsClient, action: str, **fields: Any) -> Any:
    """`client.<action>(<action>Request(**fields))`; returns the SDK's response model."""
    request = getattr(models, f"{action}Request")()
    for name, value in fields.items():
        setattr(request, name, value)  # the SDK serialises attributes as they are, like a careless caller
    return getattr(client, action)(request)


def api_error(client: KmsClient, action: str, **fields: Any) -> TencentCloudSDKException:
    with pytest.raises(TencentCloudSDKException) as raised:
        call(client, action, **fields)
    assert raised.value.get_request_id(), "every Tencent error carries a RequestId"
    return raised.value


def raw_call(client: KmsClient, action: str, params: dict[str, Any]) -> dict[str, Any]:
    """`client.call` with any params (unknown fields, wrong types); returns the parsed Response."""
    return json.loads(client.call(action, params))["Response"]


def b64(data: bytes) -> str:
    return base64.b64encode(data).decode()


def create_key(client: KmsClient, alias: str, **fields: Any) -> str:
    return call(client, "CreateKey", Alias=alias, **fields).KeyId


def encrypt(client: KmsClient, key_id: str, plaintext: bytes, context: str | None = None) -> str:
    return call(
        client, "Encrypt", KeyId=key_id, Plaintext=b64(plaintext), EncryptionContext=context
    ).CiphertextBlob


def decrypt(client: KmsClient, blob: str, context: str | None = None) -> bytes:
    return base64.b64decode(call(client, "Decrypt", CiphertextBlob=blob, EncryptionContext=context).Plaintext)
