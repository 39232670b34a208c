"""apiserver_manifest automatic_reload (the directory mount, the flag, no checksum annotation), and the checks
apiserver_reload_wait makes before it waits, on kubeadm-style manifests."""

from __future__ import annotations

from pathlib import Path

import pytest
import yaml
from ansible_collections.tke.kms.plugins.module_utils import _reload as rl
from ansible_collections.tke.kms.plugins.modules import apiserver_manifest, apiserver_reload_wait

from tests.unit.collection import run_module

from .conftest import MANIFESTS

CHECKSUM = "3f9a6c1e0b7d4a2f8e5c9b1d6a0f3e7c2b8d4a9f1e6c0b5d7a3f8e2c9b4d1a6f"
CONFIG = "/etc/kubernetes/encryption/config.yaml"
RELOAD_FLAG = "--encryption-provider-config-automatic-reload=true"


@pytest.fixture
def master(tmp_path: Path) -> dict[str, Path]:
    manifests = tmp_path / "manifests"
    manifests.mkdir()
    return {"manifest": manifests / "kube-apiserver.yaml", "backups": tmp_path / "backups"}


def edit(master: dict[str, Path], *, check: bool = False, **args: object) -> dict:
    params = {
        "path": str(master["manifest"]),
        "backup_dir": str(master["backups"]),
        "encryption_config_path": CONFIG,
        "encryption_config_checksum": CHECKSUM,
    }
    params.update(args)
    return run_module(apiserver_manifest.main, params, check=check)


def pod(master: dict[str, Path]) -> dict:
    return yaml.safe_load(master["manifest"].read_text())


def container(document: dict) -> dict:
    return document["spec"]["containers"][0]


def volumes_of(document: dict) -> dict[str, dict]:
    return {v["name"]: v for v in document["spec"].get("volumes", [])}


def mounts_of(document: dict) -> dict[str, dict]:
    return {m["name"]: m for m in container(document).get("volumeMounts", [])}


def kubeadm_130(master: dict[str, Path]) -> str:
    text = (MANIFESTS / "kube-apiserver-1.30.yaml").read_text()
    master["manifest"].write_text(text)
    return text


def test_turning_it_on_mounts_the_directory_sets_the_flag_and_drops_the_annotation(master) -> None:
    original = kubeadm_130(master)
    edit(master)  # today's rollout: a file mount and the checksum annotation
    before = pod(master)
    assert volumes_of(before)["encryption-provider-config"]["hostPath"] == {"path": CONFIG, "type": "File"}

    result = edit(master, automatic_reload=True)

    after = pod(master)
    assert result["changed"] is True and result["automatic_reload"] is True
    assert RELOAD_FLAG in container(after)["command"]
    assert volumes_of(after)["encryption-provider-config"]["hostPath"] == {
        "path": "/etc/kubernetes/encryption",
        "type": "DirectoryOrCreate",
    }
    assert mounts_of(after)["encryption-provider-config"] == {
        "mountPath": "/etc/kubernetes/encryption",
        "name": "encryption-provider-config",
        "readOnly": True,
    }
    assert not any(m["mountPath"] == CONFIG for m in container(after)["volumeMounts"])
    assert "tke.kms/encryption-config-sha256" not in after["metadata"]["annotations"]
    # nothing else moved: every line of the kubeadm original is still there, comments included
    lines = master["manifest"].read_text().splitlines()
    assert all(line in lines for line in original.splitlines())
    # the flag sits in kubeadm's sorted place
    flags = [f for f in container(after)["command"] if f.startswith("--")]
    assert (
        flags == sorted(flags[:2]) + flags[2:]
        and flags.index(RELOAD_FLAG) == flags.index(f"--encryption-provider-config={CONFIG}") + 1
    )


def test_on_a_fresh_manifest_and_again_it_is_idempotent_and_byte_stable(master) -> None:
    kubeadm_130(master)
    first = edit(master, automatic_reload=True)
    text = master["manifest"].read_text()

    second = edit(master, automatic_reload=True, encryption_config_checksum="b" * 64)

    assert first["changed"] is True and second["changed"] is False
    assert master["manifest"].read_text() == text
    assert "backup_file" not in second
    assert volumes_of(pod(master))["encryption-provider-config"]["hostPath"]["type"] == "DirectoryOrCreate"


def test_a_file_mount_under_another_name_becomes_the_directory_mount(master) -> None:
    certs = "    - mountPath: /etc/ssl/certs\n"
    text = kubeadm_130(master).replace(
        certs, f"    - mountPath: {CONFIG}\n      name: enc\n      readOnly: true\n" + certs
    )
    text = text.replace(
        "  volumes:\n", f"  volumes:\n  - hostPath:\n      path: {CONFIG}\n      type: File\n    name: enc\n"
    )
    master["manifest"].write_text(text)

    edit(master, automatic_reload=True)

    after = pod(master)
    assert volumes_of(after)["enc"]["hostPath"] == {
        "path": "/etc/kubernetes/encryption",
        "type": "DirectoryOrCreate",
    }
    assert mounts_of(after)["enc"]["mountPath"] == "/etc/kubernetes/encryption"
    assert "encryption-provider-config" not in volumes_of(after)  # no second mount of the same directory


def test_a_directory_another_mount_shows_only_loses_the_file_mount(master) -> None:
    kubeadm_130(master)
    edit(master, encryption_config_path="/etc/kubernetes/pki/encryption.yaml")  # a file mount under k8s-certs

    edit(master, automatic_reload=True, encryption_config_path="/etc/kubernetes/pki/encryption.yaml")

    after = pod(master)
    assert "encryption-provider-config" not in volumes_of(after)
    assert "encryption-provider-config" not in mounts_of(after)
    assert mounts_of(after)["k8s-certs"]["mountPath"] == "/etc/kubernetes/pki"


def test_check_mode_and_diff_change_nothing(master) -> None:
    original = kubeadm_130(master)

    result = edit(master, check=True, automatic_reload=True)

    assert result["changed"] is True and master["manifest"].read_text() == original
    assert not master["backups"].exists()


@pytest.mark.parametrize("version", ["1.20", "1.12"])
def test_older_than_1_26_is_refused_and_nothing_changes(master, version) -> None:
    original = (MANIFESTS / f"kube-apiserver-{version}.yaml").read_text()
    master["manifest"].write_text(original)

    result = edit(master, automatic_reload=True)

    assert result["failed"] is True
    assert "no --encryption-provider-config-automatic-reload (it came with 1.26)" in result["msg"]
    assert master["manifest"].read_text() == original and not master["backups"].exists()


def test_off_keeps_todays_file_mount_and_annotation(master) -> None:
    kubeadm_130(master)

    result = edit(master)

    after = pod(master)
    assert result["automatic_reload"] is False
    assert volumes_of(after)["encryption-provider-config"]["hostPath"]["type"] == "File"
    assert after["metadata"]["annotations"]["tke.kms/encryption-config-sha256"] == CHECKSUM
    assert not any(
        f.startswith("--encryption-provider-config-automatic-reload") for f in container(after)["command"]
    )


def test_state_absent_takes_the_directory_mount_and_the_flag_out(master, tmp_path) -> None:
    kubeadm_130(master)
    config = tmp_path / "config.yaml"
    config.write_text(
        "apiVersion: apiserver.config.k8s.io/v1\nkind: EncryptionConfiguration\n"
        "resources:\n- resources: [secrets]\n  providers:\n  - identity: {}\n"
    )
    edit(master, automatic_reload=True, encryption_config_path=str(config))

    result = edit(master, state="absent", encryption_config_path=str(config))

    assert result["removed"]["volumes"] == ["encryption-provider-config", "tke-kms-plugin-socket"]
    assert RELOAD_FLAG in result["removed"]["flags"]
    assert master["manifest"].read_text() == (MANIFESTS / "kube-apiserver-1.30.yaml").read_text()


# apiserver_reload_wait refuses, before any waiting, what cannot reload -----------------------------------


def wait(master: dict[str, Path], **args: object) -> dict:
    params = {"manifest_path": str(master["manifest"]), "wait_timeout": 1, "wait_sleep": 0.1}
    params.update(args)
    return run_module(apiserver_reload_wait.main, params)


def test_the_wait_refuses_an_apiserver_without_the_flag(master) -> None:
    kubeadm_130(master)
    edit(master)

    result = wait(master)

    assert result["failed"] is True
    assert "runs without --encryption-provider-config-automatic-reload=true" in result["msg"]


def test_the_wait_refuses_a_single_file_mount(master) -> None:
    kubeadm_130(master)
    edit(master)
    text = (
        master["manifest"]
        .read_text()
        .replace("    - --etcd-cafile", f"    - {RELOAD_FLAG}\n    - --etcd-cafile")
    )
    master["manifest"].write_text(text)

    result = wait(master)

    assert result["failed"] is True
    assert "is mounted into the apiserver as a single file" in result["msg"]


def test_the_wait_refuses_kubernetes_older_than_1_26(master) -> None:
    master["manifest"].write_text((MANIFESTS / "kube-apiserver-1.20.yaml").read_text())

    result = wait(master)

    assert result["failed"] is True and "it came with 1.26" in result["msg"]


# the metrics -----------------------------------------------------------------------------------------------

ID = 'apiserver_id_hash="sha256:aa"'
CONTROLLER = "apiserver_encryption_config_controller_"
METRICS = f"""# HELP {CONTROLLER}last_config_info [ALPHA] Information
# TYPE {CONTROLLER}last_config_info gauge
{CONTROLLER}last_config_info{{{ID},hash="sha256:bb"}} 1
{CONTROLLER}automatic_reloads_total{{{ID},status="failure"}} 3
{CONTROLLER}automatic_reloads_total{{{ID},status="success"}} 2
{CONTROLLER}automatic_reload_last_timestamp_seconds{{{ID},status="failure"}} 1.7650123e+09
{CONTROLLER}automatic_reload_last_timestamp_seconds{{{ID},status="success"}} 1.765e+09
process_start_time_seconds 1.7649e+09
""".encode()


def test_the_reload_metrics_are_read() -> None:
    state = rl.reload_state(METRICS)

    assert state == rl.ReloadState(["sha256:bb"], 3.0, 1.765e9, 1.7650123e9)


def test_an_apiserver_that_reports_nothing_about_reloads() -> None:
    assert rl.reload_state(b"process_start_time_seconds 1.7649e+09\n") == rl.ReloadState([], 0.0, None, None)


def test_the_hash_is_kube_apiservers() -> None:
    # k8s.io/apiserver: fmt.Sprintf("sha256:%x", sha256.Sum256(data)) of the file's bytes
    assert rl.config_hash(b"") == "sha256:e3b0c44298fc1c149afbf4c8996fb92427ae41e4649b934ca495991b7852b855"
