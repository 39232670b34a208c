"""kms_plugin: argument handling, and the static pod mode end to end on the local file system."""

from __future__ import annotations

import os
import shutil
import socket
import stat
import tempfile
from collections.abc import Callable, Iterator
from pathlib import Path
from typing import Any

import pytest
import yaml
from ansible_collections.tke.kms.plugins.modules import kms_plugin

BASE = dict(image="registry.example.com/tke-kms-plugin:0.1.0", region="ap-guangzhou", key_id="key-1")


@pytest.fixture
def short_dir() -> Iterator[Path]:
    """A directory with a short path: unix socket paths are limited to 107 bytes."""
    directory = Path(tempfile.mkdtemp(prefix="kmsp-", dir="/tmp"))
    yield directory
    shutil.rmtree(directory)


@pytest.fixture
def static(short_dir: Path) -> dict[str, Any]:
    return dict(
        BASE,
        deploy_as="static_pod",
        static_pod_path=str(short_dir / "manifests" / "tke-kms-plugin.yaml"),
        unix_socket=str(short_dir / "run" / "server.sock"),
    )


@pytest.mark.parametrize(
    ("args", "message"),
    [
        (dict(region="r", key_id="k"), "state is present but all of the following are missing: image"),
        (dict(BASE, credentials_source="cvm_role"), "missing: cvm_role"),
        (dict(BASE, credentials_source="env", env_secret_id="AKID"), "missing: env_secret_key"),
        (
            dict(BASE, credentials_source="secret"),
            "value of credentials_source must be one of: file, cvm_role, env",
        ),
        (dict(BASE, metrics_address="9876"), "metrics_address"),
        (dict(BASE, unix_socket="relative.sock"), "unix_socket must be an absolute path"),
        (dict(BASE, wait_timeout=0), "wait_timeout must be positive"),
    ],
)
def test_bad_arguments(run_module: Callable[..., dict], args: dict, message: str) -> None:
    result = run_module(kms_plugin.main, args)
    assert result["failed"] is True
    assert message in result["msg"]


def test_static_pod_is_written_root_only_and_parses_to_the_shared_pod(
    run_module: Callable[..., dict], static: dict
) -> None:
    result = run_module(kms_plugin.main, static)
    assert result["changed"] is True
    path = Path(static["static_pod_path"])
    assert stat.S_IMODE(path.stat().st_mode) == 0o600
    written = yaml.safe_load(path.read_text())
    assert written["kind"] == "Pod"
    assert written["spec"]["containers"][0]["args"][:3] == [
        "--region=ap-guangzhou",
        "--key-id=key-1",
        f"--unix-socket={static['unix_socket']}",
    ]
    assert result["resource"] == written
    assert [p.name for p in path.parent.iterdir()] == [path.name]  # no temporary file left for the kubelet


def test_static_pod_second_run_is_unchanged_even_if_reformatted(
    run_module: Callable[..., dict], static: dict
) -> None:
    run_module(kms_plugin.main, static)
    path = Path(static["static_pod_path"])
    path.write_text(
        yaml.safe_dump(yaml.safe_load(path.read_text()), sort_keys=True)
    )  # same content, new layout
    before = path.read_text()
    result = run_module(kms_plugin.main, static)
    assert result["changed"] is False
    assert path.read_text() == before


def test_static_pod_check_mode_writes_nothing_and_diffs(
    run_module: Callable[..., dict], static: dict
) -> None:
    result = run_module(kms_plugin.main, static, check=True, diff=True)
    assert result["changed"] is True
    assert not Path(static["static_pod_path"]).exists()
    assert result["diff"]["before"] == ""
    assert "--key-id=key-1" in result["diff"]["after"]


def test_static_pod_update_shows_the_change(run_module: Callable[..., dict], static: dict) -> None:
    run_module(kms_plugin.main, static)
    result = run_module(kms_plugin.main, dict(static, key_id="key-2"), diff=True)
    assert result["changed"] is True
    assert "--key-id=key-1" in result["diff"]["before"] and "--key-id=key-2" in result["diff"]["after"]


def test_static_pod_absent_removes_the_manifest(run_module: Callable[..., dict], static: dict) -> None:
    run_module(kms_plugin.main, static)
    absent = dict(deploy_as="static_pod", state="absent", static_pod_path=static["static_pod_path"])
    assert run_module(kms_plugin.main, absent, check=True)["changed"] is True
    assert Path(static["static_pod_path"]).exists()
    assert run_module(kms_plugin.main, absent)["changed"] is True
    assert not Path(static["static_pod_path"]).exists()
    assert run_module(kms_plugin.main, absent)["changed"] is False


def test_env_credentials_warn_and_never_show(run_module: Callable[..., dict], static: dict) -> None:
    args = dict(
        static, credentials_source="env", env_secret_id="AKIDplain", env_secret_key="very-secret-value"
    )
    result = run_module(kms_plugin.main, args, diff=True)
    assert "credentials_source=env puts the SecretKey into the pod spec" in str(result["warnings"])
    assert "very-secret-value" not in str(result)
    # An old value read back from the manifest is not among this run's no_log values: redacted explicitly.
    result = run_module(kms_plugin.main, dict(args, env_secret_key="rotated-secret-value"), diff=True)
    assert result["changed"] is True
    assert "very-secret-value" not in str(result) and "rotated-secret-value" not in str(result)
    assert yaml.safe_load(Path(static["static_pod_path"]).read_text())["spec"]["containers"][0]["env"][1] == {
        "name": "SECRET_KEY",
        "value": "rotated-secret-value",
    }


def test_static_pod_wait_times_out_with_what_is_missing(
    run_module: Callable[..., dict], static: dict
) -> None:
    result = run_module(kms_plugin.main, dict(static, wait=True, wait_timeout=1))
    assert result["failed"] is True
    assert f"no plugin socket at {static['unix_socket']} yet" in result["msg"]
    assert result["rollout"]["done"] is False


def test_static_pod_wait_sees_a_new_plugin_serving(run_module: Callable[..., dict], static: dict) -> None:
    """A real listening unix socket stands in for the plugin the kubelet would start (no kubelet here)."""
    Path(static["unix_socket"]).parent.mkdir()
    server = socket.socket(socket.AF_UNIX, socket.SOCK_STREAM)
    try:
        server.bind(static["unix_socket"])
        server.listen(4)
        result = run_module(kms_plugin.main, dict(static, wait=True, wait_timeout=2))
    finally:
        server.close()
    # The socket predates the new manifest: it is the plugin being replaced, so the wait must not succeed.
    assert result["failed"] is True
    assert "previous plugin still owns" in result["msg"]
    os.unlink(static["unix_socket"])
    server = socket.socket(socket.AF_UNIX, socket.SOCK_STREAM)
    try:
        server.bind(static["unix_socket"])
        server.listen(4)
        result = run_module(kms_plugin.main, dict(static, wait=True, wait_timeout=5))
    finally:
        server.close()
    assert result["changed"] is False
    assert result["rollout"]["done"] is True


# ---- an inline kubeconfig is a secret ----------------------------------------------------------------------

TOKEN = "tok-0123456789abcdef"
INLINE_KUBECONFIG = {
    "apiVersion": "v1",
    "kind": "Config",
    "clusters": [
        {"name": "lab", "cluster": {"server": "https://127.0.0.1:9", "insecure-skip-tls-verify": True}}
    ],
    "users": [{"name": "admin", "user": {"token": TOKEN}}],
    "contexts": [{"name": "lab", "context": {"cluster": "lab", "user": "admin"}}],
    "current-context": "lab",
}


def test_kubeconfig_is_no_log() -> None:
    assert kms_plugin.argument_spec()["kubeconfig"]["no_log"] is True


def test_a_failure_with_an_inline_kubeconfig_shows_no_token(run_module: Callable[..., dict]) -> None:
    result = run_module(kms_plugin.main, dict(BASE, kubeconfig=INLINE_KUBECONFIG, api_timeout=5))
    assert result["failed"] is True and "127.0.0.1" in result["msg"]  # nothing listens on port 9
    assert TOKEN not in str(result)


def test_only_the_credentials_of_an_inline_kubeconfig_are_masked(
    run_module: Callable[..., dict], static: dict, short_dir: Path
) -> None:
    manifest = short_dir / TOKEN / "tke-kms-plugin.yaml"
    result = run_module(
        kms_plugin.main, dict(static, kubeconfig=INLINE_KUBECONFIG, static_pod_path=str(manifest))
    )
    assert result["changed"] is True and manifest.exists()
    assert result["resource"]["apiVersion"] == "v1"  # 'v1' of the kubeconfig is not masked
    assert result["manifest_path"] == str(short_dir / "********" / "tke-kms-plugin.yaml")


def test_a_kubeconfig_path_is_not_masked(
    run_module: Callable[..., dict], static: dict, short_dir: Path
) -> None:
    result = run_module(kms_plugin.main, dict(static, kubeconfig=static["static_pod_path"]))
    assert result["manifest_path"] == static["static_pod_path"]


def test_endpoint_and_its_deprecated_alias(
    run_module: Callable[..., dict], static: dict, monkeypatch: pytest.MonkeyPatch
) -> None:
    result = run_module(kms_plugin.main, dict(static, kms_endpoint="kms.internal.tencentcloudapi.com"))
    assert "--kms-endpoint=kms.internal.tencentcloudapi.com" in container_args(result)
    assert kms_plugin.argument_spec()["endpoint"]["deprecated_aliases"] == [
        dict(name="kms_endpoint", version="1.0.0", collection_name="tke.kms")
    ]
    monkeypatch.setenv("TENCENTCLOUD_KMS_ENDPOINT", "http://127.0.0.1:8080")
    from_env = run_module(kms_plugin.main, static)
    assert "--kms-endpoint=http://127.0.0.1:8080" in container_args(from_env)
    # an empty endpoint is the public one, whatever the environment says
    public = run_module(kms_plugin.main, dict(static, endpoint=""))
    assert not [arg for arg in container_args(public) if arg.startswith("--kms-endpoint")]


def container_args(result: dict) -> list[str]:
    return result["resource"]["spec"]["containers"][0]["args"]
