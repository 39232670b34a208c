"""The on-master API modules against a real kube-apiserver 1.20.2 + etcd (tests/lab) and a KMS v1 plugin.

apiserver_health, secret_storage_info, reencrypt and encryption_verify talk HTTPS with the lab's certificates,
exactly as they would with kubeadm's on a master: endpoints and files come from a kube-apiserver manifest
written from the lab apiserver's own command line.
"""

from __future__ import annotations

import time

import pytest
from ansible_collections.tke.kms.plugins.modules import (
    apiserver_health,
    encryption_status,
    encryption_verify,
    reencrypt,
    secret_storage_info,
)
from kubernetes import client

from tests.lab import encryption
from tests.lab.apiserver import write_manifest
from tests.unit.collection import run_module

pytestmark = pytest.mark.e2e
PROVIDER = "tke-kms-plugin"


@pytest.fixture
def lab(control_plane, noop_plugin_factory, tmp_path):
    plane = control_plane
    core = client.CoreV1Api(plane.apiserver.api_client())
    for number in range(5):
        core.create_namespaced_secret(
            "default",
            client.V1Secret(metadata=client.V1ObjectMeta(name=f"old-{number}"), string_data={"k": "v"}),
        )
    plugin = noop_plugin_factory("rollout")
    manifest = write_manifest(tmp_path / "kube-apiserver.yaml", plane.apiserver.argv())
    access = {"manifest_path": str(manifest), "kubeconfig": str(plane.apiserver.admin_conf)}
    return plane, plugin, manifest, access


def test_rollout_modules_on_a_real_apiserver(lab) -> None:
    plane, plugin, manifest, access = lab

    storage = run_module(secret_storage_info.main, {"manifest_path": access["manifest_path"]})
    assert storage["by_storage"] == {"identity": storage["total"]} and storage["total"] >= 5
    assert "default/old-0" in storage["pending"]

    health = run_module(apiserver_health.main, access)
    assert health["healthy"] is True and health["ready"] is True and health["kms_checks"] == {}
    assert "etcd" in health["checks"]
    later = run_module(apiserver_health.main, dict(access, started_after=time.time()))
    assert later["healthy"] is False and "still the process from before the change" in later["message"]
    assert later["failed"] is True and later["msg"] == later["message"]  # an unhealthy master is a failure

    # the write phase, as the apiserver role leaves it: restart with [kms, identity]
    restarted_after = time.time()
    config = encryption.config([encryption.kms_v1(PROVIDER, plugin.socket), encryption.identity()])
    plane.restart_apiserver(config)
    write_manifest(manifest, plane.apiserver.argv())
    health = run_module(apiserver_health.main, dict(access, started_after=restarted_after, wait=True))
    assert health["healthy"] is True and "failed" not in health, health
    assert health["kms_checks"] == {"kms-provider-0": True} and health["restarted"] is True

    verify = run_module(encryption_verify.main, access)
    assert verify["failed"] is True and verify["probe"]["storage"] == f"kms:v1:{PROVIDER}"
    assert verify["probe"]["read_back"] is True and verify["probe"]["plaintext_in_etcd"] is False
    assert f"{storage['total']} of {storage['total']} Secrets are not yet stored" in verify["msg"]
    assert (
        run_module(secret_storage_info.main, {"manifest_path": access["manifest_path"]})["total"]
        == storage["total"]
    )  # the probe Secret is gone again

    check = run_module(reencrypt.main, dict(access, secrets=storage["pending"]), check=True)
    assert check["changed"] is True and check["rewritten"] == storage["total"]
    assert (
        run_module(secret_storage_info.main, {"manifest_path": access["manifest_path"]})["pending_count"]
        == (storage["total"])
    )
    done = run_module(
        reencrypt.main, dict(access, secrets=[*storage["pending"], "default/deleted-meanwhile"])
    )
    assert (done["changed"], done["rewritten"], done["missing"]) == (
        True,
        storage["total"],
        ["default/deleted-meanwhile"],
    )
    again = run_module(reencrypt.main, access)
    assert again["changed"] is False and again["rewritten"] == 0 and again["unchanged"] == storage["total"]

    after = run_module(secret_storage_info.main, {"manifest_path": access["manifest_path"]})
    assert after["pending_count"] == 0 and after["by_storage"] == {f"kms:v1:{PROVIDER}": storage["total"]}
    verified = run_module(encryption_verify.main, access)
    assert not verified.get("failed") and verified["changed"] is False and verified["pending_count"] == 0

    # What playbooks/status.yml gathers on a master: this 1.20 apiserver does not report its config's hash,
    # so it is inferred from its start after the file's last change - until the file is edited by hand.
    status = run_module(encryption_status.main, dict(access, plugin_metrics_url=""))
    assert not status.get("failed") and status["config_hash"].startswith("sha256:"), status
    assert status["running_config"] == {
        "hash": status["config_hash"],
        "source": "inferred: started after the file changed",
    }
    assert status["apiserver"]["kms_checks"] == {"kms-provider-0": True} and status["apiserver"]["ready"]
    assert [(p["provider"], p["healthy"], p["key_state"]) for p in status["plugins"]] == [
        (PROVIDER, True, None)
    ]
    assert status["write_storage"] == f"KMS provider {PROVIDER}"
    assert status["objects"]["secrets"]["by_storage"] == {f"kms:v1:{PROVIDER}": storage["total"]}
    config_file = status["config_path"]
    with open(config_file, "ab") as handle:
        handle.write(b"# edited by hand\n")
    drifted = run_module(encryption_status.main, dict(access, plugin_metrics_url="", count_objects=False))
    assert drifted["config_hash"] != status["config_hash"] and drifted["objects"] == {}
    assert drifted["running_config"] == {
        "hash": None,
        "source": "unknown: the file changed after the apiserver started",
    }


def test_bad_access_is_a_clear_failure(lab, tmp_path) -> None:
    _, _, manifest, access = lab
    result = run_module(
        apiserver_health.main, dict(access, kubeconfig=str(tmp_path / "none"), client_cert=None)
    )
    assert result["failed"] and "no credentials for the apiserver" in result["msg"]  # no kubelet client cert
    result = run_module(
        secret_storage_info.main, {"manifest_path": str(manifest), "etcd_client_cert": "/nope.crt"}
    )
    assert result["failed"] and "/nope.crt does not exist" in result["msg"]


def test_census_of_several_resources_follows_the_apiservers_etcd_layout(lab) -> None:
    plane, plugin, manifest, access = lab
    core = client.CoreV1Api(plane.apiserver.api_client())
    for number in range(3):
        core.create_namespaced_config_map(
            "default", client.V1ConfigMap(metadata=client.V1ObjectMeta(name=f"cm-{number}"), data={"k": "v"})
        )
    secrets_only = run_module(secret_storage_info.main, {"manifest_path": access["manifest_path"]})
    storage = run_module(
        secret_storage_info.main,
        {"manifest_path": access["manifest_path"], "resources": ["secrets", "configmaps", "services"]},
    )
    per = storage["per_resource"]
    assert per["secrets"] == {key: secrets_only[key] for key in per["secrets"]}
    assert per["configmaps"]["total"] >= 3  # the apiserver adds its own in kube-system
    assert per["configmaps"]["by_storage"] == {"identity": per["configmaps"]["total"]}
    assert per["services"]["total"] >= 1  # default/kubernetes, stored under services/specs
    assert storage["total"] == sum(found["total"] for found in per.values())
    assert storage["pending_count"] == storage["total"] and storage["encrypted_count"] == 0
    assert storage["pending_resources"] == ["configmaps", "services"]
    assert storage["pending"] == secrets_only["pending"]  # names of Secrets only

    # configmaps share the KMS entry with secrets: new ones are stored with KMS, the old ones are pending
    providers = [encryption.kms_v1(PROVIDER, plugin.socket), encryption.identity()]
    config = encryption.config(providers, resources=("secrets", "configmaps"))
    plane.restart_apiserver(config)
    write_manifest(manifest, plane.apiserver.argv())
    core.create_namespaced_config_map(
        "default", client.V1ConfigMap(metadata=client.V1ObjectMeta(name="cm-new"), data={"k": "v"})
    )
    after = run_module(
        secret_storage_info.main, {"manifest_path": access["manifest_path"], "resources": ["configmaps"]}
    )
    configmaps = after["per_resource"]["configmaps"]
    assert configmaps["by_storage"][f"kms:v1:{PROVIDER}"] == configmaps["encrypted_count"] == 1
    assert configmaps["pending_count"] == configmaps["total"] - 1 == per["configmaps"]["total"]
    verify = run_module(encryption_verify.main, dict(access, resources=["secrets", "configmaps"]))
    assert verify["failed"] is True and verify["probe"]["storage"] == f"kms:v1:{PROVIDER}"
    assert verify["pending_resources"] == ["configmaps"]
    assert f"{configmaps['pending_count']} of {configmaps['total']} configmaps" in verify["msg"]
    assert f"{secrets_only['total']} of {secrets_only['total']} Secrets" in verify["msg"]


def test_resources_that_cannot_be_counted_are_refused_before_anything_is_written(lab) -> None:
    _, _, _, access = lab
    for resource in ("*.*", "*.apps", "pods/status", "Secrets"):
        result = run_module(encryption_verify.main, dict(access, resources=["secrets", resource]))
        assert result["failed"] is True and "probe" not in result
        assert f"cannot count the objects of {resource!r}" in result["msg"]
    result = run_module(
        secret_storage_info.main, {"manifest_path": access["manifest_path"], "resources": ["*.*"]}
    )
    assert result["failed"] is True and "wildcards (*.*, *.<group>)" in result["msg"]


def test_an_apiserver_running_an_aescbc_only_config_is_healthy_without_a_kms_check(lab) -> None:
    plane, plugin, manifest, access = lab
    plane.restart_apiserver(encryption.config([encryption.aescbc(), encryption.identity()]))
    write_manifest(manifest, plane.apiserver.argv())
    health = run_module(apiserver_health.main, access)
    assert health["healthy"] is True and health["kms_checks"] == {}, health
    assert run_module(apiserver_health.main, dict(access, require_kms=True))["healthy"] is False

    # the same apiserver with a KMS provider in its config: the KMS check is required and passes
    config = encryption.config(
        [encryption.kms_v1(PROVIDER, plugin.socket), encryption.aescbc(), encryption.identity()]
    )
    plane.restart_apiserver(config)
    write_manifest(manifest, plane.apiserver.argv())
    health = run_module(apiserver_health.main, access)
    assert health["healthy"] is True and health["kms_checks"] == {"kms-provider-0": True}, health


def test_a_kms_config_requires_the_kms_check(lab, tmp_path) -> None:
    plane, plugin, manifest, access = lab
    # the manifest names a config with a KMS provider that the running (unencrypted) apiserver never loaded
    config = encryption.write(
        tmp_path / "encryption.yaml",
        encryption.config([encryption.kms_v1(PROVIDER, plugin.socket), encryption.identity()]),
    )
    write_manifest(manifest, [*plane.apiserver.argv(), f"--encryption-provider-config={config}"])
    health = run_module(apiserver_health.main, access)
    assert health["healthy"] is False and "has no KMS health check" in health["message"]


def test_a_restart_within_a_second_of_the_change_is_recognised(control_plane_factory, tmp_path) -> None:
    # The KMS v2 lab apiserver starts in well under a second, as a quick kubelet restart can. Its reported
    # start time counts from the boot time in whole seconds, so it may read earlier than the wall clock of
    # the change (written_at) although the process is new: only the start time reported before tells.
    plane = control_plane_factory(kms_v2=True)
    server = plane.apiserver
    manifest = write_manifest(tmp_path / "kube-apiserver.yaml", server.argv(), server.version)
    access = {"manifest_path": str(manifest), "kubeconfig": str(server.admin_conf)}
    before = run_module(apiserver_health.main, access)

    plane.restart_apiserver()
    after = run_module(apiserver_health.main, dict(access, previous_started_at=before["started_at"]))
    again = run_module(apiserver_health.main, dict(access, previous_started_at=after["started_at"]))

    assert before["healthy"] is True and "restarted" not in before
    assert after["healthy"] is True and after["restarted"] is True, after
    assert again["healthy"] is False and "still the process from before the change" in again["message"]
