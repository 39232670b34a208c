"""Stopping a lab leaves no mount and no process behind, even when its node agent was killed."""

from __future__ import annotations

import os
import signal

import pytest

from tests.lab import netns
from tests.lab.cleanup import mounts_under
from tests.lab.masters import MasterLab, is_running, processes_in
from tests.lab.runtime import PID_DIR

pytestmark = [pytest.mark.lab_masters, pytest.mark.e2e]


def test_stop_after_agent_crash_leaves_nothing() -> None:
    if os.geteuid() != 0:
        pytest.skip("chroot masters need root")
    lab = MasterLab(f"pytest-teardown-{os.getpid()}", 1, components=("kube-apiserver",))
    lab.start()
    directory = lab.directory
    try:
        master = lab.masters[0]
        apiserver_pid = master.pod("kube-apiserver")["containers"][0]["pid"]
        assert apiserver_pid in processes_in(directory)
        assert mounts_under(directory.resolve())
        network = lab.network
        assert network.record_path.exists() and master.net.path.exists()
        os.kill(master.agent.pid, signal.SIGKILL)  # the kubelet dies; its pods keep running
        master.agent.stop()
        assert is_running(apiserver_pid)
        assert netns.processes_in(network) == [apiserver_pid]
    finally:
        MasterLab.stop_recorded(directory)
    assert not directory.exists()
    assert mounts_under(directory.resolve()) == []
    assert processes_in(directory) == []
    assert not is_running(apiserver_pid)
    assert not master.net.path.exists() and not network.record_path.exists()
    assert not {network.bridge, master.net.host_veth} & netns.host_links()
    assert not [r for r in PID_DIR.glob("*.json") if f"{directory}/" in r.read_text()], "stale PID records"
    lab.etcd.stop()  # already stopped by PID above; this only releases the client session
