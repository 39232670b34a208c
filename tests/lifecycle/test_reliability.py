"""The reliability suite (make reliability): three lab masters, 200 Secrets of known values, the lifecycle
playbooks run in turn with a fault injected into each, and after every step 200/200 Secrets readable with
their original values on every master and stored in etcd with the prefix expected for that step.

Steps, in this order on one cluster (docs/lifecycle.md):
  site.yml     the KMS plugin SIGKILLed on master2 while the read phase restarts master2's apiserver;
  rotate.yml   the emulator (Tencent KMS) throttling Encrypt and Decrypt and adding 20-60 ms to every call;
  disable.yml  master2's kube-apiserver cannot start again: the run must restore master2 and stop, with
               nothing lost; then the same playbook, run again without the fault, finishes.
"""

from __future__ import annotations

import os
import signal
import subprocess
from collections.abc import Iterator
from pathlib import Path

import pytest
import requests
import yaml

from tests.lab.masters import REPO, Master
from tests.lab.playbooks import output, playbook_argv, playbook_env, recap
from tests.lab.runtime import wait_for

from .conftest import PROVIDER, RELIABILITY_TABLE, Cluster, Row, running_cluster

pytestmark = [pytest.mark.e2e, pytest.mark.lab_masters, pytest.mark.reliability]
SECRETS = 200
PLUGIN_POD = "tke-kms-plugin"
ROTATED = "tke-kms-rotated"  # the provider and plugin a rotation moves to
ROTATED_SOCKET = f"/var/run/tke-kms-plugin/{ROTATED}.sock"
ROTATION = (
    f"-e tke_kms_rotate_provider_name={ROTATED} -e tke_kms_rotate_key_alias=reliability-key2"
    " -e tke_kms_rotate_delete_old_key=true"
).split()
AFTER_ROTATION = (
    f"-e tke_kms_provider_name={ROTATED} -e tke_kms_plugin_name={ROTATED} -e tke_kms_socket={ROTATED_SOCKET}"
).split()
CONFIG = "/etc/kubernetes/encryption-provider-config.yaml"
ENCRYPTION_FLAG = "--encryption-provider-config="
# Installed on a master by the disable step: kube-apiserver refuses to start while the fault file exists.
FAULTY_APISERVER = """#!/bin/sh
if [ -e /etc/kubernetes/lab-fault-apiserver-down ]; then
    echo "lab fault: kube-apiserver does not come back on this master" >&2
    exit 1
fi
exec /usr/local/bin/kube-apiserver "$@"
"""


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


def providers(master: Master) -> list[str]:
    """The provider labels of this master's encryption config (kms:<name> or the type)."""
    config = yaml.safe_load(master.path(CONFIG).read_text())
    return [
        f"kms:{p['kms']['name']}" if "kms" in p else next(iter(p))
        for p in config["resources"][0]["providers"]
    ]


def manifest_text(master: Master) -> str:
    return (master.manifests / "kube-apiserver.yaml").read_text()


def ready(cluster: Cluster, master: Master) -> bool:
    try:
        return cluster.lab.readyz(master)
    except requests.RequestException:
        return False


def run_logged(args: list[str], log: Path) -> subprocess.Popen:
    with open(log, "w") as out:
        return subprocess.Popen(
            playbook_argv(*args), cwd=REPO, env=playbook_env(), stdout=out, stderr=subprocess.STDOUT
        )


@pytest.mark.timeout(1800)
def test_site_yml_with_the_plugin_killed_mid_roll(suite: Cluster, tmp_path) -> None:
    cluster = suite
    assert check_intact(cluster, b"k8s\x00")[0] == f"{SECRETS}/{SECRETS}"  # in the clear (protobuf)
    victim = cluster.lab.masters[1]
    log = tmp_path / "site.log"
    run = run_logged(["site.yml", "-i", str(cluster.lab.inventory)], log)
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


@pytest.mark.timeout(1800)
def test_rotate_yml_with_kms_throttling_and_latency(suite: Cluster) -> None:
    cluster = suite
    admin = cluster.emulator.admin
    admin.set_latency("*", fixed_ms=20, random_ms=40)
    for action in ("Encrypt", "Decrypt"):
        admin.set_throttle(action, 25)
    try:
        run = cluster.playbook("playbooks/rotate.yml", *ROTATION)
        throttled = admin.call_counts().get("Encrypt:RequestLimitExceeded", 0)
    finally:
        admin.reset_faults()
    assert run.returncode == 0, output(run)
    assert throttled > 0  # the fault did happen, and the plugins rode it out
    for master in cluster.lab.masters:
        assert providers(master) == [f"kms:{ROTATED}", "identity"], master.name
        assert not master.pods(PLUGIN_POD), f"{master.name} still runs the old plugin"
        assert master.pods(ROTATED), f"{master.name} does not run the new plugin"
    states = cluster.key_states()
    assert (states["lifecycle-test"], states["reliability-key2"]) == ("PendingDelete", "Enabled"), states
    intact, storage = check_intact(cluster, f"k8s:enc:kms:v1:{ROTATED}:".encode())
    RELIABILITY_TABLE.append(
        Row("rotate.yml", f"KMS throttled to 25/s, +20-60 ms ({throttled} throttled)", intact, storage)
    )

    again = cluster.playbook("playbooks/rotate.yml", *ROTATION)
    assert again.returncode == 0, output(again)
    assert all(changed == 0 for changed, _u, _f in recap(again).values()), output(again)


@pytest.mark.timeout(1800)
def test_disable_yml_with_an_apiserver_that_does_not_come_back(suite: Cluster, tmp_path) -> None:
    cluster = suite
    victim = cluster.lab.masters[1]
    untouched = cluster.lab.masters[2]
    victim_before, untouched_before = manifest_text(victim), manifest_text(untouched)
    wrapper = victim.path("/usr/local/sbin/kube-apiserver")  # found before /usr/local/bin on the PATH
    wrapper.write_text(FAULTY_APISERVER)
    wrapper.chmod(0o755)
    fault = victim.path("/etc/kubernetes/lab-fault-apiserver-down")
    fault.touch()
    log = tmp_path / "disable-faulty.log"
    run = run_logged(["playbooks/disable.yml", "-i", str(cluster.lab.inventory), *AFTER_ROTATION], log)
    try:
        # The fault lasts until the run has put master2's manifest back, as a broken host would until fixed.
        wait_for(
            lambda: manifest_text(victim) != victim_before or run.poll() is not None,
            timeout=900,
            what=f"disable.yml changing {victim.name}",
            interval=0.2,
        )
        wait_for(
            lambda: manifest_text(victim) == victim_before or run.poll() is not None,
            timeout=900,
            what=f"disable.yml restoring {victim.name}",
            interval=0.2,
        )
        fault.unlink()
        returncode = run.wait(timeout=900)
    finally:
        fault.unlink(missing_ok=True)
        if run.poll() is None:
            run.kill()
            run.wait()
    text = log.read_text()
    assert returncode != 0, text[-6000:]
    assert f"{victim.name}: " in text and "Restored the previous manifest" in text, text[-6000:]
    assert manifest_text(victim) == victim_before
    assert manifest_text(untouched) == untouched_before  # serial 1 + any_errors_fatal: the roll stopped
    assert providers(cluster.lab.masters[0])[0] == "identity"  # master1 was done before the fault
    wait_for(lambda: ready(cluster, victim), timeout=180, what=f"{victim.name} back", interval=0.5)
    intact, storage = check_intact(cluster, f"k8s:enc:kms:v1:{ROTATED}:".encode())
    RELIABILITY_TABLE.append(
        Row("disable.yml", f"{victim.name} apiserver does not come back: restored, stopped", intact, storage)
    )

    run = cluster.playbook("playbooks/disable.yml", *AFTER_ROTATION)
    assert run.returncode == 0, output(run)
    for master in cluster.lab.masters:
        assert ENCRYPTION_FLAG not in manifest_text(master), master.name
        assert not master.pods(ROTATED), f"{master.name} still runs the plugin"
    intact, storage = check_intact(cluster, b"k8s\x00")  # in the clear (protobuf)
    RELIABILITY_TABLE.append(Row("disable.yml", "none (run again after the fault)", intact, storage))

    again = cluster.playbook("playbooks/disable.yml", *AFTER_ROTATION)
    assert again.returncode == 0, output(again)
    assert all(changed == 0 for changed, _u, _f in recap(again).values()), output(again)
