"""Chroot masters that look and behave like kubeadm control-plane nodes, for Ansible and for tests.

One cached debootstrap rootfs (tests/lab/build/rootfs.sh) is the read-only bottom layer. A per-lab
layer on top adds the control-plane binaries in /usr/local/bin, our plugin installed into the venv,
and `/tke-kms-plugin` (the image's entrypoint). Each master is an overlayfs mount of those two layers
with its own upper dir, plus /proc, holding a kubeadm-like /etc/kubernetes (static-pod manifests,
pki, kubeconfigs). Each master has its own network namespace on a per-lab bridge (tests/lab/netns.py):
its own loopback and address, so its components listen on kubeadm's ports (6443, 10257, 10259) and
the plugin on its default 127.0.0.1:9876, the same on every master. They share one external etcd on
the bridge's host address. A node agent per master (tests/lab/node_agent) plays the kubelet inside
that master's namespace; Ansible enters it too (`ansible_chroot_exe`, a wrapper around chroot).

`MasterLab(kms_v2=True)`: "v2 masters" whose kube-apiserver is the lab's KMS v2 apiserver
(tests/lab/kube_apiserver, Kubernetes 1.36 library code) under a kubeadm 1.30+ manifest. That
apiserver serves only namespaces, secrets and configmaps, so those masters run only the
kube-apiserver static pod and their node agents do not report to the API (no Node, Lease, mirror pod).

Everything lives under RUN_ROOT/masters/<lab name>/ and every process is a recorded ManagedProcess,
so `python -m tests.lab.cleanup` can reap a lab whose owner died (and its network).
"""

from __future__ import annotations

import fcntl
import functools
import json
import os
import shutil
import signal
import subprocess
import sys
import time
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import requests
import yaml

from tests.lab import binaries, netns
from tests.lab.apiserver import SERVICE_CIDR, SERVICE_IP, lab_env
from tests.lab.cleanup import mounts_under, unmount_all
from tests.lab.etcd import Etcd
from tests.lab.netns import LabNetwork, MasterNet
from tests.lab.node_agent.config import AgentConfig
from tests.lab.pki import LabPKI
from tests.lab.process import ManagedProcess, proc_start_time
from tests.lab.runtime import LOOPBACK, PID_DIR, RUN_ROOT, LabError, wait_for

REPO = Path(__file__).resolve().parents[2]
ROOTFS_SCRIPT = REPO / "tests/lab/build/rootfs.sh"
MASTERS_ROOT = RUN_ROOT / "masters"
CHROOT = "/usr/sbin/chroot"
PLUGIN_VENV = "/opt/tke-kms-plugin/venv"
PLUGIN_ENTRYPOINT = "/tke-kms-plugin"
CONTROL_PLANE = ("kube-apiserver", "kube-controller-manager", "kube-scheduler")
# The KMS v2 apiserver serves no pods, nodes or leases: no controller-manager or scheduler can run on it.
V2_CONTROL_PLANE = ("kube-apiserver",)
# kubeadm's ports, the same on every master: each master has its own network namespace.
APISERVER_PORT = 6443
CONTROLLER_MANAGER_PORT = 10257
SCHEDULER_PORT = 10259
READY_TIMEOUT = 240.0
SYSTEM_NODE_CRITICAL = 2000001000  # the PriorityClass's value, which kubeadm 1.30+ writes as `priority`
KUBE_VERSION = binaries.KUBE_VERSION  # the 1.20 masters' control plane
STATE_FILE = "lab.json"
LAB_REGION = "ap-guangzhou"


def rollout_vars(kms_endpoint: str, secret_id: str, secret_key: str, **overrides: Any) -> dict[str, Any]:
    """What a user puts in group_vars to roll out against these masters (see docs/lab-masters.md)."""
    return {
        "tke_kms_region": LAB_REGION,
        "tke_kms_secret_id": secret_id,
        "tke_kms_secret_key": secret_key,
        "tke_kms_api_endpoint": kms_endpoint,
        "tke_kms_plugin_image": "localhost/tke-kms-plugin:0.1.0",
        **overrides,
    }


@functools.cache
def rootfs() -> Path:
    """The cached rootfs directory (built on first use, ~2-4 min)."""
    result = subprocess.run(
        ["bash", str(ROOTFS_SCRIPT)], check=False, capture_output=True, text=True, timeout=1800
    )
    if result.returncode != 0:
        raise LabError(f"rootfs.sh failed ({result.returncode}):\n{result.stderr[-3000:]}")
    return Path(result.stdout.strip().splitlines()[-1])


def _run(argv: list[str], what: str, **kwargs: Any) -> subprocess.CompletedProcess[str]:
    result = subprocess.run(argv, capture_output=True, text=True, check=False, **kwargs)
    if result.returncode != 0:
        raise LabError(f"{what} failed ({result.returncode}): {result.stderr.strip()[-2000:]}")
    return result


def mount_overlay(lowers: list[Path], upper: Path, work: Path, target: Path) -> None:
    for directory in (upper, work, target):
        directory.mkdir(parents=True, exist_ok=True)
    options = f"lowerdir={':'.join(str(p) for p in lowers)},upperdir={upper},workdir={work}"
    _run(["mount", "-t", "overlay", "overlay", "-o", options, str(target)], f"overlay mount on {target}")


def chroot_env() -> dict[str, str]:
    """A clean environment for commands run inside a chroot (the host's PIP_*/PATH point at host paths)."""
    return {
        "PATH": "/usr/local/sbin:/usr/local/bin:/usr/sbin:/usr/bin:/sbin:/bin",
        "HOME": "/root",
        "LANG": "C.UTF-8",
    }


def _link_or_copy(source: Path, target: Path) -> None:
    target.parent.mkdir(parents=True, exist_ok=True)
    target.unlink(missing_ok=True)
    try:
        os.link(source, target)  # same filesystem: instant, no extra 110 MB per binary
    except OSError:
        shutil.copy2(source, target)


def build_plugin_wheel(wheels: Path) -> Path:
    """Our plugin as a wheel in `wheels`. One build at a time on this machine: pip builds in the source
    tree's plugin_server/build, and two labs starting together (the reliability lanes) would collide there."""
    shutil.rmtree(wheels, ignore_errors=True)
    RUN_ROOT.mkdir(parents=True, exist_ok=True)
    with (RUN_ROOT / ".plugin-wheel.lock").open("w") as lock:
        fcntl.flock(lock, fcntl.LOCK_EX)
        _run(
            [
                sys.executable,
                "-m",
                "pip",
                "wheel",
                "-q",
                "--no-deps",
                "-w",
                str(wheels),
                str(REPO / "plugin_server"),
            ],
            "building the plugin wheel",
            timeout=600,
        )
    return next(wheels.glob("*.whl"))


def build_layer(directory: Path, base: Path, programs: dict[str, Path]) -> Path:
    """The per-lab layer: the control-plane `programs` (name in /usr/local/bin -> binary), our plugin
    in the venv, and /tke-kms-plugin."""
    layer = directory / "layer"
    if (layer / ".complete").exists():
        return layer
    shutil.rmtree(layer, ignore_errors=True)
    for name, binary in programs.items():
        _link_or_copy(binary, layer / "usr/local/bin" / name)
    wheel = build_plugin_wheel(directory / "wheels")
    staging = directory / "layer-build"
    mount_overlay([base], layer, staging / "work", staging / "root")
    try:
        shutil.copy2(wheel, staging / "root/tmp" / wheel.name)
        _run(
            [
                CHROOT,
                str(staging / "root"),
                f"{PLUGIN_VENV}/bin/pip",
                "install",
                "-q",
                "--no-index",
                "--no-deps",
                "--disable-pip-version-check",
                f"/tmp/{wheel.name}",
            ],
            "installing the plugin into the rootfs venv",
            env=chroot_env(),
            timeout=600,
        )
        (staging / "root/tmp" / wheel.name).unlink()
    finally:
        unmount_all(staging)
    shutil.rmtree(staging, ignore_errors=True)
    entrypoint = layer / PLUGIN_ENTRYPOINT.lstrip("/")
    script = f'#!/bin/sh\n# The image entrypoint.\nexec {PLUGIN_VENV}/bin/tke-kms-plugin "$@"\n'
    entrypoint.write_text(script)
    entrypoint.chmod(0o755)
    (layer / ".complete").touch()
    return layer


CHROOT_EXE = """#!/bin/sh
# community.general.chroot runs `<this> <chroot dir> <command>`: enter {name}'s network namespace first.
exec {enter} {chroot} "$@"
"""


@dataclass
class Master:
    """One chroot master: its overlay, its network namespace, its node agent."""

    name: str
    directory: Path
    net: MasterNet
    agent: ManagedProcess | None = field(default=None, repr=False)
    apiserver_port: int = field(default=APISERVER_PORT, init=False)
    controller_manager_port: int = field(default=CONTROLLER_MANAGER_PORT, init=False)
    scheduler_port: int = field(default=SCHEDULER_PORT, init=False)

    @property
    def root(self) -> Path:
        """The chroot directory: `ansible_host` for community.general.chroot."""
        return self.directory / "root"

    @property
    def address(self) -> str:
        """The master's own address (its eth0 in its namespace), as kubeadm's advertise address."""
        return self.net.address

    @property
    def url(self) -> str:
        return f"https://{self.address}:{self.apiserver_port}"

    @property
    def chroot_exe(self) -> Path:
        """`ansible_chroot_exe`: chroot inside this master's network namespace."""
        return self.directory / "chroot-in-netns"

    def in_netns(self, *argv: str) -> list[str]:
        """argv that runs a host command inside this master's network namespace (not in the chroot)."""
        return [*self.net.enter(), *argv]

    def write_chroot_exe(self) -> None:
        script = CHROOT_EXE.format(name=self.name, enter=" ".join(self.net.enter()), chroot=CHROOT)
        self.chroot_exe.write_text(script)
        self.chroot_exe.chmod(0o755)

    @property
    def agent_dir(self) -> Path:
        return self.directory / "agent"

    def path(self, inside: str) -> Path:
        """Host path of a path inside the chroot."""
        return self.root / inside.lstrip("/")

    @property
    def manifests(self) -> Path:
        return self.path("/etc/kubernetes/manifests")

    def mount(self, lowers: list[Path]) -> None:
        if not os.path.ismount(self.root):
            mount_overlay(lowers, self.directory / "upper", self.directory / "work", self.root)
        proc = self.path("/proc")
        if not os.path.ismount(proc):
            _run(["mount", "-t", "proc", "proc", str(proc)], f"mounting /proc in {self.name}")

    def run(self, *argv: str, check: bool = True, timeout: float = 60) -> subprocess.CompletedProcess[str]:
        """Run a command inside this master's chroot and network namespace."""
        result = subprocess.run(
            [str(self.chroot_exe), str(self.root), *argv],
            check=False,
            capture_output=True,
            text=True,
            env=chroot_env(),
            timeout=timeout,
        )
        if check and result.returncode != 0:
            raise LabError(
                f"{self.name}: {' '.join(argv)} failed ({result.returncode}): {result.stderr.strip()}"
            )
        return result

    def agent_status(self) -> dict[str, Any]:
        """The node agent's latest snapshot (state_dir/status.json)."""
        try:
            return json.loads((self.agent_dir / "status.json").read_text())
        except (OSError, ValueError):
            return {}

    def pod(self, name: str) -> dict[str, Any] | None:
        """The agent's view of pod `name` (static pods also by their manifest name, without `-<node>`)."""
        return next((p for p in self.pods() if p["name"] in (name, f"{name}-{self.name}")), None)

    def pods(self, prefix: str = "") -> list[dict[str, Any]]:
        """The pods the agent runs now (static and bound), optionally by name prefix."""
        return [p for p in self.agent_status().get("pods", []) if p["name"].startswith(prefix)]

    def to_state(self) -> dict[str, Any]:
        return {"name": self.name, "directory": str(self.directory), "net": vars(self.net)}


# -- the kubeadm-like layout inside a master


def _host_path_volume(name: str, path: str, kind: str = "DirectoryOrCreate") -> dict[str, Any]:
    return {"hostPath": {"path": path, "type": kind}, "name": name}


CA_VOLUMES = [
    ("ca-certs", "/etc/ssl/certs"),
    ("etc-ca-certificates", "/etc/ca-certificates"),
    ("usr-local-share-ca-certificates", "/usr/local/share/ca-certificates"),
    ("usr-share-ca-certificates", "/usr/share/ca-certificates"),
]


def _probe(path: str, host: str, port: int, **overrides: int) -> dict[str, Any]:
    probe = {
        "failureThreshold": 8,
        "httpGet": {"host": host, "path": path, "port": port, "scheme": "HTTPS"},
        "initialDelaySeconds": 10,
        "periodSeconds": 10,
        "timeoutSeconds": 15,
    }
    probe.update(overrides)
    return probe


def kubeadm_1_30(version: str) -> bool:
    """The layout of kubeadm 1.30+ (the v2 masters) rather than kubeadm 1.20's."""
    return tuple(int(part) for part in version.split(".")[:2]) >= (1, 30)


def static_pod(
    component: str,
    command: list[str],
    endpoint: tuple[str, int],
    mounts: list[tuple[str, str, str]],
    *,
    version: str,
    readiness: bool = False,
    annotations: dict[str, str] | None = None,
    cpu: str = "200m",
) -> dict[str, Any]:
    """A control-plane static pod as kubeadm writes it for Kubernetes `version` (keys sorted on dump,
    like kubeadm); `endpoint`: the (host, port) its probes use. kubeadm 1.30+ pulls from
    registry.k8s.io and sets the pod's priority and the RuntimeDefault seccomp profile
    (cmd/kubeadm/app/util/staticpod ComponentPod)."""
    registry = "registry.k8s.io" if kubeadm_1_30(version) else "k8s.gcr.io"
    container: dict[str, Any] = {
        "command": command,
        "image": f"{registry}/{component}:v{version}",
        "imagePullPolicy": "IfNotPresent",
        "livenessProbe": _probe("/livez" if readiness else "/healthz", *endpoint),
        "name": component,
        "resources": {"requests": {"cpu": cpu}},
        "startupProbe": _probe("/livez" if readiness else "/healthz", *endpoint, failureThreshold=24),
        "volumeMounts": [
            {"mountPath": path, "name": name, **({} if name == "flexvolume-dir" else {"readOnly": True})}
            for name, path, _kind in mounts
        ],
    }
    if readiness:
        container["readinessProbe"] = _probe("/readyz", *endpoint, failureThreshold=3, periodSeconds=1)
        del container["readinessProbe"]["initialDelaySeconds"]
    metadata: dict[str, Any] = {
        "creationTimestamp": None,
        "labels": {"component": component, "tier": "control-plane"},
        "name": component,
        "namespace": "kube-system",
    }
    if annotations:
        metadata["annotations"] = annotations
    spec: dict[str, Any] = {
        "containers": [container],
        "hostNetwork": True,
        "priorityClassName": "system-node-critical",
        "volumes": [_host_path_volume(name, path, kind) for name, path, kind in mounts],
    }
    if kubeadm_1_30(version):
        spec["priority"] = SYSTEM_NODE_CRITICAL
        spec["securityContext"] = {"seccompProfile": {"type": "RuntimeDefault"}}
    return {"apiVersion": "v1", "kind": "Pod", "metadata": metadata, "spec": spec, "status": {}}


def apiserver_manifest(master: Master, etcd_url: str, version: str) -> dict[str, Any]:
    """kubeadm's kube-apiserver manifest for `version`: 1.30+ has no `--insecure-port` (removed in 1.24)."""
    pki = "/etc/kubernetes/pki"
    command = [
        "kube-apiserver",
        f"--advertise-address={master.address}",
        "--allow-privileged=true",
        "--authorization-mode=Node,RBAC",
        f"--client-ca-file={pki}/ca.crt",
        "--enable-admission-plugins=NodeRestriction",
        "--enable-bootstrap-token-auth=true",
        f"--etcd-cafile={pki}/etcd/ca.crt",
        f"--etcd-certfile={pki}/apiserver-etcd-client.crt",
        f"--etcd-keyfile={pki}/apiserver-etcd-client.key",
        f"--etcd-servers={etcd_url}",
        *([] if kubeadm_1_30(version) else ["--insecure-port=0"]),
        f"--kubelet-client-certificate={pki}/apiserver-kubelet-client.crt",
        f"--kubelet-client-key={pki}/apiserver-kubelet-client.key",
        "--kubelet-preferred-address-types=InternalIP,ExternalIP,Hostname",
        f"--proxy-client-cert-file={pki}/front-proxy-client.crt",
        f"--proxy-client-key-file={pki}/front-proxy-client.key",
        "--requestheader-allowed-names=front-proxy-client",
        f"--requestheader-client-ca-file={pki}/front-proxy-ca.crt",
        "--requestheader-extra-headers-prefix=X-Remote-Extra-",
        "--requestheader-group-headers=X-Remote-Group",
        "--requestheader-username-headers=X-Remote-User",
        f"--secure-port={master.apiserver_port}",
        "--service-account-issuer=https://kubernetes.default.svc.cluster.local",
        f"--service-account-key-file={pki}/sa.pub",
        f"--service-account-signing-key-file={pki}/sa.key",
        f"--service-cluster-ip-range={SERVICE_CIDR}",
        f"--tls-cert-file={pki}/apiserver.crt",
        f"--tls-private-key-file={pki}/apiserver.key",
    ]
    mounts = [(n, p, "DirectoryOrCreate") for n, p in CA_VOLUMES] + [("k8s-certs", pki, "DirectoryOrCreate")]
    endpoint_key = "kubeadm.kubernetes.io/kube-apiserver.advertise-address.endpoint"
    endpoint = {endpoint_key: f"{master.address}:{master.apiserver_port}"}
    return static_pod(
        "kube-apiserver",
        command,
        (master.address, master.apiserver_port),
        sorted(mounts),
        version=version,
        readiness=True,
        annotations=endpoint,
        cpu="250m",
    )


def controller_manager_manifest(master: Master) -> dict[str, Any]:
    conf, pki = "/etc/kubernetes/controller-manager.conf", "/etc/kubernetes/pki"
    command = [
        "kube-controller-manager",
        f"--authentication-kubeconfig={conf}",
        f"--authorization-kubeconfig={conf}",
        f"--bind-address={LOOPBACK}",
        f"--client-ca-file={pki}/ca.crt",
        "--cluster-name=kubernetes",
        f"--cluster-signing-cert-file={pki}/ca.crt",
        f"--cluster-signing-key-file={pki}/ca.key",
        "--controllers=*,bootstrapsigner,tokencleaner",
        f"--kubeconfig={conf}",
        "--leader-elect=true",
        "--port=0",
        f"--requestheader-client-ca-file={pki}/front-proxy-ca.crt",
        f"--root-ca-file={pki}/ca.crt",
        f"--service-account-private-key-file={pki}/sa.key",
        f"--service-cluster-ip-range={SERVICE_CIDR}",
        "--use-service-account-credentials=true",
    ]
    mounts = [(n, p, "DirectoryOrCreate") for n, p in CA_VOLUMES] + [
        ("flexvolume-dir", "/usr/libexec/kubernetes/kubelet-plugins/volume/exec", "DirectoryOrCreate"),
        ("k8s-certs", pki, "DirectoryOrCreate"),
        ("kubeconfig", conf, "FileOrCreate"),
    ]
    endpoint = (LOOPBACK, master.controller_manager_port)
    return static_pod("kube-controller-manager", command, endpoint, sorted(mounts), version=KUBE_VERSION)


def scheduler_manifest(master: Master) -> dict[str, Any]:
    conf = "/etc/kubernetes/scheduler.conf"
    command = [
        "kube-scheduler",
        f"--authentication-kubeconfig={conf}",
        f"--authorization-kubeconfig={conf}",
        f"--bind-address={LOOPBACK}",
        f"--kubeconfig={conf}",
        "--leader-elect=true",
        "--port=0",
    ]
    mounts = [("kubeconfig", conf, "FileOrCreate")]
    endpoint = (LOOPBACK, master.scheduler_port)
    return static_pod("kube-scheduler", command, endpoint, mounts, version=KUBE_VERSION, cpu="100m")


def dump_manifest(pod: dict[str, Any]) -> str:
    return yaml.safe_dump(pod, sort_keys=True, default_flow_style=False)


def _signer(directory: Path, ca: LabPKI) -> LabPKI:
    """A LabPKI writing into `directory` that signs with `ca`'s CA (copied there, as kubeadm copies it)."""
    directory.mkdir(parents=True, exist_ok=True)
    for source, name in ((ca.ca.cert, "ca.crt"), (ca.ca.key, "ca.key")):
        shutil.copy2(source, directory / name)
    return LabPKI(directory)


class ClusterPKI:
    """The lab cluster's CAs and shared keys (kubeadm copies these to every control-plane node)."""

    def __init__(self, directory: Path) -> None:
        self.ca = LabPKI(directory / "pki")
        self.front_proxy = LabPKI(directory / "front-proxy", ca_name="front-proxy-ca")
        self.service_account = self.ca.signing_key("sa")
        self.front_proxy_client = self.front_proxy.client_cert("front-proxy-client", "front-proxy-client")


def write_layout(
    master: Master, cluster: ClusterPKI, etcd_url: str, components: tuple[str, ...], version: str
) -> None:
    """/etc/kubernetes of a kubeadm master (external etcd) for Kubernetes `version`, and /etc/hostname."""
    etc = master.path("/etc/kubernetes")
    pki_dir = etc / "pki"
    master.path("/etc/hostname").write_text(f"{master.name}\n")
    local = _signer(pki_dir, cluster.ca)  # ca.crt, ca.key + this master's certs under kubeadm's names
    (pki_dir / "etcd").mkdir(exist_ok=True)
    shutil.copy2(cluster.ca.ca.cert, pki_dir / "etcd/ca.crt")  # the lab's etcd trusts the same CA
    copies = {
        cluster.front_proxy.ca.cert: "front-proxy-ca.crt",
        cluster.front_proxy.ca.key: "front-proxy-ca.key",
        cluster.front_proxy_client.cert: "front-proxy-client.crt",
        cluster.front_proxy_client.key: "front-proxy-client.key",
        cluster.service_account.key: "sa.key",
        cluster.service_account.cert: "sa.pub",
    }
    for source, name in copies.items():
        shutil.copy2(source, pki_dir / name)
    local.server_cert(
        "apiserver",
        "kube-apiserver",
        dns_names=(
            master.name,
            "kubernetes",
            "kubernetes.default",
            "kubernetes.default.svc",
            "kubernetes.default.svc.cluster.local",
        ),
        ip_addresses=(master.address, SERVICE_IP),  # kubeadm: advertise address + the Service IP
    )
    local.client_cert("apiserver-kubelet-client", "kube-apiserver-kubelet-client", ("system:masters",))
    local.client_cert("apiserver-etcd-client", "kube-apiserver-etcd-client", ("system:masters",))
    # Kubeconfigs as kubeadm writes them, each pointing at this master's own apiserver, credentials
    # embedded; the certificate files themselves stay outside the chroot.
    credentials = _signer(master.directory / "credentials", cluster.ca)
    users = {
        "admin.conf": ("kubernetes-admin", ("system:masters",)),
        "controller-manager.conf": ("system:kube-controller-manager", ()),
        "scheduler.conf": ("system:kube-scheduler", ()),
        "kubelet.conf": (f"system:node:{master.name}", ("system:nodes",)),
    }
    for file, (user, groups) in users.items():
        pair = credentials.client_cert(file.removesuffix(".conf"), user, groups)
        credentials.kubeconfig(etc / file, master.url, user, pair)
    manifests = {
        "kube-apiserver": lambda: apiserver_manifest(master, etcd_url, version),
        "kube-controller-manager": lambda: controller_manager_manifest(master),
        "kube-scheduler": lambda: scheduler_manifest(master),
    }
    master.manifests.mkdir(parents=True, exist_ok=True)
    for component in components:
        manifest = master.manifests / f"{component}.yaml"
        manifest.write_text(dump_manifest(manifests[component]()))
        manifest.chmod(0o600)


def processes_in(directory: Path) -> list[int]:
    """PIDs of processes whose root (chroot) or executable lies under `directory`."""
    prefix = str(directory.resolve()) + "/"
    found = []
    for entry in Path("/proc").iterdir():
        if not entry.name.isdigit():
            continue
        for link in ("root", "exe"):
            try:
                target = os.readlink(entry / link)
            except OSError:
                continue
            if (target + "/").startswith(prefix):
                found.append(int(entry.name))
                break
    return found


def is_running(pid: int) -> bool:
    """The process exists and is not a zombie (dead, waiting for its parent to reap it)."""
    try:
        return Path(f"/proc/{pid}/stat").read_text().rsplit(")", 1)[1].split()[0] != "Z"
    except OSError:
        return False


def recorded_alive(pid: int, start_time: str | None) -> bool:
    """The recorded process still runs (same kernel start time, so not a recycled PID)."""
    return start_time is not None and proc_start_time(pid) == start_time and is_running(pid)


def stop_pid(pid: int, start_time: str | None, grace: float) -> None:
    """SIGTERM a recorded process (only if it is still the one recorded), SIGKILL after `grace`."""
    if not recorded_alive(pid, start_time):
        return
    os.kill(pid, signal.SIGTERM)
    deadline = time.monotonic() + grace
    while recorded_alive(pid, start_time) and time.monotonic() < deadline:
        time.sleep(0.1)
    if recorded_alive(pid, start_time):
        os.kill(pid, signal.SIGKILL)


def _forget_records(directory: Path) -> None:
    """Drop the PID records of this lab's processes that are gone (stopped here by PID, not by their
    ManagedProcess), so `python -m tests.lab.cleanup` has nothing stale to look at."""
    for record_file in PID_DIR.glob("*.json"):
        try:
            record = json.loads(record_file.read_text())
        except (OSError, ValueError):
            continue
        inside = str(record.get("log", "")).startswith(f"{directory}/")
        if inside and not recorded_alive(record["pid"], record.get("start_time")):
            record_file.unlink(missing_ok=True)


class MasterLab:
    """etcd + N chroot masters, each in its own network namespace with its node agent running the
    kubeadm static pods.

    `start()` returns once every master's apiserver answers /readyz; `stop()` stops the agents (which
    stop their pods), etcd, unmounts everything, deletes the lab network and removes the lab directory.
    A lab started by one process (`make demo`) is stopped by another with
    `MasterLab.stop_recorded(directory)`. Servers the masters must reach (the KMS emulator) listen on
    `lab.gateway`, the host's address on the lab bridge.

    `kms_v2=True`: v2 masters. Their kube-apiserver is the lab's KMS v2 apiserver (Kubernetes 1.36
    library code, raises binaries.SidUnavailable without Debian sid) under kubeadm 1.30+'s manifest;
    only that component runs, and the agents run static pods without reporting to the API.
    """

    def __init__(
        self,
        name: str = "lab",
        count: int = 3,
        *,
        kms_v2: bool = False,
        components: tuple[str, ...] | None = None,
        backoff_initial: float = 10.0,
        directory: Path | None = None,
    ) -> None:
        components = components or (V2_CONTROL_PLANE if kms_v2 else CONTROL_PLANE)
        if kms_v2 and set(components) - set(V2_CONTROL_PLANE):
            raise LabError(
                f"v2 masters run only {V2_CONTROL_PLANE}: the KMS v2 lab apiserver serves no pods, nodes "
                f"or leases for {sorted(set(components) - set(V2_CONTROL_PLANE))}"
            )
        self.name = name
        self.directory = Path(directory or MASTERS_ROOT / name)
        self.count = count
        self.kms_v2 = kms_v2
        self.components = components
        self.backoff_initial = backoff_initial
        self._kubernetes_version: str | None = None if kms_v2 else KUBE_VERSION
        self.masters: list[Master] = []
        self.network: LabNetwork | None = None
        self.etcd: Etcd | None = None
        self.cluster: ClusterPKI | None = None
        self.admin_conf = self.directory / "admin.conf"
        self.inventory = self.directory / "inventory.yml"
        self.state: dict[str, Any] = {}

    @property
    def gateway(self) -> str:
        """The host's address on the lab bridge: every master reaches it, nothing outside does. Bind
        servers the masters must reach here, e.g. `start_emulator_process(..., host=lab.gateway)`."""
        if self.network is None:
            raise LabError(f"lab {self.name} has no network (not started)")
        return self.network.gateway

    @property
    def kubernetes_version(self) -> str:
        """The masters' Kubernetes version: "1.20.2", or the v2 masters' "1.36.4"."""
        if self._kubernetes_version is None:
            self._kubernetes_version = binaries.kube_v2_version(binaries.kube_v2_binary())
        return self._kubernetes_version

    def programs(self) -> dict[str, Path]:
        """/usr/local/bin of every master: the KMS v2 apiserver, or the three 1.20.2 binaries."""
        if self.kms_v2:
            return {"kube-apiserver": binaries.kube_v2_binary()}
        kube = binaries.kube_dir()
        return {name: kube / name for name in CONTROL_PLANE}

    # -- lifecycle

    def start(self) -> MasterLab:
        if (self.directory / STATE_FILE).exists():
            raise LabError(f"a lab is already recorded in {self.directory}; stop it first")
        if self.directory.exists() or self._recorded_network(self.directory, {}):
            self.stop_recorded(self.directory)  # the remains of a start that died half-way
        self.directory.mkdir(parents=True, exist_ok=True)
        try:
            self._start()
        except BaseException:
            self.stop()
            raise
        return self

    def _start(self) -> None:
        base = rootfs()
        layer = build_layer(self.directory, base, self.programs())
        names = [f"master{i}" for i in range(1, self.count + 1)]
        self.network = netns.allocate(names, self.directory)
        netns.create(self.network)
        self.cluster = ClusterPKI(self.directory)
        self.etcd = Etcd(self.directory, self.cluster.ca, host=self.network.gateway).start()
        pairs = zip(names, self.network.masters, strict=True)
        self.masters = [Master(name, self.directory / name, net) for name, net in pairs]
        for master in self.masters:
            master.mount([layer, base])
            master.write_chroot_exe()
            write_layout(master, self.cluster, self.etcd.url, self.components, self.kubernetes_version)
        admin = self.cluster.ca.client_cert("admin", "kubernetes-admin", ("system:masters",))
        self.cluster.ca.kubeconfig(self.admin_conf, self.masters[0].url, "kubernetes-admin", admin)
        for master in self.masters:
            self._start_agent(master)
        self.save_state()
        self.write_inventory()
        if "kube-apiserver" in self.components:
            for master in self.masters:
                self.wait_apiserver(master)

    def _start_agent(self, master: Master) -> None:
        assert self.cluster is not None
        others = [m.url for m in self.masters if m is not master]
        credentials = master.directory / "credentials"
        config = AgentConfig(
            node_name=master.name,
            root=str(master.root),
            state_dir=str(master.agent_dir),
            servers=[master.url, *others],
            host_ip=master.address,
            ca_file=str(self.cluster.ca.ca.cert),
            cert_file=str(credentials / "admin.crt"),
            key_file=str(credentials / "admin.key"),
            backoff_initial=self.backoff_initial,
            report_to_api=not self.kms_v2,  # the KMS v2 apiserver has no nodes, leases or pods
        )
        master.agent_dir.mkdir(parents=True, exist_ok=True)
        path = config.save(master.agent_dir / "config.json")
        env = {**lab_env(), "PYTHONPATH": str(REPO), "PYTHONUNBUFFERED": "1"}
        # In the master's network namespace: its pods and probes see the master's loopback and address.
        argv = master.in_netns(sys.executable, "-m", "tests.lab.node_agent", "--config", str(path))
        master.agent = ManagedProcess(
            f"node-agent-{master.name}", argv, master.agent_dir / "agent.log", env=env, cwd=REPO
        )
        master.agent.start()

    def stop(self) -> None:
        """Stop everything this lab started and remove its directory; raises if anything is left."""
        for master in self.masters:
            if master.agent is not None:
                master.agent.stop(timeout=120)  # the agent stops its pods within their grace periods
        if self.etcd is not None:
            self.etcd.stop()
        self._remove(self.directory)
        if self.network is not None:
            self._remove_network(self.network)

    @classmethod
    def stop_recorded(cls, directory: Path) -> None:
        """Stop a lab started by another process, from its state file (by recorded PID + start time)."""
        try:
            state = json.loads((directory / STATE_FILE).read_text())
        except (OSError, ValueError):
            state = {}
        for record in state.get("agents", []):
            stop_pid(record["pid"], record["start_time"], grace=120)
        etcd = state.get("etcd") or {}
        if etcd:
            stop_pid(etcd["pid"], etcd["start_time"], grace=30)
        cls._remove(directory)
        network = cls._recorded_network(directory, state)
        if network is not None:
            cls._remove_network(network)

    @staticmethod
    def _recorded_network(directory: Path, state: dict[str, Any]) -> LabNetwork | None:
        """The lab's network: from its state file, else from the network records (a start that died
        before writing its state)."""
        if state.get("network"):
            return LabNetwork.from_record(state["network"])
        return next((n for n in netns.recorded() if n.lab_directory == str(directory)), None)

    @staticmethod
    def _remove_network(network: LabNetwork) -> None:
        # Anything still inside a master's namespace is the lab's (e.g. an ansible module run).
        for pid in netns.processes_in(network):
            stop_pid(pid, proc_start_time(pid), grace=10)
        netns.destroy(network)

    @staticmethod
    def _remove(directory: Path) -> None:
        # A pod process left by a killed agent still has its root in the chroot: it is ours.
        for pid in processes_in(directory):
            stop_pid(pid, proc_start_time(pid), grace=10)
        unmount_all(directory)
        left = mounts_under(directory.resolve()) if directory.exists() else []
        if left:
            raise LabError(f"mounts left under {directory}: {left}")
        shutil.rmtree(directory, ignore_errors=True)
        _forget_records(directory)

    # -- state for other processes (demo down, Ansible inventory)

    @classmethod
    def attach(cls, directory: Path) -> MasterLab | None:
        """The lab recorded in `directory` by another process (for status, inventory, verification)."""
        try:
            state = json.loads((directory / STATE_FILE).read_text())
        except (OSError, ValueError):
            return None
        kms_v2 = state.get("kms_v2", False)
        lab = cls(state["name"], len(state["masters"]), kms_v2=kms_v2, directory=directory)
        lab._kubernetes_version = state.get("kubernetes_version", KUBE_VERSION)
        lab.state = state
        if "network" not in state:  # recorded by a lab version without network namespaces
            return lab
        lab.network = LabNetwork.from_record(state["network"])
        lab.masters = [
            Master(m["name"], Path(m["directory"]), MasterNet(**m["net"])) for m in state["masters"]
        ]
        return lab

    def problems(self) -> list[str]:
        """What is wrong with a recorded lab: dead processes, missing mounts, apiservers not ready."""
        if self.network is None:
            return ["no lab network recorded (started by an older version of the lab): restart it"]
        found = []
        records = [("etcd", self.state.get("etcd") or {})] + [
            (f"node agent {i + 1}", record) for i, record in enumerate(self.state.get("agents", []))
        ]
        for what, record in records:
            if not record or not recorded_alive(record["pid"], record["start_time"]):
                found.append(f"{what} is not running")
        for master in self.masters:
            if not os.path.ismount(master.root):
                found.append(f"{master.name}: overlay not mounted")
                continue
            if not master.net.path.exists():
                found.append(f"{master.name}: network namespace {master.net.namespace} is gone")
                continue
            try:
                ready = self.readyz(master)
            except requests.RequestException as exc:
                ready, why = False, exc.__class__.__name__
            else:
                why = "not ready"
            if not ready:
                found.append(f"{master.name}: kube-apiserver /readyz {why}")
        return found

    def save_state(self) -> None:
        assert self.etcd is not None and self.network is not None
        state = {
            "name": self.name,
            "directory": str(self.directory),
            "admin_conf": str(self.admin_conf),
            "inventory": str(self.inventory),
            "kms_v2": self.kms_v2,
            "kubernetes_version": self.kubernetes_version,
            "network": self.network.to_record(),
            "etcd": {
                "url": self.etcd.url,
                "pid": self.etcd.process.pid,
                "start_time": proc_start_time(self.etcd.process.pid),
            },
            "masters": [m.to_state() for m in self.masters],
            "agents": [
                {"pid": m.agent.pid, "start_time": proc_start_time(m.agent.pid)}
                for m in self.masters
                if m.agent
            ],
        }
        (self.directory / STATE_FILE).write_text(json.dumps(state, indent=2))
        self.state = state

    def write_inventory(self, extra_vars: dict[str, Any] | None = None) -> Path:
        """An Ansible inventory: group `masters`, one chroot host per master (see docs/lab-masters.md).

        `extra_vars` are what a user's group_vars hold; none of them is needed to make the lab work."""
        hosts = {
            m.name: {
                "ansible_host": str(m.root),
                "ansible_chroot_exe": str(m.chroot_exe),  # chroot inside the master's network namespace
                "tke_kms_lab_apiserver_url": m.url,
                "tke_kms_lab_secure_port": m.apiserver_port,
            }
            for m in self.masters
        }
        connection = {
            "ansible_connection": "community.general.chroot",
            "ansible_python_interpreter": "/usr/bin/python3",
        }
        # Settings every role reads go to `all`: some plays run on localhost (the KMS key, the API).
        settings = {"tke_kms_kubeconfig": str(self.admin_conf), "tke_kms_lab": True, **(extra_vars or {})}
        inventory = {
            "all": {
                "vars": settings,
                "children": {"masters": {"hosts": hosts, "vars": connection}},
            }
        }
        self.inventory.touch(mode=0o600)  # it may carry credentials (the demo's emulator keys)
        self.inventory.chmod(0o600)
        self.inventory.write_text(yaml.safe_dump(inventory, sort_keys=False))
        return self.inventory

    # -- waiting and clients

    def session(self) -> requests.Session:
        """An HTTP session authenticated as the cluster admin (client certificate)."""
        pki = self.directory / "pki"
        session = requests.Session()
        session.verify = str(pki / "ca.crt")
        session.cert = (str(pki / "admin.crt"), str(pki / "admin.key"))
        session.trust_env = False
        return session

    def create_secrets(self, values: dict[str, str], namespace: str = "default") -> None:
        """One Secret per name, holding its value under key `value`, created through master1."""
        url = f"{self.masters[0].url}/api/v1/namespaces/{namespace}/secrets"
        with self.session() as session:
            for name, value in values.items():
                body = {"metadata": {"name": name}, "stringData": {"value": value}}
                session.post(url, json=body, timeout=30).raise_for_status()

    def readyz(self, master: Master) -> bool:
        with self.session() as session:
            return session.get(f"{master.url}/readyz", timeout=5).text == "ok"

    def wait_apiserver(self, master: Master, timeout: float = READY_TIMEOUT) -> None:
        def agent_alive() -> str | None:
            return master.agent.exit_reason() if master.agent is not None else None

        wait_for(
            lambda: self.readyz(master),
            timeout=timeout,
            what=f"{master.name} kube-apiserver /readyz",
            alive=agent_alive,
            interval=0.5,
        )

    def master(self, name: str) -> Master:
        return next(m for m in self.masters if m.name == name)
