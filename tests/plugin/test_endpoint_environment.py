"""The plugin's KMS endpoint from the environment: TENCENTCLOUD_KMS_ENDPOINT (the Tencent Cloud name the
collection's modules use), TKE_KMS_ENDPOINT as earlier versions read it, --kms-endpoint over both."""

from __future__ import annotations

from collections.abc import Callable

import pytest
from tke_kms_plugin.emulator import Emulator
from tke_kms_plugin.server.config import endpoint_from_environment

from tests.fixtures.emulator import TEST_REGION, TEST_SECRET_ID, TEST_SECRET_KEY
from tests.fixtures.plugin import PluginProcess

from .test_cli import encrypts


@pytest.mark.parametrize(
    ("environ", "endpoint"),
    [
        ({}, ""),
        ({"TKE_KMS_ENDPOINT": "old:1"}, "old:1"),
        ({"TENCENTCLOUD_KMS_ENDPOINT": "new:2"}, "new:2"),
        ({"TENCENTCLOUD_KMS_ENDPOINT": "new:2", "TKE_KMS_ENDPOINT": "old:1"}, "new:2"),
        ({"TENCENTCLOUD_KMS_ENDPOINT": " ", "TKE_KMS_ENDPOINT": "old:1"}, "old:1"),
    ],
)
def test_the_tencent_cloud_name_wins_over_the_older_one(environ: dict[str, str], endpoint: str) -> None:
    assert endpoint_from_environment(environ) == endpoint


def test_the_plugin_calls_the_endpoint_tencentcloud_kms_endpoint_names(
    emulator: Emulator, plugin_socket: str, start_plugin: Callable[..., PluginProcess]
) -> None:
    key_id = emulator.create_key(TEST_REGION)
    start_plugin(
        plugin_socket,
        key_id=key_id,
        endpoint=None,
        secret_id=TEST_SECRET_ID,
        secret_key=TEST_SECRET_KEY,
        # the older name points nowhere: only the Tencent Cloud name can make the call succeed
        env={"TENCENTCLOUD_KMS_ENDPOINT": emulator.url, "TKE_KMS_ENDPOINT": "http://127.0.0.1:9"},
    )
    assert encrypts(plugin_socket)
