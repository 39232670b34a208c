"""A lab's own network: one bridge on the host, one network namespace per master.

Every master gets what a real control-plane node has: its own loopback and its own address, so its
components listen on the production ports (6443, 10257, 10259, the plugin's 127.0.0.1:9876) exactly
as on every other master. Per lab:

  bridge  tkms<N>            10.213.<N>.1/24 in the host's namespace: the lab's gateway, where etcd
                             and the KMS emulator listen and from where tests reach the apiservers
  netns   tkms<N>-<master>   lo up, eth0 = 10.213.<N>.<10+i>/24 (veth into the bridge, host end
                             tkms<N>-<i>); no default route, so nothing leaves the lab's subnet

N is the lowest index whose /24 no address, route, link or other lab uses, chosen under a lock. The
record (RUN_ROOT/net/tkms<N>.json, owner PID + start time) is written before anything is created, so
`python -m tests.lab.cleanup` can remove the network of a lab whose owner died.
"""

from __future__ import annotations

import fcntl
import ipaddress
import json
import os
import subprocess
from collections.abc import Iterator
from contextlib import contextmanager
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from tests.lab.process import proc_is_live, proc_start_time
from tests.lab.runtime import RUN_ROOT, LabError

NET_DIR = RUN_ROOT / "net"
NETNS_DIR = Path("/run/netns")
NSENTER = "/usr/bin/nsenter"
NAME_PREFIX = "tkms"
SUBNET = "10.213.{index}.0/24"
INDEXES = range(1, 255)
FIRST_HOST = 10  # master i (1-based) is .10+i
IFNAMSIZ = 15  # longest Linux interface name


@dataclass(frozen=True)
class MasterNet:
    """One master's network namespace and the address of its eth0."""

    namespace: str
    host_veth: str
    address: str

    @property
    def path(self) -> Path:
        return NETNS_DIR / self.namespace

    def enter(self) -> list[str]:
        """argv prefix that runs a command in this namespace (network only: mounts stay shared)."""
        return [NSENTER, f"--net={self.path}", "--"]


@dataclass(frozen=True)
class LabNetwork:
    index: int
    masters: tuple[MasterNet, ...]
    lab_directory: str
    owner_pid: int
    owner_start_time: str | None

    @property
    def bridge(self) -> str:
        return f"{NAME_PREFIX}{self.index}"

    @property
    def subnet(self) -> ipaddress.IPv4Network:
        return ipaddress.IPv4Network(SUBNET.format(index=self.index))

    @property
    def gateway(self) -> str:
        return str(self.subnet.network_address + 1)

    @property
    def record_path(self) -> Path:
        return NET_DIR / f"{self.bridge}.json"

    def to_record(self) -> dict[str, Any]:
        return {
            "index": self.index,
            "bridge": self.bridge,
            "gateway": self.gateway,
            "masters": [vars(m) for m in self.masters],
            "lab_directory": self.lab_directory,
            "owner_pid": self.owner_pid,
            "owner_start_time": self.owner_start_time,
        }

    @classmethod
    def from_record(cls, record: dict[str, Any]) -> LabNetwork:
        return cls(
            record["index"],
            tuple(MasterNet(**m) for m in record["masters"]),
            record["lab_directory"],
            record["owner_pid"],
            record["owner_start_time"],
        )


def plan(index: int, master_names: list[str], lab_directory: str, owner_pid: int) -> LabNetwork:
    """The names and addresses of a lab network with subnet `index` (nothing created)."""
    if len(master_names) > 254 - FIRST_HOST:
        raise LabError(f"{len(master_names)} masters do not fit in one /24")
    subnet = ipaddress.IPv4Network(SUBNET.format(index=index))
    masters = tuple(
        MasterNet(
            namespace=f"{NAME_PREFIX}{index}-{name}",
            host_veth=f"{NAME_PREFIX}{index}-{number}",
            address=str(subnet.network_address + FIRST_HOST + number),
        )
        for number, name in enumerate(master_names, start=1)
    )
    for name in [f"{NAME_PREFIX}{index}", *(m.host_veth for m in masters)]:
        if len(name) > IFNAMSIZ:
            raise LabError(f"interface name {name!r} is longer than {IFNAMSIZ} characters")
    return LabNetwork(index, masters, lab_directory, owner_pid, proc_start_time(owner_pid))


def _ip(*args: str, check: bool = True) -> subprocess.CompletedProcess[str]:
    result = subprocess.run(["ip", *args], capture_output=True, text=True, check=False, timeout=30)
    if check and result.returncode != 0:
        raise LabError(f"ip {' '.join(args)} failed ({result.returncode}): {result.stderr.strip()}")
    return result


def host_networks() -> list[ipaddress.IPv4Network]:
    """Every IPv4 destination the host routes (local addresses included: table all)."""
    routes = json.loads(_ip("-j", "-4", "route", "show", "table", "all").stdout or "[]")
    found = []
    for route in routes:
        destination = route.get("dst", "default")
        if destination != "default":
            found.append(ipaddress.IPv4Network(destination, strict=False))
    return found


def host_links() -> set[str]:
    return {link["ifname"] for link in json.loads(_ip("-j", "link", "show").stdout or "[]")}


def recorded_indexes() -> set[int]:
    return {network.index for network in recorded()}


def free_index(taken: set[int], networks: list[ipaddress.IPv4Network], links: set[str]) -> int:
    """The lowest subnet index not recorded by another lab, not overlapping a route, no link named so."""
    for index in INDEXES:
        subnet = ipaddress.IPv4Network(SUBNET.format(index=index))
        if index in taken or any(subnet.overlaps(n) for n in networks):
            continue
        bridge = f"{NAME_PREFIX}{index}"
        if any(link == bridge or link.startswith(f"{bridge}-") for link in links):
            continue
        return index
    raise LabError("no free 10.213.N.0/24 left for a lab network (see RUN_ROOT/net)")


@contextmanager
def _allocation_lock() -> Iterator[None]:
    NET_DIR.mkdir(parents=True, exist_ok=True)
    with (NET_DIR / ".lock").open("w") as lock:
        fcntl.flock(lock, fcntl.LOCK_EX)
        yield


def allocate(master_names: list[str], lab_directory: Path) -> LabNetwork:
    """Choose a free subnet and record it (owned by this process); create it with `create`."""
    with _allocation_lock():
        index = free_index(recorded_indexes(), host_networks(), host_links())
        network = plan(index, master_names, str(lab_directory), os.getpid())
        network.record_path.write_text(json.dumps(network.to_record(), indent=2))
    return network


def create(network: LabNetwork) -> None:
    bridge, prefix = network.bridge, network.subnet.prefixlen
    _ip("link", "add", bridge, "type", "bridge")
    _ip("addr", "add", f"{network.gateway}/{prefix}", "dev", bridge)
    _ip("link", "set", bridge, "up")
    for master in network.masters:
        _ip("netns", "add", master.namespace)
        peer = ("peer", "name", "eth0", "netns", master.namespace)
        _ip("link", "add", master.host_veth, "type", "veth", *peer)
        _ip("link", "set", master.host_veth, "master", bridge, "up")
        _ip("-n", master.namespace, "addr", "add", f"{master.address}/{prefix}", "dev", "eth0")
        _ip("-n", master.namespace, "link", "set", "eth0", "up")
        _ip("-n", master.namespace, "link", "set", "lo", "up")


def _netns_inode(path: Path) -> tuple[int, int] | None:
    try:
        stat = path.stat()
    except OSError:
        return None
    return stat.st_dev, stat.st_ino


def processes_in(network: LabNetwork) -> list[int]:
    """PIDs of processes inside any of this network's namespaces (all of them are the lab's)."""
    wanted = {inode for m in network.masters if (inode := _netns_inode(m.path))}
    if not wanted:
        return []
    found = []
    for entry in Path("/proc").iterdir():
        if entry.name.isdigit() and _netns_inode(entry / "ns/net") in wanted:
            found.append(int(entry.name))
    return found


def destroy(network: LabNetwork) -> None:
    """Delete the namespaces, veths and bridge (whatever of them exists), then the record.

    Callers stop the processes inside first (`processes_in`); deleting a veth end removes its peer."""
    for master in network.masters:
        _ip("netns", "delete", master.namespace, check=False)
        _ip("link", "delete", master.host_veth, check=False)
    _ip("link", "delete", network.bridge, check=False)
    left = [m.namespace for m in network.masters if m.path.exists()]
    links = host_links()
    left += [name for name in (network.bridge, *(m.host_veth for m in network.masters)) if name in links]
    if left:
        raise LabError(f"lab network {network.bridge}: could not delete {left}")
    network.record_path.unlink(missing_ok=True)


def orphaned(network: LabNetwork) -> bool:
    """Its owner died and no process is inside it any more (a demo lab outlives its owner: still used)."""
    return not proc_is_live(network.owner_pid, network.owner_start_time) and not processes_in(network)


def recorded() -> list[LabNetwork]:
    found = []
    for path in sorted(NET_DIR.glob("*.json")):
        try:
            found.append(LabNetwork.from_record(json.loads(path.read_text())))
        except (OSError, ValueError, KeyError, TypeError):
            continue
    return found


def reap_orphans() -> list[str]:
    """Delete the networks of labs whose owner died; returns the bridges removed."""
    with _allocation_lock():
        removed = []
        for network in recorded():
            if orphaned(network):
                destroy(network)
                removed.append(network.bridge)
        return removed
