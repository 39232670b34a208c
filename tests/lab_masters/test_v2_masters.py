"""v2 masters: the lab's KMS v2 kube-apiserver (Kubernetes 1.36 library code) as a kubeadm 1.30+ static
pod under the node agent, which runs static pods without reporting to the API."""

from __future__ import annotations

import base64
import uuid
from pathlib import Path

import pytest
import yaml

from tests.fixtures.masters import wait_agent_ticks
from tests.lab.masters import MasterLab
from tests.lab.runtime import wait_for

pytestmark = [pytest.mark.lab_masters, pytest.mark.e2e]


def manifest(lab: MasterLab, name: str) -> dict:
    return yaml.safe_load((lab.master(name).manifests / "kube-apiserver.yaml").read_text())


def write_command(lab: MasterLab, name: str, command: list[str]) -> None:
    pod = manifest(lab, name)
    pod["spec"]["containers"][0]["command"] = command
    (lab.master(name).manifests / "kube-apiserver.yaml").write_text(yaml.safe_dump(pod))


def running_apiserver(lab: MasterLab, name: str) -> dict | None:
    pod = lab.master(name).pod("kube-apiserver")
    return pod if pod and pod["containers"][0]["pid"] else None


def cmdline(pid: int) -> list[str]:
    return Path(f"/proc/{pid}/cmdline").read_bytes().decode().split("\0")


def test_v2_masters_run_kubeadm_1_30_apiservers_that_answer_readyz(v2_master_lab: MasterLab) -> None:
    lab = v2_master_lab
    assert lab.kubernetes_version == "1.36.4"
    with lab.session() as session:
        for master in lab.masters:
            assert session.get(f"{master.url}/readyz", timeout=5).text == "ok"
            version = session.get(f"{master.url}/version", timeout=5).json()
            assert version["gitVersion"] == "v1.36.4", version
            pod = manifest(lab, master.name)
            container = pod["spec"]["containers"][0]
            assert container["image"] == "registry.k8s.io/kube-apiserver:v1.36.4"
            assert f"--advertise-address={master.address}" in container["command"]
            assert not [flag for flag in container["command"] if flag.startswith("--insecure-port")]
            assert pod["spec"]["securityContext"] == {"seccompProfile": {"type": "RuntimeDefault"}}
            assert sorted(p.name for p in master.manifests.iterdir()) == ["kube-apiserver.yaml"]
            status = master.agent_status()
            assert status["report_to_api"] is False and status["api_error"] is None
            # The apiserver serves no pods: the agent made no mirror pod and registered no Node.
            assert session.get(f"{master.url}/api/v1/nodes", timeout=5).status_code == 404


def test_v2_manifest_edit_restarts_the_apiserver_touch_does_not(pristine_v2_manifests: MasterLab) -> None:
    lab = pristine_v2_manifests
    master = lab.master("master2")
    before = running_apiserver(lab, "master2")
    assert before is not None
    (master.manifests / "kube-apiserver.yaml").touch()
    after_touch = wait_agent_ticks(master, 3)
    assert [p["uid"] for p in after_touch["pods"]] == [before["uid"]]

    write_command(
        lab, "master2", [*manifest(lab, "master2")["spec"]["containers"][0]["command"], "--profiling=false"]
    )
    restarted = wait_for(
        lambda: (p := running_apiserver(lab, "master2")) and p["uid"] != before["uid"] and p,
        timeout=30,
        what="v2 kube-apiserver restarted with the new manifest",
    )
    lab.wait_apiserver(master, timeout=30)
    new_pid = restarted["containers"][0]["pid"]
    assert new_pid != before["containers"][0]["pid"]
    assert "--profiling=false" in cmdline(new_pid)
    assert running_apiserver(lab, "master1")["containers"][0]["restartCount"] == 0


def test_v2_misspelled_flag_crash_loops_until_fixed(pristine_v2_manifests: MasterLab) -> None:
    lab = pristine_v2_manifests
    master = lab.master("master3")
    good = manifest(lab, "master3")["spec"]["containers"][0]["command"]
    write_command(lab, "master3", [*good, "--encryption-provider-confg=/etc/kubernetes/enc.yaml"])

    def crash_looping() -> dict | None:
        pod = master.pod("kube-apiserver")
        container = pod["containers"][0] if pod else {}
        waiting = container.get("state", {}).get("waiting", {})
        return container if waiting.get("reason") == "CrashLoopBackOff" else None

    container = wait_for(crash_looping, timeout=60, what="v2 kube-apiserver in CrashLoopBackOff")
    assert container["restartCount"] >= 1
    assert "unknown flag: --encryption-provider-confg" in Path(container["log"]).read_text()

    write_command(lab, "master3", good)
    lab.wait_apiserver(master, timeout=30)  # a fixed manifest is a new pod: no back-off delay


def test_v2_secret_through_master1_reads_back_through_master3_and_is_in_etcd(
    v2_master_lab: MasterLab,
) -> None:
    lab = v2_master_lab
    name, value = f"v2-{uuid.uuid4().hex[:8]}", f"plain-{uuid.uuid4().hex}"
    lab.create_secrets({name: value})
    with lab.session() as session:
        url = f"{lab.master('master3').url}/api/v1/namespaces/default/secrets/{name}"
        found = session.get(url, timeout=5)
        found.raise_for_status()
        assert found.json()["data"]["value"] == base64.b64encode(value.encode()).decode()
    assert lab.etcd is not None
    stored = lab.etcd.get(f"/registry/secrets/default/{name}")
    assert stored is not None and stored.startswith(b"k8s\x00"), stored  # protobuf, no encryption config yet
    assert value.encode() in stored


def test_pod_volumes_are_private_to_the_pod_as_in_a_container_runtime(
    pristine_v2_manifests: MasterLab,
) -> None:
    """The plugin pod's emptyDir on /tmp must not hide the master's /tmp (Ansible's module payloads)."""
    lab = pristine_v2_manifests
    master = lab.master("master1")
    marker = master.path(f"/tmp/ansible-{uuid.uuid4().hex[:8]}")
    marker.write_text("the master's own /tmp")
    pod = {
        "apiVersion": "v1",
        "kind": "Pod",
        "metadata": {"name": "tmp-user", "namespace": "kube-system"},
        "spec": {
            "containers": [
                {
                    "name": "main",
                    "image": "debian",
                    "command": ["sh", "-c", "echo pod > /tmp/from-pod && exec sleep 1000"],
                    # An exec probe runs in the container's mount namespace: it sees the emptyDir.
                    "readinessProbe": {"exec": {"command": ["cat", "/tmp/from-pod"]}, "periodSeconds": 1},
                    "volumeMounts": [{"name": "tmp", "mountPath": "/tmp"}],
                }
            ],
            "volumes": [{"name": "tmp", "emptyDir": {"medium": "Memory"}}],
        },
    }
    (master.manifests / "tmp-user.yaml").write_text(yaml.safe_dump(pod))
    running = wait_for(
        lambda: (p := master.pod("tmp-user")) and p["containers"][0]["ready"] and p,
        timeout=30,
        what="a pod with an emptyDir on /tmp ready (its exec probe reads the emptyDir)",
    )
    assert marker.read_text() == "the master's own /tmp"
    assert not master.path("/tmp/from-pod").exists()
    assert master.run("cat", str(marker).removeprefix(str(master.root))).stdout == "the master's own /tmp"
    (master.manifests / "tmp-user.yaml").unlink()
    pid = running["containers"][0]["pid"]
    wait_for(lambda: master.pod("tmp-user") is None, timeout=60, what="the tmp-user pod stopped")
    assert not Path(f"/proc/{pid}").exists()
    marker.unlink()
