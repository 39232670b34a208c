"""A real kubeadm 1.20.2 (built with the lab's kube-apiserver, tests/lab/build/kube-1.20.sh) for what
`kubeadm upgrade` does with the cluster's ClusterConfiguration: write the kube-apiserver manifest anew.

`kubeadm init phase control-plane apiserver` runs the same code as an upgrade
(controlplane.CreateStaticPodFiles from the ClusterConfiguration); with --rootfs it chroots into a scratch
directory, so the host's /etc/kubernetes is never touched and nothing is reached over the network
(kubernetesVersion, the advertise address and the CRI socket are in the config).
"""

from __future__ import annotations

import shutil
import subprocess
import tempfile
from pathlib import Path
from typing import Any

import yaml

from tests.lab.binaries import kubeadm_binary
from tests.lab.runtime import LabError

NAMESPACE = "kube-system"
NAME = "kubeadm-config"
CONFIGMAP_PATH = f"/api/v1/namespaces/{NAMESPACE}/configmaps/{NAME}"
ENCRYPTION_FLAGS = ("--encryption-provider-config", "--encryption-provider-config-automatic-reload")
TIMEOUT = 120


def _kubeadm(*argv: str, rootfs: Path | None = None) -> str:
    prefix = [str(kubeadm_binary())] + ([f"--rootfs={rootfs}"] if rootfs else [])
    run = subprocess.run(
        [*prefix, *argv],
        capture_output=True,
        text=True,
        timeout=TIMEOUT,
        check=False,
        env={"PATH": "/usr/bin:/bin"},
    )
    if run.returncode != 0:
        raise LabError(f"kubeadm {' '.join(argv)} failed ({run.returncode}):\n{run.stdout}\n{run.stderr}")
    return run.stdout


def init_defaults() -> list[dict[str, Any]]:
    """`kubeadm config print init-defaults`: an InitConfiguration and a ClusterConfiguration (v1beta2)."""
    return [doc for doc in yaml.safe_load_all(_kubeadm("config", "print", "init-defaults")) if doc]


def cluster_configuration(version: str = "v1.20.2") -> str:
    """The ClusterConfiguration kubeadm 1.20 writes for a new cluster, as kubeadm-config holds it."""
    config = next(doc for doc in init_defaults() if doc["kind"] == "ClusterConfiguration")
    config["kubernetesVersion"] = version
    return yaml.safe_dump(config)


def configmap(cluster_config: str) -> dict[str, Any]:
    return {
        "apiVersion": "v1",
        "kind": "ConfigMap",
        "metadata": {"name": NAME, "namespace": NAMESPACE},
        "data": {"ClusterConfiguration": cluster_config, "ClusterStatus": "apiEndpoints: {}\n"},
    }


def regenerate_apiserver_manifest(cluster_config: str) -> dict[str, Any]:
    """The kube-apiserver static pod kubeadm writes from this ClusterConfiguration (as an upgrade does)."""
    init = next(doc for doc in init_defaults() if doc["kind"] == "InitConfiguration")
    root = Path(tempfile.mkdtemp(prefix="tke-kms-kubeadm-"))
    try:
        (root / "kubeadm.yaml").write_text(yaml.safe_dump(init) + "---\n" + cluster_config)
        _kubeadm("init", "phase", "control-plane", "apiserver", "--config=/kubeadm.yaml", rootfs=root)
        return yaml.safe_load((root / "etc/kubernetes/manifests/kube-apiserver.yaml").read_text())
    finally:
        shutil.rmtree(root)


def encryption_in(pod: dict[str, Any]) -> dict[str, Any]:
    """What of the encryption setup a kube-apiserver pod carries: flags, volumes and mounts by name."""
    container = next(c for c in pod["spec"]["containers"] if c["name"] == "kube-apiserver")
    flags = [arg for arg in container["command"] if arg.split("=", 1)[0] in ENCRYPTION_FLAGS]
    volumes = {v["name"]: v["hostPath"] for v in pod["spec"].get("volumes", []) if "hostPath" in v}
    mounts = {m["name"]: m for m in container.get("volumeMounts", [])}
    return {"flags": flags, "volumes": volumes, "mounts": mounts}


def assert_carries(pod: dict[str, Any], config_path: str, socket_dir: str) -> None:
    """The regenerated pod has the flag and shows the config and the socket directory at the same paths."""
    found = encryption_in(pod)
    assert f"--encryption-provider-config={config_path}" in found["flags"], found
    for path in (config_path, socket_dir):
        shown = [m for m in found["mounts"].values() if path.startswith(m["mountPath"])]
        assert shown, (path, found)
        assert any(found["volumes"][m["name"]]["path"] == m["mountPath"] for m in shown), (path, found)


def assert_carries_none(pod: dict[str, Any]) -> None:
    found = encryption_in(pod)
    assert not found["flags"], found
    ours = {"encryption-provider-config", "tke-kms-plugin-socket"}
    assert not ours & (set(found["volumes"]) | set(found["mounts"])), found


# On lab masters (tests/lab/masters.py): the cluster as kubeadm leaves it, and what an upgrade makes of it


def seed(lab: Any) -> str:
    """Create kube-system/kubeadm-config with kubeadm 1.20.2's own ClusterConfiguration; returns it."""
    text = cluster_configuration()
    with lab.session() as session:
        url = f"{lab.masters[0].url}/api/v1/namespaces/{NAMESPACE}/configmaps"
        session.post(url, json=configmap(text), timeout=30).raise_for_status()
    return text


def read_cluster_configuration(lab: Any) -> str:
    with lab.session() as session:
        answer = session.get(f"{lab.masters[0].url}{CONFIGMAP_PATH}", timeout=30)
        answer.raise_for_status()
        return answer.json()["data"]["ClusterConfiguration"]


def regenerated(lab: Any) -> dict[str, Any]:
    """The kube-apiserver manifest kubeadm writes from the lab cluster's ClusterConfiguration now."""
    return regenerate_apiserver_manifest(read_cluster_configuration(lab))
