"""The kube-1.20 lab: kube-apiserver (+ kube-controller-manager + kube-scheduler) v1.20.2 on loopback.

Laid out like a kubeadm master: one lab CA, serving certs, client certs, kubeconfigs like
admin.conf / controller-manager.conf / scheduler.conf, RBAC + Node authorization, etcd over mutual
TLS. Any EncryptionConfiguration can be given, and the apiserver restarted with a new one.
"""

from __future__ import annotations

import os
import subprocess
import time
from pathlib import Path
from typing import Any

import requests
import yaml
from kubernetes import client, config

from tests.lab import binaries, encryption
from tests.lab.etcd import Etcd
from tests.lab.pki import CertPair, LabPKI
from tests.lab.process import ManagedProcess
from tests.lab.runtime import LOOPBACK, LabError, free_port, wait_for

READY_TIMEOUT = 180.0
SERVICE_CIDR = "10.96.0.0/12"
SERVICE_IP = "10.96.0.1"
ADMIN_USER = "kubernetes-admin"


def lab_env() -> dict[str, str]:
    """The environment for lab processes: no proxies (they would capture loopback traffic)."""
    return {
        k: v for k, v in os.environ.items() if k.lower() not in {"http_proxy", "https_proxy", "all_proxy"}
    }


def write_manifest(path: Path, argv: list[str], version: str = binaries.KUBE_VERSION) -> Path:
    """A kubeadm-like kube-apiserver static-pod manifest of a lab apiserver's command line: the on-master
    modules read its endpoint, certificates and encryption config from there, and its version from the image
    tag, as on a master (kubeadm's registry is registry.k8s.io from 1.25, k8s.gcr.io before)."""
    registry = "registry.k8s.io" if tuple(int(p) for p in version.split(".")[:2]) >= (1, 25) else "k8s.gcr.io"
    container = {"name": "kube-apiserver", "image": f"{registry}/kube-apiserver:v{version}", "command": argv}
    pod = {
        "apiVersion": "v1",
        "kind": "Pod",
        "metadata": {"name": "kube-apiserver", "namespace": "kube-system"},
        "spec": {"containers": [container]},
    }
    path.write_text(yaml.safe_dump(pod, sort_keys=False))
    return path


class APIServerBase:
    """What the kube-1.20 and apiext labs share: a TLS-serving apiserver process, health endpoints, clients"""

    name = "apiserver"
    admin_conf_name = "apiserver-admin.conf"

    def __init__(
        self,
        directory: Path,
        pki: LabPKI,
        etcd: Etcd,
        *,
        encryption_config: dict[str, Any] | str | None = None,
        extra_args: tuple[str, ...] = (),
    ) -> None:
        self.directory = Path(directory)
        self.pki = pki
        self.etcd = etcd
        self.extra_args = tuple(extra_args)
        self.port = free_port()
        self.config_path = self.directory / f"{self.name}-encryption-config.yaml"
        self.encryption_config = encryption_config
        self.serving = pki.server_cert(
            self.name,
            "kube-apiserver",
            dns_names=("kubernetes", "kubernetes.default", "kubernetes.default.svc"),
            ip_addresses=(LOOPBACK, SERVICE_IP),
        )
        self.admin = pki.client_cert(f"{self.name}-admin", ADMIN_USER, ("system:masters",))
        self.admin_conf = pki.kubeconfig(
            self.directory / self.admin_conf_name, self.url, ADMIN_USER, self.admin
        )
        self.process: ManagedProcess | None = None
        self.last_start_seconds: float | None = None
        self._session = requests.Session()
        self._session.verify = str(pki.ca.cert)
        self._session.cert = (str(self.admin.cert), str(self.admin.key))
        self._session.trust_env = False
        self._api_client: Any = None

    @property
    def url(self) -> str:
        return f"https://{LOOPBACK}:{self.port}"

    # -- lifecycle

    def argv(self) -> list[str]:
        raise NotImplementedError

    def wait_ready(self, timeout: float = READY_TIMEOUT) -> None:
        raise NotImplementedError

    def start(self, *, wait: bool = True, timeout: float = READY_TIMEOUT) -> APIServerBase:
        if self.encryption_config is not None:
            encryption.write(self.config_path, self.encryption_config)
        self.process = ManagedProcess(
            self.name, self.argv(), self.directory / f"{self.name}.log", env=lab_env()
        )
        started = time.monotonic()
        self.process.start()
        if wait:
            self.wait_ready(timeout)
            self.last_start_seconds = time.monotonic() - started
        return self

    def stop(self) -> None:
        if self.process is not None:
            self.process.stop()
        self._close_clients()

    def restart(
        self,
        encryption_config: dict[str, Any] | str | None = None,
        *,
        wait: bool = True,
        timeout: float = READY_TIMEOUT,
    ) -> APIServerBase:
        """Stop, optionally switch to a new EncryptionConfiguration, start again (cold DEK caches)."""
        self.stop()
        if encryption_config is not None:
            self.encryption_config = encryption_config
        return self.start(wait=wait, timeout=timeout)

    def alive(self) -> str | None:
        return self.process.exit_reason() if self.process else f"{self.name} not started"

    def _close_clients(self) -> None:
        self._session.close()  # pooled connections to a stopped server are dead
        if self._api_client is not None:
            self._api_client.close()
            self._api_client = None

    def _encryption_flags(self) -> list[str]:
        return (
            [f"--encryption-provider-config={self.config_path}"] if self.encryption_config is not None else []
        )

    # -- health

    def get(self, path: str, **kwargs: Any) -> requests.Response:
        """GET `path` as the admin (client certificate), server verified against the lab CA."""
        return self._session.get(f"{self.url}{path}", timeout=kwargs.pop("timeout", 10), **kwargs)

    def request(self, method: str, path: str, **kwargs: Any) -> requests.Response:
        return self._session.request(method, f"{self.url}{path}", timeout=kwargs.pop("timeout", 30), **kwargs)

    def check(self, endpoint: str) -> tuple[int, str]:
        """Status code and body of a health endpoint, e.g. check('/healthz/kms-provider-0')."""
        response = self.get(endpoint)
        return response.status_code, response.text

    def wait_check(self, endpoint: str, *, timeout: float = 60.0, expect_ok: bool = True) -> str:
        """Poll a health endpoint until it is ok (or, with expect_ok=False, until it fails)."""

        def probe() -> str | None:
            code, body = self.check(endpoint)
            return (body or str(code)) if (code == 200) == expect_ok else None

        state = "ok" if expect_ok else "failing"
        return wait_for(probe, timeout=timeout, what=f"{self.name} {endpoint} {state}", alive=self.alive)

    # -- clients

    def api_client(self) -> Any:
        """A `kubernetes` ApiClient from this server's admin.conf (cached until the next stop)."""
        if self._api_client is None:
            self._api_client = config.new_client_from_config(config_file=str(self.admin_conf))
        return self._api_client

    @staticmethod
    def kubectl_available() -> bool:
        return binaries.kubectl() is not None

    def kubectl(
        self, *args: str, input: bytes | str | None = None, check: bool = True, timeout: float = 60
    ) -> subprocess.CompletedProcess[str]:
        """Run the machine's kubectl with this server's admin.conf."""
        kubectl = binaries.kubectl()
        if kubectl is None:
            raise LabError("no kubectl on this machine; use api_client() instead")
        result = subprocess.run(
            [str(kubectl), f"--kubeconfig={self.admin_conf}", *args],
            input=input.decode() if isinstance(input, bytes) else input,
            capture_output=True,
            text=True,
            env=lab_env(),
            check=False,
            timeout=timeout,
        )
        if check and result.returncode != 0:
            raise LabError(f"kubectl {' '.join(args)} failed ({result.returncode}): {result.stderr.strip()}")
        return result


class KubeAPIServer(APIServerBase):
    """kube-apiserver v1.20.2 with kubeadm's flags (loopback only, no insecure port)."""

    name = "kube-apiserver"
    admin_conf_name = "admin.conf"

    def __init__(self, directory: Path, pki: LabPKI, etcd: Etcd, **kwargs: Any) -> None:
        super().__init__(directory, pki, etcd, **kwargs)
        self.service_account = pki.signing_key("sa")
        self.binary = binaries.kube_dir() / "kube-apiserver"

    def argv(self) -> list[str]:
        return [
            str(self.binary),
            f"--advertise-address={LOOPBACK}",
            f"--bind-address={LOOPBACK}",
            f"--secure-port={self.port}",
            "--insecure-port=0",
            "--allow-privileged=true",
            "--authorization-mode=Node,RBAC",
            "--enable-admission-plugins=NodeRestriction",
            "--enable-bootstrap-token-auth=true",
            f"--client-ca-file={self.pki.ca.cert}",
            f"--tls-cert-file={self.serving.cert}",
            f"--tls-private-key-file={self.serving.key}",
            f"--cert-dir={self.directory / 'kube-apiserver-certs'}",
            *self.etcd.client_config().apiserver_flags(),
            "--service-account-issuer=https://kubernetes.default.svc.cluster.local",
            f"--service-account-key-file={self.service_account.cert}",
            f"--service-account-signing-key-file={self.service_account.key}",
            f"--service-cluster-ip-range={SERVICE_CIDR}",
            *self._encryption_flags(),
            *self.extra_args,
        ]

    def wait_ready(self, timeout: float = READY_TIMEOUT) -> None:
        """/readyz ok and the `default` namespace exists (so a first Secret can be created)."""
        wait_for(
            lambda: self.get("/readyz").text == "ok",
            timeout=timeout,
            what="kube-apiserver /readyz",
            alive=self.alive,
        )
        wait_for(
            lambda: self.get("/api/v1/namespaces/default").status_code == 200,
            timeout=timeout,
            what="namespace default",
            alive=self.alive,
        )

    def core(self) -> Any:
        return client.CoreV1Api(self.api_client())

    @staticmethod
    def secret_key(name: str, namespace: str = "default") -> str:
        """The etcd key kube-apiserver stores a Secret under."""
        return f"/registry/secrets/{namespace}/{name}"


class KubeV2APIServer(KubeAPIServer):
    """The lab's KMS v2 kube-apiserver (tests/lab/kube_apiserver: k8s.io/apiserver 0.36 serving core
    namespaces, secrets and configmaps) with a kubeadm 1.30+ flag set: KMS v1 off unless
    `--feature-gates=KMSv1=true` is among the extra args. Raises binaries.SidUnavailable without sid."""

    def __init__(self, directory: Path, pki: LabPKI, etcd: Etcd, **kwargs: Any) -> None:
        super().__init__(directory, pki, etcd, **kwargs)
        self.binary = binaries.kube_v2_binary()
        self.version = binaries.kube_v2_version(self.binary)

    def argv(self) -> list[str]:
        return [arg for arg in super().argv() if arg != "--insecure-port=0"]  # removed in 1.24


class _Controller:
    """kube-controller-manager or kube-scheduler: its own client cert and kubeconfig, TLS /healthz."""

    def __init__(self, name: str, user: str, server: KubeAPIServer, extra_flags: list[str]) -> None:
        pki, directory = server.pki, server.directory
        self.name = name
        self.port = free_port()
        self.serving = pki.server_cert(f"{name}-serving", name)
        credentials: CertPair = pki.client_cert(name, user)
        self.kubeconfig = pki.kubeconfig(directory / f"{name}.conf", server.url, user, credentials)
        self._ca = str(pki.ca.cert)
        argv = [
            str(binaries.kube_dir() / name),
            f"--kubeconfig={self.kubeconfig}",
            f"--authentication-kubeconfig={self.kubeconfig}",
            f"--authorization-kubeconfig={self.kubeconfig}",
            f"--bind-address={LOOPBACK}",
            f"--secure-port={self.port}",
            "--port=0",
            f"--tls-cert-file={self.serving.cert}",
            f"--tls-private-key-file={self.serving.key}",
            f"--cert-dir={directory / (name + '-certs')}",
            "--leader-elect=false",
            *extra_flags,
        ]
        self.process = ManagedProcess(name, argv, directory / f"{name}.log", env=lab_env())

    def start(self, timeout: float = READY_TIMEOUT) -> None:
        self.process.start()

        def healthy() -> bool:
            response = requests.get(f"https://{LOOPBACK}:{self.port}/healthz", verify=self._ca, timeout=5)
            return response.text == "ok"

        wait_for(healthy, timeout=timeout, what=f"{self.name} /healthz", alive=self.process.exit_reason)

    def stop(self) -> None:
        self.process.stop()


class ControlPlane:
    """etcd + kube-apiserver, and kube-controller-manager + kube-scheduler when `controllers=True`;
    `kms_v2=True`: the lab's KMS v2 kube-apiserver (1.36) instead of 1.20.2, without controllers."""

    def __init__(
        self,
        directory: Path,
        *,
        encryption_config: dict[str, Any] | str | None = None,
        controllers: bool = False,
        kms_v2: bool = False,
        apiserver_args: tuple[str, ...] = (),
        pki: LabPKI | None = None,
        etcd: Etcd | None = None,
    ) -> None:
        if kms_v2 and controllers:
            raise LabError("the KMS v2 apiserver serves no API the 1.20 controllers could run against")
        self.directory = Path(directory)
        self.directory.mkdir(parents=True, exist_ok=True)
        self.pki = pki or LabPKI(self.directory / "pki")
        self._owns_etcd = etcd is None
        self.etcd = etcd or Etcd(self.directory, self.pki)
        self.apiserver = (KubeV2APIServer if kms_v2 else KubeAPIServer)(
            self.directory,
            self.pki,
            self.etcd,
            encryption_config=encryption_config,
            extra_args=apiserver_args,
        )
        self.controllers: list[_Controller] = []
        if controllers:
            ca, sa = self.pki.ca, self.apiserver.service_account
            self.controllers = [
                _Controller(
                    "kube-controller-manager",
                    "system:kube-controller-manager",
                    self.apiserver,
                    [
                        f"--client-ca-file={ca.cert}",
                        f"--root-ca-file={ca.cert}",
                        f"--cluster-signing-cert-file={ca.cert}",
                        f"--cluster-signing-key-file={ca.key}",
                        f"--service-account-private-key-file={sa.key}",
                        f"--service-cluster-ip-range={SERVICE_CIDR}",
                        "--use-service-account-credentials=true",
                        "--controllers=*,bootstrapsigner,tokencleaner",
                    ],
                ),
                _Controller("kube-scheduler", "system:kube-scheduler", self.apiserver, []),
            ]

    def start(self) -> ControlPlane:
        try:
            if self._owns_etcd:
                self.etcd.start()
            self.apiserver.start()
            for controller in self.controllers:
                controller.start()
        except BaseException:
            self.stop()
            raise
        return self

    def restart_apiserver(self, encryption_config: dict[str, Any] | str | None = None) -> None:
        """Restart kube-apiserver (optionally with a new EncryptionConfiguration), then bring back the
        controllers: 1.20's controller-manager exits when its apiserver goes away, and on a real
        master the kubelet would restart it."""
        self.apiserver.restart(encryption_config)
        for controller in self.controllers:
            if not controller.process.running():
                controller.start()

    def stop(self, *, remove_data: bool = False) -> None:
        for controller in reversed(self.controllers):
            controller.stop()
        self.apiserver.stop()
        if self._owns_etcd:
            self.etcd.stop(remove_data=remove_data)
