"""A lab's network: names and addresses, subnet allocation, and the cleanup of orphaned networks."""

from __future__ import annotations

import ipaddress
import json
import os
import subprocess
import sys

import pytest

from tests.lab import netns
from tests.lab.process import ManagedProcess
from tests.lab.runtime import LabError, wait_for


def test_plan_names_fit_in_ifnamsiz_and_addresses_follow_the_index() -> None:
    network = netns.plan(254, [f"master{i}" for i in range(1, 100)], "/labs/x", os.getpid())
    assert network.bridge == "tkms254" and network.gateway == "10.213.254.1"
    assert network.masters[0] == netns.MasterNet("tkms254-master1", "tkms254-1", "10.213.254.11")
    assert network.masters[-1].host_veth == "tkms254-99" and network.masters[-1].address == "10.213.254.109"
    assert all(len(m.host_veth) <= netns.IFNAMSIZ for m in network.masters)
    assert netns.LabNetwork.from_record(json.loads(json.dumps(network.to_record()))) == network
    with pytest.raises(LabError, match="do not fit"):
        netns.plan(1, [f"m{i}" for i in range(250)], "/labs/x", os.getpid())


def test_free_index_skips_other_labs_used_subnets_and_taken_names() -> None:
    used = [ipaddress.IPv4Network("10.213.2.7/32"), ipaddress.IPv4Network("10.213.3.0/24")]
    assert netns.free_index({1}, used, {"tkms4"}) == 5
    assert netns.free_index(set(), used, {"tkms1-2"}) == 4  # a leftover veth of lab 1
    with pytest.raises(LabError, match="no free"):
        netns.free_index(set(), [ipaddress.IPv4Network("10.0.0.0/8")], set())


@pytest.mark.skipif(os.geteuid() != 0, reason="network namespaces need root")
def test_cleanup_deletes_a_dead_owners_network_once_nothing_runs_inside(tmp_path) -> None:
    finished = subprocess.Popen(["true"])
    finished.wait()  # a dead owner
    with netns._allocation_lock():
        index = netns.free_index(netns.recorded_indexes(), netns.host_networks(), netns.host_links())
        network = netns.plan(index, ["master1", "master2"], str(tmp_path), finished.pid)
        network.record_path.write_text(json.dumps(network.to_record()))
    try:
        netns.create(network)
        inside = network.masters[0]
        sleeper = ManagedProcess(
            "in-netns",
            [*inside.enter(), sys.executable, "-c", "import time; time.sleep(600)"],
            tmp_path / "sleeper.log",
            pid_dir=tmp_path / "pids",
        ).start()
        wait_for(lambda: netns.processes_in(network) == [sleeper.pid], timeout=10, what="sleeper in netns")
        assert network.bridge not in netns.reap_orphans(), "deleted while a process runs inside"
        assert inside.path.exists()
        sleeper.stop()

        assert network.bridge in netns.reap_orphans()
        assert not any(m.path.exists() for m in network.masters)
        links = netns.host_links()
        assert not {network.bridge, *(m.host_veth for m in network.masters)} & links
        assert not network.record_path.exists()
    finally:
        netns.destroy(network)
