"""Every master has its own network namespace: the production ports, the same on every master.

Two plugins with the DEFAULT metrics address (127.0.0.1:9876), one per master, both serve; on a
shared host network the second could not bind. They reach the KMS emulator on the lab's gateway.
"""

from __future__ import annotations

import os
import secrets
from collections.abc import Iterator
from pathlib import Path

import pytest
import yaml
from tencentcloud.kms.v20190118 import models
from tke_kms_plugin.emulator.testing import EmulatorProcess, make_kms_client, start_emulator_process

from tests.lab.masters import LAB_REGION, Master, MasterLab, is_running
from tests.lab.runtime import wait_for

pytestmark = [pytest.mark.lab_masters, pytest.mark.e2e]

SECRET_ID = "AKIDtkekmslabnetwork"
CREDENTIALS = "/etc/lab-kms/credentials"
DEFAULT_METRICS = ("127.0.0.1", 9876)
HTTP_GET = (
    "import sys, urllib.request; "
    "print(urllib.request.urlopen(sys.argv[1], timeout=5).read().decode(), end='')"
)


@pytest.fixture
def emulator(master_lab: MasterLab) -> Iterator[tuple[EmulatorProcess, str, str]]:
    """The emulator on the lab's gateway, its SecretKey, and the KeyId of a key created in it."""
    secret_key = secrets.token_urlsafe(24)
    process = start_emulator_process({SECRET_ID: secret_key}, host=master_lab.gateway)
    try:
        client = make_kms_client(process.endpoint, SECRET_ID, secret_key, region=LAB_REGION)
        request = models.CreateKeyRequest()
        request.Alias = "lab-network"
        key_id = client.CreateKey(request).KeyId
        yield process, secret_key, key_id
    finally:
        process.stop()


def plugin_pod(endpoint: str, key_id: str) -> dict:
    """A static pod running the plugin image with its default flags, except what it cannot default."""
    args = [
        f"--key-id={key_id}",
        f"--region={LAB_REGION}",
        f"--kms-endpoint={endpoint}",
        f"--credentials-file={CREDENTIALS}",
        "--unix-socket=/var/run/lab-kms/plugin.sock",
    ]
    probe = {"httpGet": {"host": DEFAULT_METRICS[0], "port": DEFAULT_METRICS[1], "path": "/healthz"}}
    return {
        "apiVersion": "v1",
        "kind": "Pod",
        "metadata": {"name": "lab-kms-plugin", "namespace": "kube-system"},
        "spec": {
            "hostNetwork": True,
            "containers": [
                {
                    "name": "plugin",
                    "image": "localhost/tke-kms-plugin:0.1.0",
                    "args": args,
                    "securityContext": {"runAsUser": 0},  # the 0600 credentials file is root's
                    "readinessProbe": {**probe, "periodSeconds": 1},
                    "volumeMounts": [{"name": "sock", "mountPath": "/var/run/lab-kms"}],
                }
            ],
            "volumes": [
                {"name": "sock", "hostPath": {"path": "/var/run/lab-kms", "type": "DirectoryOrCreate"}}
            ],
        },
    }


def get_inside(master: Master, path: str) -> str:
    """GET http://127.0.0.1:9876<path> from inside the master (its chroot and network namespace)."""
    url = f"http://{DEFAULT_METRICS[0]}:{DEFAULT_METRICS[1]}{path}"
    return master.run("python3", "-c", HTTP_GET, url).stdout.strip()


def netns_inode(pid: int | str) -> int:
    return os.stat(f"/proc/{pid}/ns/net").st_ino


def test_each_master_has_its_own_address_and_loopback(master_lab: MasterLab) -> None:
    lab = master_lab
    addresses = [m.address for m in lab.masters]
    assert len(set(addresses)) == len(addresses)
    assert all(m.url == f"https://{m.address}:6443" for m in lab.masters)
    inodes = {os.stat(m.net.path).st_ino for m in lab.masters}
    assert len(inodes) == len(lab.masters) and netns_inode("self") not in inodes
    for master in lab.masters:
        apiserver = master.pod("kube-apiserver")["containers"][0]["pid"]
        assert netns_inode(apiserver) == os.stat(master.net.path).st_ino
        assert netns_inode(master.agent.pid) == os.stat(master.net.path).st_ino
        # kubeadm's ports inside the master: the controller-manager and scheduler on its loopback.
        for port in (10257, 10259):
            connect = f"import socket; socket.create_connection(('127.0.0.1', {port}), timeout=5)"
            assert master.run("python3", "-c", connect, check=False).returncode == 0, (master.name, port)
    # Nothing routes out of a namespace: only the lab's own subnet is reachable.
    routes = lab.masters[0].run("cat", "/proc/net/route").stdout.splitlines()[1:]
    assert [line.split()[0] for line in routes] == ["eth0"]
    assert not [line for line in routes if line.split()[1] == "00000000"], "a default route"


def test_plugins_with_the_default_metrics_address_run_on_every_master(
    pristine_manifests: MasterLab, emulator: tuple[EmulatorProcess, str, str]
) -> None:
    lab = pristine_manifests
    process, secret_key, key_id = emulator
    for master in lab.masters:
        credentials = master.path(CREDENTIALS)
        credentials.parent.mkdir(parents=True, exist_ok=True)
        credentials.touch(mode=0o600)
        credentials.write_text(f"[default]\nsecret_id = {SECRET_ID}\nsecret_key = {secret_key}\n")
        manifest = master.manifests / "lab-kms-plugin.yaml"
        manifest.write_text(yaml.safe_dump(plugin_pod(process.url, key_id)))

    def ready(master: Master) -> dict | None:
        pod = master.pod("lab-kms-plugin")
        container = pod["containers"][0] if pod else {}
        return container if container.get("ready") and container.get("pid") else None

    containers = {
        m.name: wait_for(lambda m=m: ready(m), timeout=90, what=f"plugin Ready on {m.name}")
        for m in lab.masters
    }
    pids = [containers[m.name]["pid"] for m in lab.masters]
    for master, pid in zip(lab.masters, pids, strict=True):
        assert containers[master.name]["restartCount"] == 0
        assert "--metrics-address" not in " ".join(Path(f"/proc/{pid}/cmdline").read_text().split("\0"))
        assert netns_inode(pid) == os.stat(master.net.path).st_ino
        assert get_inside(master, "/livez") == "ok"
        assert get_inside(master, "/healthz") == "ok"  # DescribeKey through the gateway succeeded
    for master in lab.masters:
        (master.manifests / "lab-kms-plugin.yaml").unlink()
    wait_for(lambda: not any(is_running(p) for p in pids), timeout=60, what="plugins stopped")
