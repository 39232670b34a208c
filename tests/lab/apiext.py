"""The apiext lab: a standalone apiextensions-apiserver on k8s.io/apiserver >= 0.29 with a test CRD.

It carries the modern encryption code (KMS v2 GA, KDF seeds, Status polling, key_id rotation) but
serves no core API, so the encrypted resource is a cluster-scoped custom resource `widgets.example.com`.
Being built as an aggregated server it wants kubeconfigs for delegated authn/authz and the core API:
all point at itself with a system:masters client certificate. Its /readyz never turns ok (informers
wait for core Services), so readiness is /livez plus the CRD being served.
"""

from __future__ import annotations

from pathlib import Path
from typing import Any

from kubernetes import client

from tests.lab import binaries
from tests.lab.apiserver import READY_TIMEOUT, APIServerBase
from tests.lab.etcd import Etcd
from tests.lab.pki import LabPKI
from tests.lab.runtime import LabError, wait_for

GROUP = "example.com"
VERSION = "v1"
PLURAL = "widgets"
RESOURCE = f"{PLURAL}.{GROUP}"  # the name an EncryptionConfiguration lists
ETCD_PREFIX = f"/registry/apiextensions.kubernetes.io/{GROUP}/{PLURAL}/"
# Admission plugins that need core informers this server does not have.
DISABLED_ADMISSION = (
    "NamespaceLifecycle,MutatingAdmissionWebhook,ValidatingAdmissionWebhook,"
    "ValidatingAdmissionPolicy,MutatingAdmissionPolicy"
)

CRD = {
    "apiVersion": "apiextensions.k8s.io/v1",
    "kind": "CustomResourceDefinition",
    "metadata": {"name": RESOURCE},
    "spec": {
        "group": GROUP,
        "scope": "Cluster",
        "names": {"plural": PLURAL, "singular": "widget", "kind": "Widget", "listKind": "WidgetList"},
        "versions": [
            {
                "name": VERSION,
                "served": True,
                "storage": True,
                "schema": {
                    "openAPIV3Schema": {"type": "object", "x-kubernetes-preserve-unknown-fields": True}
                },
            }
        ],
    },
}


class ApiextServer(APIServerBase):
    """apiextensions-apiserver with the widgets CRD; `kms_v1=True` re-enables the KMSv1 gate."""

    name = "apiextensions-apiserver"
    admin_conf_name = "apiext-admin.conf"

    def __init__(
        self, directory: Path, pki: LabPKI, etcd: Etcd, *, kms_v1: bool = False, **kwargs: Any
    ) -> None:
        super().__init__(directory, pki, etcd, **kwargs)
        self.kms_v1 = kms_v1
        self.binary = binaries.apiext_binary()

    def argv(self) -> list[str]:
        conf = self.admin_conf
        return [
            str(self.binary),
            "--bind-address=127.0.0.1",
            f"--secure-port={self.port}",
            f"--tls-cert-file={self.serving.cert}",
            f"--tls-private-key-file={self.serving.key}",
            f"--cert-dir={self.directory / 'apiext-certs'}",
            f"--client-ca-file={self.pki.ca.cert}",
            *self.etcd.client_config().apiserver_flags(),
            f"--kubeconfig={conf}",
            f"--authentication-kubeconfig={conf}",
            f"--authorization-kubeconfig={conf}",
            "--authentication-skip-lookup",
            "--enable-priority-and-fairness=false",
            f"--disable-admission-plugins={DISABLED_ADMISSION}",
            *(["--feature-gates=KMSv1=true"] if self.kms_v1 else []),
            *self._encryption_flags(),
            *self.extra_args,
        ]

    def wait_ready(self, timeout: float = READY_TIMEOUT) -> None:
        """/livez ok, the CRD created (it persists in etcd across restarts) and served."""
        wait_for(
            lambda: self.get("/livez").text == "ok",
            timeout=timeout,
            what=f"{self.name} /livez",
            alive=self.alive,
        )
        if self.get(f"/apis/apiextensions.k8s.io/v1/customresourcedefinitions/{RESOURCE}").status_code == 404:
            response = self.request(
                "POST", "/apis/apiextensions.k8s.io/v1/customresourcedefinitions", json=CRD
            )
            if response.status_code not in (201, 409):
                raise LabError(f"creating CRD {RESOURCE}: HTTP {response.status_code} {response.text[:300]}")

        def served() -> bool:
            response = self.get(f"/apis/{GROUP}/{VERSION}")
            return response.ok and any(r["name"] == PLURAL for r in response.json().get("resources", []))

        wait_for(served, timeout=timeout, what=f"{RESOURCE} served", alive=self.alive)

    # -- the encrypted resource

    def widget_path(self, name: str | None = None) -> str:
        base = f"/apis/{GROUP}/{VERSION}/{PLURAL}"
        return f"{base}/{name}" if name else base

    def create_widget(self, name: str, data: dict[str, str]) -> dict[str, Any]:
        body = {
            "apiVersion": f"{GROUP}/{VERSION}",
            "kind": "Widget",
            "metadata": {"name": name},
            "data": data,
        }
        response = self.request("POST", self.widget_path(), json=body)
        if response.status_code != 201:
            raise LabError(f"create widget {name}: HTTP {response.status_code} {response.text[:500]}")
        return response.json()

    def get_widget(self, name: str) -> dict[str, Any]:
        response = self.get(self.widget_path(name))
        if response.status_code != 200:
            raise LabError(f"get widget {name}: HTTP {response.status_code} {response.text[:500]}")
        return response.json()

    def list_widgets(self) -> list[dict[str, Any]]:
        response = self.get(self.widget_path(), timeout=300)
        if response.status_code != 200:
            raise LabError(f"list widgets: HTTP {response.status_code} {response.text[:500]}")
        return response.json()["items"]

    @staticmethod
    def widget_key(name: str) -> str:
        """The etcd key the widget is stored under."""
        return f"{ETCD_PREFIX}{name}"

    def custom_objects(self) -> Any:
        """The `kubernetes` client's CustomObjectsApi (needs no discovery, so it works here)."""
        return client.CustomObjectsApi(self.api_client())


class ApiextLab:
    """etcd + apiextensions-apiserver under `directory`."""

    def __init__(
        self,
        directory: Path,
        *,
        encryption_config: dict[str, Any] | str | None = None,
        kms_v1: bool = False,
        apiserver_args: tuple[str, ...] = (),
    ) -> None:
        self.directory = Path(directory)
        self.directory.mkdir(parents=True, exist_ok=True)
        self.pki = LabPKI(self.directory / "pki")
        self.etcd = Etcd(self.directory, self.pki)
        self.apiserver = ApiextServer(
            self.directory,
            self.pki,
            self.etcd,
            encryption_config=encryption_config,
            kms_v1=kms_v1,
            extra_args=apiserver_args,
        )

    def start(self) -> ApiextLab:
        try:
            self.etcd.start()
            self.apiserver.start()
        except BaseException:
            self.stop()
            raise
        return self

    def stop(self, *, remove_data: bool = False) -> None:
        self.apiserver.stop()
        self.etcd.stop(remove_data=remove_data)
