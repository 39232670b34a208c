"""Refusals of the lifecycle playbooks on lab masters: each fails before changing anything, with a message
that says what to fix, and leaves every manifest and encryption config byte-identical.

- rotate.yml to the key in use (by alias or KeyId), which with tke_kms_rotate_delete_old_key would schedule
  the deletion of the only key that reads the data;
- the old key's deletion while a master's config names the old provider or etcd still stores data with it;
- site.yml after a rotation with the old inventory, which would make the old key the write provider again;
- site.yml that would switch the deployed plugin instance to another key.
"""

from __future__ import annotations

import subprocess
from collections.abc import Iterator
from pathlib import Path

import pytest
import yaml
from tencentcloud.kms.v20190118 import models
from tke_kms_plugin.emulator.testing import make_kms_client

from tests.lab.masters import LAB_REGION
from tests.lab.playbooks import output

from .conftest import PROVIDER, Cluster, running_cluster

# In `make reliability` only (its own cluster costs minutes); `make test` covers these refusals without a lab
# (test_site_preflight.py, test_rotation_settings.py) and in the reliability matrix (same-key rotation).
pytestmark = [pytest.mark.e2e, pytest.mark.lab_masters, pytest.mark.reliability, pytest.mark.full_matrix]

KEY_ALIAS = "lifecycle-test"  # the key of the rollout (conftest's inventory)
ROTATED = "tke-kms-rotated"
ROTATED_ALIAS = "refusals-key2"
ROTATED_SOCKET = f"/var/run/tke-kms-plugin/{ROTATED}.sock"  # rotate.yml's default
ROTATION = (
    "-e",
    f"tke_kms_rotate_provider_name={ROTATED}",
    "-e",
    f"tke_kms_rotate_key_alias={ROTATED_ALIAS}",
)
DELETE_OLD_KEY = ("-e", "tke_kms_rotate_delete_old_key=true")
IDENTITY_ONLY = {
    "apiVersion": "apiserver.config.k8s.io/v1",
    "kind": "EncryptionConfiguration",
    "resources": [{"resources": ["secrets"], "providers": [{"identity": {}}]}],
}


@pytest.fixture(scope="module")
def rolled_out() -> Iterator[Cluster]:
    """Two masters and 4 Secrets, after site.yml."""
    with running_cluster("refusals", 2, 4) as cluster:
        run = cluster.playbook("site.yml")
        assert run.returncode == 0, output(run)
        yield cluster


@pytest.fixture(scope="module")
def rotated(rolled_out: Cluster) -> Cluster:
    """The same cluster after rotate.yml to a second key (the old one kept)."""
    run = rolled_out.playbook("playbooks/rotate.yml", *ROTATION)
    assert run.returncode == 0, output(run)
    return rolled_out


def encryption_configs(cluster: Cluster) -> list[Path]:
    """The encryption config each master's apiserver uses, as a path on this machine."""
    paths = []
    for master in cluster.lab.masters:
        manifest = yaml.safe_load((master.manifests / "kube-apiserver.yaml").read_text())
        flag = "--encryption-provider-config="
        config = next(
            arg[len(flag) :] for arg in manifest["spec"]["containers"][0]["command"] if arg.startswith(flag)
        )
        paths.append(master.root / config.lstrip("/"))
    return paths


def snapshot(cluster: Cluster) -> dict[Path, bytes]:
    """Every file kubelet reads on every master, and the encryption config their apiservers use."""
    files = [path for master in cluster.lab.masters for path in sorted(master.manifests.iterdir())]
    return {path: path.read_bytes() for path in files + encryption_configs(cluster)}


def key_id(cluster: Cluster, alias: str) -> str:
    client = make_kms_client(cluster.emulator.endpoint, *cluster.credentials, region=LAB_REGION)
    request = models.ListKeyDetailRequest()
    request.Limit = 100
    return next(key.KeyId for key in client.ListKeyDetail(request).KeyMetadatas if key.Alias == alias)


def said(run: subprocess.CompletedProcess[str]) -> str:
    return " ".join(run.stdout.split())


@pytest.mark.parametrize("by", ["alias", "key id"])
def test_rotation_to_the_key_in_use_is_refused(rolled_out: Cluster, by: str) -> None:
    cluster = rolled_out
    before, keys = snapshot(cluster), cluster.key_states()
    same = (
        f"tke_kms_rotate_key_alias={KEY_ALIAS}"
        if by == "alias"
        else f"tke_kms_rotate_key_id={key_id(cluster, KEY_ALIAS)}"
    )

    run = cluster.playbook(
        "playbooks/rotate.yml", "-e", "tke_kms_rotate_provider_name=tke-kms-same", "-e", same, *DELETE_OLD_KEY
    )

    assert run.returncode != 0, output(run)
    assert "is the key in use" in said(run) and "Nothing was changed" in said(run), output(run)
    assert cluster.key_states() == keys and keys[KEY_ALIAS] == "Enabled"
    assert snapshot(cluster) == before


def test_the_old_key_is_not_deleted_while_anything_uses_it(rolled_out: Cluster) -> None:
    """The deletion step alone, on a cluster whose data and configs still use the old provider."""
    cluster = rolled_out
    before, keys = snapshot(cluster), cluster.key_states()
    deletion_step = ("--start-at-task", "Read each master's encryption config", *ROTATION, *DELETE_OLD_KEY)

    run = cluster.playbook("playbooks/rotate.yml", *deletion_step)
    assert run.returncode != 0, output(run)
    assert f"still has the KMS provider {PROVIDER}; its key is not deleted" in said(run), output(run)

    # The configs on disk without the provider (the running apiservers never reread them): etcd still holds
    # every Secret stored with it.
    configs = {path: path.read_bytes() for path in encryption_configs(cluster)}
    for path in configs:
        path.write_text(yaml.safe_dump(IDENTITY_ONLY))
    try:
        run = cluster.playbook("playbooks/rotate.yml", *deletion_step)
    finally:
        for path, content in configs.items():
            path.write_bytes(content)
    assert run.returncode != 0, output(run)
    assert f"in etcd are still stored with the KMS provider {PROVIDER} (secrets)" in said(run), output(run)
    assert cluster.key_states() == keys and keys[KEY_ALIAS] == "Enabled"
    assert snapshot(cluster) == before


def test_site_after_a_rotation_with_the_old_inventory_is_refused(rotated: Cluster) -> None:
    cluster = rotated
    before, keys = snapshot(cluster), cluster.key_states()

    run = cluster.playbook("site.yml")  # the inventory still names tke-kms-plugin, its socket and its key

    assert run.returncode != 0, output(run)
    message = said(run)
    assert f"the inventory names KMS provider {PROVIDER}" in message, output(run)
    assert f"KMS provider {ROTATED} on {ROTATED_SOCKET} (the write provider for secrets)" in message, output(
        run
    )
    for setting in (
        f"tke_kms_provider_name={ROTATED}",
        f"tke_kms_plugin_name={ROTATED}",
        f"tke_kms_socket={ROTATED_SOCKET}",
        "tke_kms_key_alias / tke_kms_key_id",
    ):
        assert setting in message, output(run)
    assert "TASK [tke.kms.kms_key" not in run.stdout  # refused before the key and plugin plays
    assert cluster.key_states() == keys
    assert snapshot(cluster) == before


def test_site_does_not_switch_the_deployed_plugin_to_another_key(rotated: Cluster) -> None:
    cluster = rotated
    before, keys = snapshot(cluster), cluster.key_states()
    new_inventory_but_the_old_key = (
        *("-e", f"tke_kms_provider_name={ROTATED}", "-e", f"tke_kms_plugin_name={ROTATED}"),
        *("-e", f"tke_kms_socket={ROTATED_SOCKET}"),
    )

    run = cluster.playbook("site.yml", *new_inventory_but_the_old_key)

    assert run.returncode != 0, output(run)
    rotated_key, old_key = key_id(cluster, ROTATED_ALIAS), key_id(cluster, KEY_ALIAS)
    assert (
        f"the plugin {ROTATED} (daemonset) already runs with KMS key {rotated_key},"
        f" but this run resolved key {old_key}" in said(run)
    ), output(run)
    assert cluster.key_states() == keys
    assert snapshot(cluster) == before
    daemonset = cluster.lab.session().get(
        f"{cluster.lab.masters[0].url}/apis/apps/v1/namespaces/kube-system/daemonsets/{ROTATED}", timeout=30
    )
    assert f"--key-id={rotated_key}" in daemonset.json()["spec"]["template"]["spec"]["containers"][0]["args"]

    accepted = cluster.playbook(
        "site.yml", *new_inventory_but_the_old_key, "-e", f"tke_kms_key_alias={ROTATED_ALIAS}"
    )
    assert accepted.returncode == 0, output(accepted)
    assert all(found == cluster.seeded for found in cluster.read_seeded().values())
