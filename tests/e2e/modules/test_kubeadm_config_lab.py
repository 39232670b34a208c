"""tke.kms.kubeadm_config against a real kube-apiserver 1.20.2 (tests/lab), with the ClusterConfiguration the
real kubeadm 1.20.2 writes, and that kubeadm writing the kube-apiserver manifest anew from the ConfigMap (what
`kubeadm upgrade` does): with the flag and volumes after state=present, without them after state=absent."""

from __future__ import annotations

import pytest
from ansible_collections.tke.kms.plugins.modules import apiserver_manifest, kubeadm_config
from kubernetes import client

from tests.lab import kubeadm
from tests.lab.apiserver import write_manifest
from tests.unit.collection import run_module

pytestmark = pytest.mark.e2e
CONFIG = "/etc/kubernetes/encryption-provider-config.yaml"
SOCKET_DIR = "/var/run/tke-kms-plugin"


def cluster_configuration(core: client.CoreV1Api) -> str:
    return core.read_namespaced_config_map(kubeadm.NAME, kubeadm.NAMESPACE).data["ClusterConfiguration"]


def test_the_configmap_survives_kubeadm_regeneration(control_plane, tmp_path) -> None:
    plane = control_plane
    core = client.CoreV1Api(plane.apiserver.api_client())
    (tmp_path / "manifests").mkdir()
    manifest = write_manifest(tmp_path / "manifests" / "kube-apiserver.yaml", plane.apiserver.argv())
    access = {"manifest_path": str(manifest), "kubeconfig": str(plane.apiserver.admin_conf)}
    pointed = run_module(
        apiserver_manifest.main,
        dict(path=str(manifest), encryption_config_checksum="0" * 64, backup_dir=str(tmp_path / "backups")),
    )
    assert pointed["changed"], pointed

    absent = run_module(kubeadm_config.main, access)
    assert absent["changed"] is False and absent["configmap"] == {"found": False, "changed": False}
    assert "kube-system/kubeadm-config does not exist - not a kubeadm cluster" in absent["msg"]

    seeded = kubeadm.cluster_configuration()
    core.create_namespaced_config_map(kubeadm.NAMESPACE, kubeadm.configmap(seeded))
    assert kubeadm.encryption_in(kubeadm.regenerate_apiserver_manifest(seeded))["flags"] == []

    check = run_module(kubeadm_config.main, access, check=True, diff=True)
    assert check["changed"] is True and cluster_configuration(core) == seeded
    assert "encryption-provider-config" in check["diff"][0]["after"]
    done = run_module(kubeadm_config.main, access)
    assert done["changed"] is True and done["configmap"]["api_version"] == "kubeadm.k8s.io/v1beta2"
    written = cluster_configuration(core)
    assert core.read_namespaced_config_map(kubeadm.NAME, kubeadm.NAMESPACE).data["ClusterStatus"]  # kept
    kubeadm.assert_carries(kubeadm.regenerate_apiserver_manifest(written), CONFIG, SOCKET_DIR)
    assert run_module(kubeadm_config.main, access)["changed"] is False

    refused = run_module(kubeadm_config.main, dict(access, state="absent"))
    assert refused["failed"] and "still names" in refused["msg"] and cluster_configuration(core) == written

    off = run_module(
        apiserver_manifest.main, dict(path=str(manifest), state="absent", backup_dir=str(tmp_path / "b"))
    )
    assert off["changed"], off
    removed = run_module(kubeadm_config.main, dict(access, state="absent"))
    assert removed["changed"] is True and cluster_configuration(core) == seeded
    assert removed["removed"]["configmap"]["flags"] == [f"encryption-provider-config={CONFIG}"]
    kubeadm.assert_carries_none(kubeadm.regenerate_apiserver_manifest(cluster_configuration(core)))
    assert run_module(kubeadm_config.main, dict(access, state="absent"))["changed"] is False
