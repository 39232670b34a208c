"""The node agent's kubelet rules, without a lab: manifest selection, path resolution, back-off."""

from __future__ import annotations

import os
import socket
from pathlib import Path

import pytest
import yaml

from tests.lab.node_agent import manifests
from tests.lab.node_agent.agent import NodeAgent
from tests.lab.node_agent.config import AgentConfig
from tests.lab.node_agent.container import Backoff
from tests.lab.node_agent.podspec import expand, launch_spec
from tests.lab.node_agent.probes import run_probe
from tests.lab.node_agent.volumes import resolve_in_root


def pod(name: str, flag: str = "--v=1") -> dict:
    return {
        "apiVersion": "v1",
        "kind": "Pod",
        "metadata": {"name": name, "namespace": "kube-system"},
        "spec": {"containers": [{"name": name, "image": f"k8s.gcr.io/{name}:v1", "command": [name, flag]}]},
    }


def write(directory: Path, file: str, content: dict | str) -> Path:
    path = directory / file
    path.write_text(content if isinstance(content, str) else yaml.safe_dump(content))
    return path


def test_dotfiles_are_ignored_and_other_names_are_pods(tmp_path: Path) -> None:
    write(tmp_path, ".kube-apiserver.yaml.swp", pod("editor-swap"))
    write(tmp_path, "kube-scheduler.yaml", pod("kube-scheduler"))
    write(tmp_path, "extra.yaml.bak", pod("extra"))
    write(tmp_path, "notes.txt", pod("notes"))
    (tmp_path / "subdir").mkdir()
    write(tmp_path / "subdir", "nested.yaml", pod("nested"))
    scan = manifests.scan(tmp_path, "master1")
    assert [p.name for p in scan.pods] == ["extra-master1", "kube-scheduler-master1", "notes-master1"]
    assert "subdir" in scan.errors
    assert ".kube-apiserver.yaml.swp" not in scan.errors


def test_same_pod_name_first_file_in_name_order_wins(tmp_path: Path) -> None:
    write(tmp_path, "kube-apiserver.yaml", pod("kube-apiserver", "--new"))
    write(tmp_path, "kube-apiserver.yaml.bak", pod("kube-apiserver", "--old"))
    write(tmp_path, "kube-apiserver.backup.yaml", pod("kube-apiserver", "--older"))
    scan = manifests.scan(tmp_path, "master1")
    # "kube-apiserver.backup.yaml" sorts first: a backup named like that silently wins.
    assert [p.path.name for p in scan.pods] == ["kube-apiserver.backup.yaml"]
    assert scan.pods[0].pod["spec"]["containers"][0]["command"] == ["kube-apiserver", "--older"]
    assert "duplicate" in scan.errors["kube-apiserver.yaml"]
    assert "duplicate" in scan.errors["kube-apiserver.yaml.bak"]


def test_invalid_manifests_are_skipped_with_a_reason(tmp_path: Path) -> None:
    write(tmp_path, "broken.yaml", "apiVersion: v1\nkind: Pod\nmetadata: {name: broken\n")
    write(tmp_path, "deployment.yaml", {**pod("x"), "kind": "Deployment"})
    no_image = pod("noimage")
    del no_image["spec"]["containers"][0]["image"]
    write(tmp_path, "noimage.yaml", no_image)
    scan = manifests.scan(tmp_path, "master1")
    assert scan.pods == []
    assert "cannot decode" in scan.errors["broken.yaml"]
    assert "kind Pod" in scan.errors["deployment.yaml"]
    assert "image" in scan.errors["noimage.yaml"]


def test_uid_changes_with_the_pod_not_with_formatting_or_mtime(tmp_path: Path) -> None:
    path = write(tmp_path, "kube-apiserver.yaml", pod("kube-apiserver"))
    first = manifests.scan(tmp_path, "master1").pods[0].uid
    path.write_text("# a comment\n" + yaml.safe_dump(pod("kube-apiserver"), indent=4))
    os.utime(path)
    assert manifests.scan(tmp_path, "master1").pods[0].uid == first
    write(tmp_path, "kube-apiserver.yaml", pod("kube-apiserver", "--v=2"))
    assert manifests.scan(tmp_path, "master1").pods[0].uid != first
    assert manifests.scan(tmp_path, "master2").pods[0].uid != first


def test_paths_resolve_inside_the_chroot(tmp_path: Path) -> None:
    (tmp_path / "run").mkdir()
    (tmp_path / "var").mkdir()
    (tmp_path / "var/run").symlink_to("/run")  # as in Debian: absolute, must stay in the chroot
    (tmp_path / "etc").mkdir()
    (tmp_path / "etc/link").symlink_to("../run")
    assert resolve_in_root(tmp_path, "/var/run/tke-kms-plugin") == tmp_path / "run/tke-kms-plugin"
    assert resolve_in_root(tmp_path, "/etc/link/x") == tmp_path / "run/x"
    assert resolve_in_root(tmp_path, "/../../etc") == tmp_path / "etc"


def test_backoff_is_immediate_then_doubles_to_the_cap() -> None:
    backoff = Backoff(initial=10, maximum=40)
    assert [backoff.next_delay(1) for _ in range(5)] == [0, 10, 20, 40, 40]
    assert backoff.next_delay(ran_for=81) == 0  # ran long enough: the crash loop is forgotten


def test_launch_uses_image_entrypoint_env_and_var_expansion() -> None:
    spec = pod("plugin")
    container = {
        "name": "plugin",
        "image": "ccr.ccs.tencentyun.com/x/tke-kms-plugin:1.0",
        "args": ["--n=$(NODE)"],
    }
    container["env"] = [{"name": "NODE", "valueFrom": {"fieldRef": {"fieldPath": "spec.nodeName"}}}]
    spec["spec"]["nodeName"] = "master2"
    launch = launch_spec(spec, container, entrypoints={"tke-kms-plugin": ["/tke-kms-plugin"]}, read=None)
    assert launch.argv == ["/tke-kms-plugin", "--n=master2"]
    unknown = launch_spec(spec, {"name": "x", "image": "busybox"}, entrypoints={}, read=None)
    assert unknown.error and "entrypoint" in unknown.error
    assert expand("$(A)-$$(A)-$(B)", {"A": "1"}) == "1-$(A)-$(B)"


def test_user_from_security_context_else_image_user() -> None:
    spec = pod("plugin")
    container = {"name": "plugin", "image": "registry.example.com/tke-kms-plugin:0.1.0", "command": ["x"]}
    users = {"tke-kms-plugin": "10001:10001"}
    assert launch_spec(spec, container, entrypoints={}, read=None, image_users=users).user == "10001:10001"
    container["securityContext"] = {"runAsUser": 0}
    assert launch_spec(spec, container, entrypoints={}, read=None, image_users=users).user == "0:0"
    assert (
        launch_spec(spec, pod("kube-apiserver")["spec"]["containers"][0], entrypoints={}, read=None).user
        is None
    )


def test_probes_without_a_host_go_to_the_pod_ip() -> None:
    """kubelet probes the pod IP (a hostNetwork pod: its node's address) when a probe names no host."""
    with socket.socket() as listener:
        listener.bind(("127.0.0.2", 0))  # the "node address"; nothing listens on 127.0.0.1 at this port
        listener.listen()
        port = listener.getsockname()[1]
        probe = {"tcpSocket": {"port": port}}
        assert run_probe(probe, lambda *_: 1, {}, "127.0.0.2") == (True, "")
        ok, error = run_probe(probe, lambda *_: 1, {}, "127.0.0.1")
        assert not ok and "ConnectionRefused" in error
        assert run_probe({"tcpSocket": {"host": "127.0.0.2", "port": port}}, lambda *_: 1, {}, "127.0.0.1")[0]


@pytest.mark.parametrize("report_to_api", [True, False])
def test_agent_talks_to_the_api_only_when_it_reports(tmp_path: Path, report_to_api: bool) -> None:
    """report_to_api=False (v2 masters: no pods, nodes, leases in the API) makes no API call at all;
    True keeps the 1.20 behaviour, where an unreachable API is recorded and pods keep running."""
    with socket.socket() as closed:
        closed.bind(("127.0.0.1", 0))
        port = closed.getsockname()[1]  # nothing listens here once closed: connection refused
    (tmp_path / "root/etc/kubernetes/manifests").mkdir(parents=True)
    config = AgentConfig(
        node_name="master1",
        root=str(tmp_path / "root"),
        state_dir=str(tmp_path),
        servers=[f"https://127.0.0.1:{port}"],
        ca_file="",
        cert_file="",
        key_file="",
        report_to_api=report_to_api,
    )
    agent = NodeAgent(config)
    try:
        agent.tick()
    finally:
        agent.api.close()
    snapshot = yaml.safe_load((tmp_path / "status.json").read_text())
    assert snapshot["report_to_api"] is report_to_api
    if report_to_api:
        assert "ConnectionError" in snapshot["api_error"]
    else:
        assert snapshot["api_error"] is None
