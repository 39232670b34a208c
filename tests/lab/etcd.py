"""A single-member etcd with mutual TLS (on loopback, or on a lab network's gateway), and raw reads of
what the apiserver stored."""

from __future__ import annotations

import base64
import os
import shutil
import subprocess
from dataclasses import dataclass
from pathlib import Path

import requests

from tests.lab.pki import CertPair, LabPKI
from tests.lab.process import ManagedProcess
from tests.lab.runtime import LOOPBACK, LabError, free_port, wait_for

START_TIMEOUT = 60.0


@dataclass(frozen=True)
class EtcdClientConfig:
    """What a client (kube-apiserver, etcdctl) needs to reach this etcd."""

    url: str
    ca: Path
    cert: Path
    key: Path

    def apiserver_flags(self) -> list[str]:
        return [
            f"--etcd-servers={self.url}",
            f"--etcd-cafile={self.ca}",
            f"--etcd-certfile={self.cert}",
            f"--etcd-keyfile={self.key}",
        ]


def _prefix_end(prefix: bytes) -> bytes:
    """The etcd range_end that selects every key starting with `prefix`."""
    end = bytearray(prefix)
    while end and end[-1] == 0xFF:
        end.pop()
    if not end:
        return b"\0"
    end[-1] += 1
    return bytes(end)


def _b64(data: bytes) -> str:
    return base64.b64encode(data).decode()


class Etcd:
    """etcd (Debian's etcd-server) with its data, certs and log under `directory`."""

    def __init__(
        self,
        directory: Path,
        pki: LabPKI,
        *,
        binary_dir: Path | None = None,
        name: str = "etcd",
        host: str = LOOPBACK,
    ):
        self.directory = Path(directory)
        self.host = host  # the address it listens on (a lab network's gateway for namespaced masters)
        self.pki = pki
        self.name = name
        self.binary_dir = Path(binary_dir or Path(shutil.which("etcd") or "/usr/bin/etcd").parent)
        self.client_port = free_port()
        self.peer_port = free_port()
        self.data_dir = self.directory / f"{name}-data"
        # Client usage too (as kubeadm's etcd/server.crt): etcd's JSON gateway dials etcd with it.
        self.serving = pki.issue(
            f"{name}-server",
            name,
            dns_names=("localhost",),
            ip_addresses=tuple(dict.fromkeys((host, LOOPBACK))),
            server=True,
            client=True,
        )
        self.peer = pki.issue(f"{name}-peer", name, ip_addresses=(host,), server=True, client=True)
        # The same client identity kubeadm gives kube-apiserver for etcd.
        self.client = pki.client_cert(f"{name}-client", "kube-apiserver-etcd-client", ("system:masters",))
        self.process = ManagedProcess(name, self._argv(), self.directory / f"{name}.log")
        self._session = requests.Session()
        self._session.verify = str(pki.ca.cert)
        self._session.cert = (str(self.client.cert), str(self.client.key))
        self._session.trust_env = False  # REQUESTS_CA_BUNDLE would override the lab CA

    @property
    def url(self) -> str:
        return f"https://{self.host}:{self.client_port}"

    def client_config(self, credentials: CertPair | None = None) -> EtcdClientConfig:
        creds = credentials or self.client
        return EtcdClientConfig(self.url, self.pki.ca.cert, creds.cert, creds.key)

    def _argv(self) -> list[str]:
        peer_url = f"https://{self.host}:{self.peer_port}"
        return [
            self.binary_dir / "etcd",
            f"--name={self.name}",
            f"--data-dir={self.data_dir}",
            f"--listen-client-urls={self.url}",
            f"--advertise-client-urls={self.url}",
            f"--listen-peer-urls={peer_url}",
            f"--initial-advertise-peer-urls={peer_url}",
            f"--initial-cluster={self.name}={peer_url}",
            f"--cert-file={self.serving.cert}",
            f"--key-file={self.serving.key}",
            f"--trusted-ca-file={self.pki.ca.cert}",
            "--client-cert-auth=true",
            f"--peer-cert-file={self.peer.cert}",
            f"--peer-key-file={self.peer.key}",
            f"--peer-trusted-ca-file={self.pki.ca.cert}",
            "--peer-client-cert-auth=true",
            "--logger=zap",
            "--log-outputs=stderr",
        ]

    def start(self) -> Etcd:
        self.process.start()
        wait_for(
            self.healthy, timeout=START_TIMEOUT, what=f"{self.name} health", alive=self.process.exit_reason
        )
        return self

    def healthy(self) -> bool:
        response = self._session.get(f"{self.url}/health", timeout=2)
        return response.ok and response.json().get("health") == "true"

    def stop(self, *, remove_data: bool = False) -> None:
        self.process.stop()
        self._session.close()
        if remove_data:
            shutil.rmtree(self.data_dir, ignore_errors=True)

    # Raw access through etcd's v3 JSON gateway: what is really stored, bypassing the apiserver.

    def _range(self, body: dict) -> dict:
        response = self._session.post(f"{self.url}/v3/kv/range", json=body, timeout=30)
        if not response.ok:
            raise LabError(f"etcd range failed: HTTP {response.status_code} {response.text[:200]}")
        return response.json()

    def get(self, key: str | bytes) -> bytes | None:
        """The raw stored value of `key`, or None when absent."""
        raw_key = key.encode() if isinstance(key, str) else key
        kvs = self._range({"key": _b64(raw_key)}).get("kvs", [])
        return base64.b64decode(kvs[0].get("value", "")) if kvs else None

    def get_prefix(self, prefix: str | bytes) -> dict[bytes, bytes]:
        """Every key under `prefix` with its raw value."""
        raw = prefix.encode() if isinstance(prefix, str) else prefix
        kvs = self._range({"key": _b64(raw), "range_end": _b64(_prefix_end(raw))}).get("kvs", [])
        return {base64.b64decode(kv["key"]): base64.b64decode(kv.get("value", "")) for kv in kvs}

    def count_prefix(self, prefix: str | bytes) -> int:
        raw = prefix.encode() if isinstance(prefix, str) else prefix
        result = self._range({"key": _b64(raw), "range_end": _b64(_prefix_end(raw)), "count_only": True})
        return int(result.get("count", 0))

    def etcdctl(self, *args: str, check: bool = True) -> subprocess.CompletedProcess[bytes]:
        """Run Debian's etcdctl (API v3) against this etcd with the client certificate."""
        env = {**os.environ, "ETCDCTL_API": "3"}
        argv = [
            str(self.binary_dir / "etcdctl"),
            f"--endpoints={self.url}",
            f"--cacert={self.pki.ca.cert}",
            f"--cert={self.client.cert}",
            f"--key={self.client.key}",
            *args,
        ]
        return subprocess.run(argv, capture_output=True, env=env, check=check, timeout=60)
