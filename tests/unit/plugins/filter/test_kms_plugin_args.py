"""Filter tke.kms.kms_plugin_args: the systemd unit's command line is the one the pod modes run."""

from __future__ import annotations

import pytest
from ansible_collections.tke.kms.plugins.filter.kms_plugin_args import FilterModule
from ansible_collections.tke.kms.plugins.module_utils._plugin_pod import static_pod

kms_plugin_args = FilterModule().filters()["kms_plugin_args"]

ROLE_OPTIONS = dict(
    region="ap-guangzhou",
    key_id="key-1",
    unix_socket="/var/run/tke-kms-plugin/server.sock",
    credentials_source="file",
    credentials_file="/etc/tke-kms-plugin/credentials",
    cvm_role="",
    endpoint="http://10.0.0.5:8080",
    metrics_address="127.0.0.1:9876",
    extra_args=["--v=2"],
)


def test_the_role_options_give_the_pod_command_line() -> None:
    pod = static_pod(
        dict(
            ROLE_OPTIONS,
            name="tke-kms-plugin",
            namespace="kube-system",
            image="i",
            image_pull_policy="IfNotPresent",
            plugin_binary="/tke-kms-plugin",
        )
    )
    assert kms_plugin_args(ROLE_OPTIONS) == pod["spec"]["containers"][0]["args"]
    assert kms_plugin_args(ROLE_OPTIONS) == [
        "--region=ap-guangzhou",
        "--key-id=key-1",
        "--unix-socket=/var/run/tke-kms-plugin/server.sock",
        "--credentials-file=/etc/tke-kms-plugin/credentials",
        "--kms-endpoint=http://10.0.0.5:8080",
        "--metrics-address=127.0.0.1:9876",
        "--v=2",
    ]


def test_cvm_role_without_endpoint_and_metrics() -> None:
    options = dict(ROLE_OPTIONS, credentials_source="cvm_role", cvm_role="r", endpoint="", metrics_address="")
    args = kms_plugin_args(options)
    assert "--cvm-role=r" in args and "--metrics-address=" in args
    assert not [arg for arg in args if arg.startswith(("--kms-endpoint", "--credentials-file"))]


@pytest.mark.parametrize(
    ("options", "missing"),
    [
        ({k: v for k, v in ROLE_OPTIONS.items() if k != "key_id"}, "key_id"),
        ({k: v for k, v in ROLE_OPTIONS.items() if k != "credentials_file"}, "credentials_file"),
    ],
)
def test_a_missing_option_is_named(options: dict, missing: str) -> None:
    with pytest.raises(ValueError, match=f"missing option\\(s\\) {missing}"):
        kms_plugin_args(options)
