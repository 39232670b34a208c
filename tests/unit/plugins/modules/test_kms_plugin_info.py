"""tke.kms.kms_plugin_info: which plugin is deployed and with which key, read without changing anything."""

from __future__ import annotations

import shutil
import tempfile
from collections.abc import Callable, Iterator
from pathlib import Path
from typing import Any

import pytest
from ansible_collections.tke.kms.plugins.modules import kms_plugin, kms_plugin_info

DEPLOYED = dict(image="registry.example.com/tke-kms-plugin:0.1.0", region="ap-guangzhou", key_id="key-1")


@pytest.fixture
def files() -> Iterator[Path]:
    directory = Path(tempfile.mkdtemp(prefix="kmsi-", dir="/tmp"))
    yield directory
    shutil.rmtree(directory)


def static_pod_args(files: Path) -> dict[str, Any]:
    return dict(
        deploy_as="static_pod",
        static_pod_path=str(files / "manifests" / "tke-kms-plugin.yaml"),
        unix_socket=str(files / "run" / "server.sock"),
    )


def test_the_static_pod_kms_plugin_wrote(run_module: Callable[..., dict], files: Path) -> None:
    where = static_pod_args(files)
    run_module(
        kms_plugin.main,
        dict(DEPLOYED, **where, credentials_source="env", env_secret_id="AKID", env_secret_key="s3cr3t-key"),
    )
    before = Path(where["static_pod_path"]).read_bytes()
    info = dict(deploy_as="static_pod", static_pod_path=where["static_pod_path"])
    result = run_module(kms_plugin_info.main, info, check=True)
    assert result["changed"] is False and result["exists"] is True
    assert result["key_id"] == "key-1" and result["unix_socket"] == where["unix_socket"]
    assert "--region=ap-guangzhou" in result["args"] and result["path"] == where["static_pod_path"]
    assert result["resource"]["kind"] == "Pod" and "s3cr3t-key" not in str(result)
    assert Path(where["static_pod_path"]).read_bytes() == before


def test_no_plugin_is_no_key(run_module: Callable[..., dict], files: Path) -> None:
    for args in (
        dict(deploy_as="static_pod", static_pod_path=str(files / "none.yaml")),
        dict(deploy_as="systemd", unit_path=str(files / "none.service")),
    ):
        result = run_module(kms_plugin_info.main, args)
        assert not result.get("failed"), result
        assert (result["exists"], result["key_id"], result["args"], result["resource"]) == (False, "", [], {})


def test_the_key_of_a_systemd_unit(run_module: Callable[..., dict], files: Path) -> None:
    unit = files / "tke-kms-plugin.service"
    unit.write_text(
        "[Service]\nExecStart=\nExecStart=/usr/local/lib/tke-kms-plugin/venv/bin/tke-kms-plugin "
        "--region=ap-guangzhou --key-id=key-7 --unix-socket=/run/p/server.sock '--metrics-address='\n"
    )
    result = run_module(kms_plugin_info.main, dict(deploy_as="systemd", unit_path=str(unit)))
    assert result["exists"] is True and result["key_id"] == "key-7"
    assert result["unix_socket"] == "/run/p/server.sock" and result["args"][-1] == "--metrics-address="


def test_the_key_of_a_go_plugin_pod_given_as_two_words(run_module: Callable[..., dict], files: Path) -> None:
    manifest = files / "kms.yaml"
    manifest.write_text(
        "apiVersion: v1\nkind: Pod\nspec:\n  containers:\n  - name: kms\n"
        "    command: [/tke-kms-plugin, --key-id, key-9]\n"
    )
    result = run_module(kms_plugin_info.main, dict(deploy_as="static_pod", static_pod_path=str(manifest)))
    assert result["key_id"] == "key-9"


def test_a_manifest_not_a_mapping_fails_and_stays(run_module: Callable[..., dict], files: Path) -> None:
    manifest = files / "broken.yaml"
    manifest.write_text("- just\n- a list\n")
    result = run_module(kms_plugin_info.main, dict(deploy_as="static_pod", static_pod_path=str(manifest)))
    assert result["failed"] is True and "not a YAML or JSON mapping" in result["msg"]
    assert result["error"]["kind"] == "UnreadableDeployment"
    assert manifest.read_text() == "- just\n- a list\n"


def test_an_unreachable_apiserver_fails_with_the_reason(run_module: Callable[..., dict]) -> None:
    result = run_module(kms_plugin_info.main, dict(host="https://127.0.0.1:9", api_timeout=3))
    assert result["failed"] is True and "127.0.0.1" in result["msg"]
    assert result["error"]["kind"] == "KubeError"
