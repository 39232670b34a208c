"""The node agent runs the chroot masters' static pods the way kubelet does (real kube-apiserver)."""

from __future__ import annotations

from pathlib import Path

import pytest
import yaml

from tests.fixtures.masters import wait_agent_ticks
from tests.lab.masters import MasterLab, is_running
from tests.lab.runtime import wait_for

pytestmark = [pytest.mark.lab_masters, pytest.mark.e2e]


def apiserver(lab: MasterLab, name: str = "master1") -> dict:
    pod = lab.master(name).pod("kube-apiserver")
    assert pod is not None, lab.master(name).agent_status()
    return pod


def cmdline(pid: int) -> list[str]:
    return Path(f"/proc/{pid}/cmdline").read_bytes().decode().split("\0")


def edit_apiserver(lab: MasterLab, name: str, add: str | None = None, remove: str | None = None) -> None:
    path = lab.master(name).manifests / "kube-apiserver.yaml"
    manifest = yaml.safe_load(path.read_text())
    command = manifest["spec"]["containers"][0]["command"]
    if add:
        command.append(add)
    if remove:
        command.remove(remove)
    path.write_text(yaml.safe_dump(manifest))


def port_closed(lab: MasterLab, name: str) -> bool:
    try:
        lab.readyz(lab.master(name))
    except OSError:
        return True
    return False


def test_manifest_edit_restarts_the_apiserver_touch_does_not(pristine_manifests: MasterLab) -> None:
    lab = pristine_manifests
    master = lab.master("master1")
    before = apiserver(lab)
    (master.manifests / "kube-apiserver.yaml").touch()
    after_touch = wait_agent_ticks(master, 3)
    assert [p["uid"] for p in after_touch["pods"] if p["name"] == "kube-apiserver-master1"] == [before["uid"]]

    edit_apiserver(lab, "master1", "--profiling=false")
    restarted = wait_for(
        lambda: (
            (p := master.pod("kube-apiserver"))
            and p["uid"] != before["uid"]
            and p["containers"][0]["pid"]
            and p
        ),
        timeout=60,
        what="kube-apiserver restarted with the new manifest",
    )
    lab.wait_apiserver(master)
    new_pid = restarted["containers"][0]["pid"]
    assert new_pid != before["containers"][0]["pid"]
    assert "--profiling=false" in cmdline(new_pid)
    # The mirror pod follows the new config hash, as Ansible roles waiting on it expect.
    with lab.session() as session:

        def mirror_hash() -> str | None:
            found = session.get(
                f"{master.url}/api/v1/namespaces/kube-system/pods/kube-apiserver-master1", timeout=5
            )
            annotations = found.json().get("metadata", {}).get("annotations", {}) if found.ok else {}
            return annotations.get("kubernetes.io/config.hash")

        wait_for(lambda: mirror_hash() == restarted["uid"], timeout=60, what="mirror pod config.hash updated")
    # The other master was not touched.
    assert apiserver(lab, "master2")["containers"][0]["restartCount"] == 0


def test_broken_manifest_keeps_the_apiserver_down_until_fixed(pristine_manifests: MasterLab) -> None:
    lab = pristine_manifests
    master = lab.master("master1")
    path = master.manifests / "kube-apiserver.yaml"
    good = path.read_text()
    path.write_text(good[: len(good) // 2] + "\n  - [unclosed\n")
    wait_for(lambda: port_closed(lab, "master1"), timeout=60, what="apiserver stopped for a broken manifest")
    snapshot = wait_agent_ticks(master, 5)
    assert "kube-apiserver.yaml" in snapshot["manifest_errors"]
    assert master.pod("kube-apiserver") is None
    assert port_closed(lab, "master1")

    path.write_text(good)
    lab.wait_apiserver(master)
    assert master.agent_status()["manifest_errors"] == {}


def test_crashing_apiserver_backs_off_until_fixed(pristine_manifests: MasterLab) -> None:
    lab = pristine_manifests
    master = lab.master("master1")
    edit_apiserver(lab, "master1", "--no-such-flag=1")

    def crash_looping() -> dict | None:
        pod = master.pod("kube-apiserver")
        container = pod["containers"][0] if pod else {}
        waiting = container.get("state", {}).get("waiting", {})
        return (
            container
            if container.get("restartCount", 0) >= 1 and waiting.get("reason") == "CrashLoopBackOff"
            else None
        )

    container = wait_for(crash_looping, timeout=90, what="kube-apiserver in CrashLoopBackOff")
    assert "unknown flag: --no-such-flag" in Path(container["log"]).read_text()
    assert port_closed(lab, "master1")

    edit_apiserver(lab, "master1", remove="--no-such-flag=1")
    lab.wait_apiserver(master)  # a fixed manifest is a new pod: no back-off delay


def test_dotfiles_ignored_bak_copies_and_extra_pods_handled_like_kubelet(
    pristine_manifests: MasterLab,
) -> None:
    lab = pristine_manifests
    master = lab.master("master2")
    before = apiserver(lab, "master2")
    original = (master.manifests / "kube-apiserver.yaml").read_text()
    (master.manifests / ".kube-apiserver.yaml.swp").write_text("binary editor junk \0\1")
    (master.manifests / "kube-apiserver.yaml.bak").write_text(original.replace("--v", "--x"))
    sleeper = {
        "apiVersion": "v1",
        "kind": "Pod",
        "metadata": {"name": "sleeper", "namespace": "kube-system"},
        "spec": {"containers": [{"name": "sleep", "image": "debian", "command": ["sleep", "1000"]}]},
    }
    (master.manifests / "sleeper.yaml.bak").write_text(yaml.safe_dump(sleeper))
    sleeping = wait_for(
        lambda: (p := master.pod("sleeper")) and p["containers"][0]["pid"] and p,
        timeout=30,
        what="a pod from a .bak manifest runs",
    )
    snapshot = master.agent_status()
    assert ".kube-apiserver.yaml.swp" not in snapshot["manifest_errors"]
    assert "duplicate" in snapshot["manifest_errors"]["kube-apiserver.yaml.bak"]
    assert apiserver(lab, "master2")["uid"] == before["uid"]

    (master.manifests / "sleeper.yaml.bak").unlink()
    pid = sleeping["containers"][0]["pid"]
    wait_for(lambda: not is_running(pid), timeout=60, what="removed manifest's pod stopped")
