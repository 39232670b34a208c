"""The lifecycle playbooks (verify.yml, rotate.yml, disable.yml) on kubeadm-like chroot lab masters
(tests/lab/masters.py), run with ansible-playbook as a user does, with the KMS emulator."""

from __future__ import annotations

import base64
import os
import secrets
import subprocess
from collections.abc import Iterator
from contextlib import contextmanager
from dataclasses import dataclass
from typing import Any

import pytest
from tencentcloud.kms.v20190118 import models
from tke_kms_plugin.emulator.testing import make_kms_client, start_emulator_process

from tests.lab.masters import LAB_REGION, MasterLab, rollout_vars
from tests.lab.playbooks import ansible_playbook

PROVIDER = "tke-kms-plugin"
RELIABILITY_TABLE: list[Row] = []  # filled by test_reliability.py, printed at the end of the session


@dataclass
class Row:
    step: str
    fault: str
    intact: str
    storage: str


def pytest_terminal_summary(terminalreporter: Any) -> None:
    """The reliability table: step x fault x Secrets intact."""
    if not RELIABILITY_TABLE:
        return
    width = max(len(row.fault) for row in RELIABILITY_TABLE)
    terminalreporter.section("reliability: step x fault x secrets intact")
    terminalreporter.write_line(f"{'step':<12} {'fault':<{width}} {'secrets intact':<15} etcd storage")
    for r in RELIABILITY_TABLE:
        terminalreporter.write_line(f"{r.step:<12} {r.fault:<{width}} {r.intact:<15} {r.storage}")


@dataclass
class Cluster:
    """A lab of chroot masters with an inventory for the playbooks and Secrets of known values."""

    lab: MasterLab
    seeded: dict[str, str]
    emulator: Any
    credentials: tuple[str, str]  # the emulator's SecretId and SecretKey

    def playbook(self, path: str, *extra: str) -> subprocess.CompletedProcess[str]:
        return ansible_playbook(path, "-i", str(self.lab.inventory), *extra)

    def key_states(self) -> dict[str, str]:
        """Alias -> KeyState of the emulator's KMS keys, through the Tencent SDK."""
        client = make_kms_client(self.emulator.endpoint, *self.credentials, region=LAB_REGION)
        request = models.ListKeyDetailRequest()
        request.Limit = 100
        return {key.Alias: key.KeyState for key in client.ListKeyDetail(request).KeyMetadatas}

    def etcd_secrets(self, namespace: str = "") -> dict[str, bytes]:
        """The raw values in etcd of every Secret (of a namespace), by key."""
        pki = self.lab.directory / "pki"
        prefix = f"/registry/secrets/{namespace + '/' if namespace else ''}".encode()
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

    def read_seeded(self) -> dict[str, dict[str, str]]:
        """master -> {name: value} of the seeded Secrets, read through each master's own apiserver."""
        found = {}
        with self.lab.session() as session:
            for master in self.lab.masters:
                url = f"{master.url}/api/v1/namespaces/default/secrets"
                items = session.get(url, timeout=60).json()["items"]
                found[master.name] = {
                    s["metadata"]["name"]: base64.b64decode(s["data"]["value"]).decode()
                    for s in items
                    if s["metadata"]["name"] in self.seeded
                }
        return found


@contextmanager
def running_cluster(name: str, masters: int, seeded: int) -> Iterator[Cluster]:
    """Chroot masters, the KMS emulator and an inventory for them; `seeded` Secrets of known values in
    namespace default, stored in the clear. Everything stopped by PID afterwards."""
    if os.geteuid() != 0:
        pytest.skip("chroot masters need root")
    lab = MasterLab(f"{name}-{os.getpid()}", masters).start()
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
            )
        )
        values = {f"seeded-{number}": secrets.token_hex(8) for number in range(seeded)}
        lab.create_secrets(values)
        yield Cluster(lab, values, emulator, (secret_id, secret_key))
    finally:
        emulator.stop()
        lab.stop()


@pytest.fixture(scope="module")
def cluster() -> Iterator[Cluster]:
    """Two masters and 10 Secrets; module-scoped: the tests of a module run in order on it."""
    with running_cluster("lifecycle", 2, 10) as found:
        yield found
