"""The lifecycle playbooks (verify.yml, rotate.yml, disable.yml) on kubeadm-like chroot lab masters
(tests/lab/masters.py), run with ansible-playbook as a user does, with the KMS emulator."""

from __future__ import annotations

import base64
import os
import secrets
import subprocess
from collections.abc import Iterator
from contextlib import contextmanager
from dataclasses import dataclass, field
from typing import Any

import pytest
import requests
from tencentcloud.kms.v20190118 import models
from tke_kms_plugin.emulator.testing import make_kms_client, start_emulator_process

from tests.fixtures.lab import kube_v2_binary
from tests.lab.masters import LAB_REGION, MasterLab, rollout_vars
from tests.lab.playbooks import ansible_playbook

from . import starting_config
from .flavour import KUBE_1_20, Flavour
from .starting_config import StartConfig

PROVIDER = "tke-kms-plugin"
RELIABILITY_TABLE: list[Row] = []  # filled by test_reliability.py, printed at the end of the session


@dataclass
class Row:
    flavour: str  # the masters' Kubernetes and KMS API
    start: str  # the starting encryption config
    step: str
    fault: str
    secrets: str  # "intact/seeded": read back with their values on every master and stored as expected
    configmaps: str
    storage: str


COLUMNS = ("flavour", "start", "step", "fault", "secrets", "configmaps", "storage")
HEADINGS = ("masters", "start", "step", "fault", "secrets", "configmaps", "etcd storage")


def pytest_collection_modifyitems(config: pytest.Config, items: list[pytest.Item]) -> None:
    """Tests marked full_matrix run with TKE_KMS_RELIABILITY=full (make reliability) only: deselected, not
    skipped, in `make test`."""
    if os.environ.get("TKE_KMS_RELIABILITY", "") == "full":
        return
    dropped = [item for item in items if item.get_closest_marker("full_matrix")]
    if dropped:
        config.hook.pytest_deselected(items=dropped)
        items[:] = [item for item in items if not item.get_closest_marker("full_matrix")]


def pytest_terminal_summary(terminalreporter: Any) -> None:
    """The reliability table: starting config x step x fault x objects intact."""
    if not RELIABILITY_TABLE:
        return
    # Scenarios run side by side: their rows come interleaved; group them, each in its own order.
    lanes = list(dict.fromkeys((row.flavour, row.start) for row in RELIABILITY_TABLE))
    ordered = sorted(RELIABILITY_TABLE, key=lambda row: lanes.index((row.flavour, row.start)))
    rows = [HEADINGS, *([getattr(row, column) for column in COLUMNS] for row in ordered)]
    widths = [max(len(row[i]) for row in rows) for i in range(len(COLUMNS) - 1)]
    terminalreporter.section("reliability: starting config x step x fault x objects intact")
    for row in rows:
        cells = [f"{cell:<{width}}" for cell, width in zip(row, widths, strict=False)]
        terminalreporter.write_line("  ".join([*cells, row[-1]]))


@dataclass
class Cluster:
    """A lab of chroot masters with an inventory for the playbooks, Secrets and ConfigMaps of known values."""

    lab: MasterLab
    seeded: dict[str, str]  # the seeded Secrets: name -> value
    emulator: Any
    credentials: tuple[str, str]  # the emulator's SecretId and SecretKey
    configmaps: dict[str, str] = field(default_factory=dict)  # the seeded ConfigMaps: name -> value
    flavour: Flavour = KUBE_1_20

    def playbook(self, path: str, *extra: str) -> subprocess.CompletedProcess[str]:
        return ansible_playbook(path, "-i", str(self.lab.inventory), *extra)

    def keys(self) -> dict[str, tuple[str, str]]:
        """Alias -> (KeyId, KeyState) of the emulator's KMS keys, through the Tencent SDK."""
        client = make_kms_client(self.emulator.endpoint, *self.credentials, region=LAB_REGION)
        request = models.ListKeyDetailRequest()
        request.Limit = 100
        return {key.Alias: (key.KeyId, key.KeyState) for key in client.ListKeyDetail(request).KeyMetadatas}

    def key_states(self) -> dict[str, str]:
        """Alias -> KeyState of the emulator's KMS keys."""
        return {alias: state for alias, (_id, state) in self.keys().items()}

    def seeded_values(self, resource: str) -> dict[str, str]:
        return {"secrets": self.seeded, "configmaps": self.configmaps}[resource]

    def etcd_values(self, resource: str, namespace: str = "") -> dict[str, bytes]:
        """The raw values in etcd of every object of `resource` (of a namespace), by key."""
        pki = self.lab.directory / "pki"
        prefix = f"/registry/{resource}/{namespace + '/' if namespace else ''}".encode()
        body = {
            "key": base64.b64encode(prefix).decode(),
            "range_end": base64.b64encode(prefix[:-1] + b"0").decode(),
        }
        assert self.lab.etcd is not None
        with self.lab.session() as session:
            session.cert = (str(pki / "etcd-client.crt"), str(pki / "etcd-client.key"))
            answer = session.post(f"{self.lab.etcd.url}/v3/kv/range", json=body, timeout=30).json()
        return {
            base64.b64decode(kv["key"]).decode(): base64.b64decode(kv["value"])
            for kv in answer.get("kvs", [])
        }

    def etcd_secrets(self, namespace: str = "") -> dict[str, bytes]:
        return self.etcd_values("secrets", namespace)

    def read_values(self, resource: str) -> dict[str, dict[str, str] | str]:
        """master -> {name: value} of the seeded objects of `resource`, read through each master's own
        apiserver; or the error that master answered (a list fails whole when one object cannot be read)."""
        seeded = self.seeded_values(resource)
        found: dict[str, dict[str, str] | str] = {}
        with self.lab.session() as session:
            for master in self.lab.masters:
                url = f"{master.url}/api/v1/namespaces/default/{resource}"
                try:
                    answer = session.get(url, timeout=60)
                except requests.RequestException as exc:
                    found[master.name] = f"{exc.__class__.__name__}: {exc}"
                    continue
                if answer.status_code != 200:
                    found[master.name] = f"HTTP {answer.status_code}: {answer.text[:300]}"
                    continue
                found[master.name] = {
                    item["metadata"]["name"]: object_value(resource, item)
                    for item in answer.json()["items"]
                    if item["metadata"]["name"] in seeded
                }
        return found

    def kms_checks(self) -> dict[str, str]:
        """master -> what is wrong with the KMS checks of its /readyz ("" when every one is ok): 1.20 and a
        1.36 apiserver without automatic reload have one kms-provider-<n> per KMS provider, with reload one
        kms-providers for all of them."""
        found = {}
        with self.lab.session() as session:
            for master in self.lab.masters:
                try:
                    text = session.get(f"{master.url}/readyz?verbose", timeout=30).text
                except requests.RequestException as exc:
                    found[master.name] = f"/readyz: {exc.__class__.__name__}: {exc}"
                    continue
                checks = [line for line in text.splitlines() if line[3:].startswith("kms-provider")]
                failing = [line for line in checks if not line.startswith("[+]")]
                if not checks or failing:
                    found[master.name] = f"/readyz has {failing or 'no KMS check'}:\n{text[-1500:]}"
                else:
                    found[master.name] = ""
        return found

    def read_seeded(self) -> dict[str, dict[str, str]]:
        """master -> {name: value} of the seeded Secrets, read through each master's own apiserver."""
        found = self.read_values("secrets")
        problems = {master: error for master, error in found.items() if isinstance(error, str)}
        assert not problems, problems
        return found  # type: ignore[return-value]


def object_value(resource: str, item: dict[str, Any]) -> str:
    data = item.get("data") or {}
    if resource == "secrets":
        return base64.b64decode(data.get("value", "")).decode()
    return data.get("value", "")


def create_configmaps(lab: MasterLab, values: dict[str, str], namespace: str = "default") -> None:
    """One ConfigMap per name, holding its value under key `value`, created through master1."""
    url = f"{lab.masters[0].url}/api/v1/namespaces/{namespace}/configmaps"
    with lab.session() as session:
        for name, value in values.items():
            body = {"metadata": {"name": name}, "data": {"value": value}}
            session.post(url, json=body, timeout=30).raise_for_status()


@contextmanager
def running_cluster(
    name: str,
    masters: int,
    seeded: int,
    *,
    configmaps: int = 0,
    start: StartConfig | None = None,
    flavour: Flavour = KUBE_1_20,
) -> Iterator[Cluster]:
    """Chroot masters of `flavour`, the KMS emulator and an inventory for them; `seeded` Secrets and
    `configmaps` ConfigMaps of known values in namespace default, stored as the starting config `start` says
    (in the clear without one). Everything stopped by PID afterwards."""
    if os.geteuid() != 0:
        pytest.skip("chroot masters need root")
    lab = lab_of(flavour, f"{name}-{os.getpid()}", masters).start()
    secret_id, secret_key = "AKIDtkekmslifecycle", secrets.token_urlsafe(24)
    # On the lab's gateway: the plugins inside the masters' network namespaces reach it there.
    emulator = start_emulator_process({secret_id: secret_key}, host=lab.gateway)
    try:
        lab.write_inventory(
            rollout_vars(
                emulator.url,
                secret_id,
                secret_key,
                tke_kms_key_alias="lifecycle-test",
                tke_kms_apiserver_timeout=90,
                **flavour.inventory,
            )
        )
        if start is not None:
            starting_config.apply(lab, start)
        values = {f"seeded-{number}": secrets.token_hex(8) for number in range(seeded)}
        lab.create_secrets(values)
        maps = {f"seeded-{number}": secrets.token_hex(8) for number in range(configmaps)}
        create_configmaps(lab, maps)
        yield Cluster(lab, values, emulator, (secret_id, secret_key), maps, flavour)
    finally:
        emulator.stop()
        lab.stop()


def lab_of(flavour: Flavour, name: str, masters: int) -> MasterLab:
    """The (not yet started) masters of `flavour`; KMS v2 masters without their apiserver (no Debian sid to
    build it from) skip loudly - and fail under CI=true (tests/conftest.py)."""
    if flavour.kms_v2:
        kube_v2_binary()
        return MasterLab(name, masters, kms_v2=True)
    return MasterLab(name, masters)


@pytest.fixture(scope="module")
def cluster() -> Iterator[Cluster]:
    """Two masters and 10 Secrets; module-scoped: the tests of a module run in order on it."""
    with running_cluster("lifecycle", 2, 10) as found:
        yield found
