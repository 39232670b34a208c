"""The reliability suite (make reliability): three lab masters, 200 Secrets of known values, the lifecycle
playbooks run in turn with a fault injected into each, and after every step 200/200 Secrets readable with
their original values on every master and stored in etcd with the prefix expected for that step.

Steps so far: site.yml with the KMS plugin SIGKILLed on master2 while the read phase restarts master2's
apiserver. rotate.yml and disable.yml join when they exist (docs/lifecycle.md).
"""

from __future__ import annotations

import os
import signal
import subprocess
from collections.abc import Iterator

import pytest

from tests.lab.masters import REPO, Master
from tests.lab.runtime import wait_for

from .conftest import (
    PROVIDER,
    RELIABILITY_TABLE,
    Cluster,
    Row,
    playbook_argv,
    playbook_env,
    running_cluster,
)

pytestmark = [pytest.mark.e2e, pytest.mark.lab_masters, pytest.mark.reliability]
SECRETS = 200
PLUGIN_POD = "tke-kms-plugin"


@pytest.fixture(scope="module")
def suite() -> Iterator[Cluster]:
    with running_cluster("reliability", 3, SECRETS) as cluster:
        yield cluster


def plugin_container(master: Master) -> dict | None:
    pods = master.pods(PLUGIN_POD)
    return pods[0]["containers"][0] if pods and pods[0]["containers"] else None


def kill_plugin(master: Master) -> int:
    """SIGKILL the plugin container of this master (a process of the lab, checked to run in its chroot);
    returns its restart count before the kill."""
    container = wait_for(
        lambda: (c := plugin_container(master)) and c.get("pid") and c,
        timeout=60,
        what=f"the plugin container on {master.name}",
    )
    pid = container["pid"]
    assert os.readlink(f"/proc/{pid}/root") == str(master.root.resolve())
    os.kill(pid, signal.SIGKILL)
    return container["restartCount"]


def check_intact(cluster: Cluster, prefix: bytes) -> tuple[str, str]:
    """Every seeded Secret readable with its value on every master, and stored with `prefix`."""
    for master, found in cluster.read_seeded().items():
        lost = {name for name, value in cluster.seeded.items() if found.get(name) != value}
        assert not lost, f"{master}: {len(lost)} Secrets missing or changed, e.g. {sorted(lost)[:5]}"
    stored = cluster.etcd_secrets("default")
    seeded = [stored.get(f"/registry/secrets/default/{name}", b"") for name in cluster.seeded]
    wrong = sum(not value.startswith(prefix) for value in seeded)
    assert wrong == 0, f"{wrong} of {len(seeded)} seeded Secrets are not stored as {prefix!r}"
    return f"{len(seeded)}/{len(cluster.seeded)}", f"all {prefix.decode(errors='replace')!r}"


@pytest.mark.timeout(1800)
def test_site_yml_with_the_plugin_killed_mid_roll(suite: Cluster, tmp_path) -> None:
    cluster = suite
    assert check_intact(cluster, b"k8s\x00")[0] == f"{SECRETS}/{SECRETS}"  # in the clear (protobuf)
    victim = cluster.lab.masters[1]
    log = tmp_path / "site.log"
    with open(log, "w") as out:
        run = subprocess.Popen(
            playbook_argv("site.yml", "-i", str(cluster.lab.inventory)),
            cwd=REPO,
            env=playbook_env(),
            stdout=out,
            stderr=subprocess.STDOUT,
        )
    try:
        marker = f"Wait for kube-apiserver to restart with the new configuration on {victim.name}"
        wait_for(
            lambda: marker in log.read_text() or run.poll() is not None,
            timeout=600,
            what=f"the read phase restarting {victim.name}",
            interval=0.5,
        )
        assert run.poll() is None, log.read_text()[-6000:]
        restarts = kill_plugin(victim)
        returncode = run.wait(timeout=900)
    finally:
        if run.poll() is None:
            run.kill()
            run.wait()
    assert returncode == 0, log.read_text()[-6000:]
    assert plugin_container(victim)["restartCount"] > restarts  # the fault did happen
    intact, storage = check_intact(cluster, f"k8s:enc:kms:v1:{PROVIDER}:".encode())
    RELIABILITY_TABLE.append(
        Row("site.yml", f"plugin SIGKILLed on {victim.name} mid read phase", intact, storage)
    )
