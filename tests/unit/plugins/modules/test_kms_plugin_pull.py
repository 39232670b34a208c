"""kms_plugin: the image pull policy and pull Secrets of the plugin pod, and the KMS endpoint it calls (static
pod mode on the local file system; the DaemonSet mode is in tests/integration/test_kms_plugin_pull.py)."""

from __future__ import annotations

import shutil
import tempfile
from collections.abc import Callable, Iterator
from pathlib import Path
from typing import Any

import pytest
import yaml
from ansible_collections.tke.kms.plugins.modules import kms_plugin

BASE = dict(
    image="tkekms.tencentcloudcr.com/infra/tke-kms-plugin:0.1.0", region="ap-guangzhou", key_id="key-1"
)


@pytest.fixture
def static() -> Iterator[dict[str, Any]]:
    directory = Path(tempfile.mkdtemp(prefix="kmspull-", dir="/tmp"))
    yield dict(
        BASE,
        deploy_as="static_pod",
        static_pod_path=str(directory / "manifests" / "tke-kms-plugin.yaml"),
        unix_socket=str(directory / "run" / "server.sock"),
    )
    shutil.rmtree(directory)


def container(static: dict) -> dict[str, Any]:
    return yaml.safe_load(Path(static["static_pod_path"]).read_text())["spec"]["containers"][0]


def test_static_pod_pull_policy_is_rendered_idempotent_and_diffed(
    run_module: Callable[..., dict], static: dict
) -> None:
    assert run_module(kms_plugin.main, static)["changed"] is True
    assert container(static)["imagePullPolicy"] == "IfNotPresent"

    never = dict(static, image_pull_policy="Never")
    predicted = run_module(kms_plugin.main, never, check=True, diff=True)
    assert predicted["changed"] is True
    assert "imagePullPolicy: IfNotPresent" in predicted["diff"]["before"]
    assert "imagePullPolicy: Never" in predicted["diff"]["after"]
    assert container(static)["imagePullPolicy"] == "IfNotPresent"  # check mode wrote nothing

    assert run_module(kms_plugin.main, never)["changed"] is True
    assert container(static)["imagePullPolicy"] == "Never"
    assert run_module(kms_plugin.main, never)["changed"] is False
    pod = yaml.safe_load(Path(static["static_pod_path"]).read_text())
    assert "imagePullSecrets" not in pod["spec"]


def test_static_pod_refuses_pull_secrets_and_leaves_the_manifest_alone(
    run_module: Callable[..., dict], static: dict
) -> None:
    run_module(kms_plugin.main, static)
    before = Path(static["static_pod_path"]).read_bytes()
    result = run_module(kms_plugin.main, dict(static, image_pull_secrets=["tcr-pull"]))
    assert result["failed"] is True
    assert "image_pull_secrets cannot be used with deploy_as=static_pod" in result["msg"]
    assert "registry credentials" in result["msg"]
    assert Path(static["static_pod_path"]).read_bytes() == before


def test_an_unknown_pull_policy_is_refused(run_module: Callable[..., dict], static: dict) -> None:
    result = run_module(kms_plugin.main, dict(static, image_pull_policy="Sometimes"))
    assert result["failed"] is True
    assert "image_pull_policy must be one of: Always, IfNotPresent, Never" in result["msg"]
    assert not Path(static["static_pod_path"]).exists()


def test_the_masters_kms_endpoint_is_the_plugins_flag(run_module: Callable[..., dict], static: dict) -> None:
    run_module(kms_plugin.main, dict(static, kms_endpoint="kms.internal.tencentcloudapi.com"))
    assert "--kms-endpoint=kms.internal.tencentcloudapi.com" in container(static)["args"]
    run_module(kms_plugin.main, static)
    assert not any(arg.startswith("--kms-endpoint") for arg in container(static)["args"])
