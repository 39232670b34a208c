"""The roles used on their own (docs/roles.md): on a one-master chroot lab where the plugin already runs (a
static pod started by the kms_plugin role), a playbook with only tke.kms.encryption_config and
tke.kms.apiserver turns encryption on - new Secrets are stored with the KMS provider, the existing ones still
read back - and tke.kms.reencrypt alone then rewrites the existing ones. The plugin gets the masters' own KMS
endpoint (tke_kms_plugin_kms_endpoint) and pull policy.
"""

from __future__ import annotations

import base64
import os
import secrets
from collections.abc import Iterator

import pytest
import yaml
from tke_kms_plugin.emulator.testing import start_emulator_process

from tests.lab.masters import MasterLab, rollout_vars
from tests.lab.playbooks import ansible_playbook, output

pytestmark = [pytest.mark.lab_masters, pytest.mark.e2e]
PROVIDER = "tke-kms-plugin"
PREFIX = f"k8s:enc:kms:v1:{PROVIDER}:".encode()
SEEDED = {f"alone-{number}": secrets.token_hex(8) for number in range(3)}


def play(hosts: str, *roles: object) -> dict:
    return {"hosts": hosts, "gather_facts": False, "roles": list(roles)}


@pytest.fixture(scope="module")
def lab() -> Iterator[MasterLab]:
    """One master (kube-apiserver only) with the plugin already running as a static pod."""
    if os.geteuid() != 0:
        pytest.skip("chroot masters need root")
    masters = MasterLab(f"alone-{os.getpid()}", 1, components=("kube-apiserver",)).start()
    secret_id, secret_key = "AKIDtkekmsalone", secrets.token_urlsafe(24)
    emulator = start_emulator_process({secret_id: secret_key}, host=masters.gateway)
    try:
        masters.write_inventory(
            rollout_vars(
                emulator.url,
                secret_id,
                secret_key,
                tke_kms_key_alias="roles-alone",
                # The masters' own endpoint (the controller's kms_key role keeps tke_kms_api_endpoint).
                tke_kms_plugin_kms_endpoint=f"{emulator.url}/",
                tke_kms_plugin_image_pull_policy="Never",
            )
        )
        masters.create_secrets(SEEDED)
        plugin = [
            play("localhost", "tke.kms.kms_key"),
            play("masters", {"role": "tke.kms.kms_plugin", "vars": {"kms_plugin_mode": "static_pod"}}),
        ]
        started = run_plays(masters, plugin)
        assert started.returncode == 0, output(started)
        pod = yaml.safe_load((masters.masters[0].manifests / "tke-kms-plugin.yaml").read_text())
        container = pod["spec"]["containers"][0]
        assert f"--kms-endpoint={emulator.url}/" in container["args"]
        assert container["imagePullPolicy"] == "Never"
        yield masters
    finally:
        emulator.stop()
        masters.stop()


def run_plays(masters: MasterLab, plays: list[dict]):
    playbook = masters.directory / "roles-alone.yml"
    playbook.write_text(yaml.safe_dump(plays, sort_keys=False))
    return ansible_playbook(str(playbook), "-i", str(masters.inventory), timeout=300)


def etcd_value(masters: MasterLab, name: str) -> bytes:
    stored = masters.etcd.get(f"/registry/secrets/default/{name}")
    assert stored is not None, name
    return stored


def read_secret(masters: MasterLab, name: str) -> str:
    with masters.session() as session:
        url = f"{masters.masters[0].url}/api/v1/namespaces/default/secrets/{name}"
        found = session.get(url, timeout=30)
        found.raise_for_status()
    return base64.b64decode(found.json()["data"]["value"]).decode()


def test_encryption_config_and_apiserver_alone_turn_encryption_on(lab: MasterLab) -> None:
    master = lab.masters[0]
    run = run_plays(
        lab,
        [
            dict(
                play(
                    "masters",
                    {"role": "tke.kms.encryption_config", "vars": {"encryption_config_phase": "write"}},
                    "tke.kms.apiserver",
                ),
                serial=1,
                any_errors_fatal=True,
            )
        ],
    )
    assert run.returncode == 0, output(run)

    config = yaml.safe_load(master.path("/etc/kubernetes/encryption-provider-config.yaml").read_text())
    providers = config["resources"][0]["providers"]
    assert [next(iter(p)) for p in providers] == ["kms", "identity"]
    assert providers[0]["kms"]["endpoint"] == "unix:///var/run/tke-kms-plugin/server.sock"
    manifest = (master.manifests / "kube-apiserver.yaml").read_text()
    assert "--encryption-provider-config=/etc/kubernetes/encryption-provider-config.yaml" in manifest
    with lab.session() as session:
        checks = session.get(f"{master.url}/readyz?verbose", timeout=30).text
    assert "[+]kms-provider-0 ok" in checks, checks

    lab.create_secrets({"after-roles": "written-later"})
    assert etcd_value(lab, "after-roles").startswith(PREFIX)
    assert read_secret(lab, "after-roles") == "written-later"
    for name, value in SEEDED.items():
        assert not etcd_value(lab, name).startswith(PREFIX)  # stored before: in the clear until rewritten
        assert read_secret(lab, name) == value


def test_reencrypt_alone_rewrites_what_was_stored_before(lab: MasterLab) -> None:
    run = run_plays(lab, [play("masters", "tke.kms.reencrypt")])
    assert run.returncode == 0, output(run)
    for name, value in SEEDED.items():
        stored = etcd_value(lab, name)
        assert stored.startswith(PREFIX) and value.encode() not in stored
        assert read_secret(lab, name) == value


def test_kms_plugin_refuses_pull_secrets_for_a_static_pod(lab: MasterLab) -> None:
    manifest = lab.masters[0].manifests / "tke-kms-plugin.yaml"
    before = manifest.read_bytes()
    static = {
        "kms_plugin_mode": "static_pod",
        "kms_plugin_image_pull_secrets": ["tcr-pull"],
        "kms_plugin_key_id": "refused-before-use",  # no kms_key play in this run
    }
    run = run_plays(lab, [play("masters", {"role": "tke.kms.kms_plugin", "vars": static})])
    assert run.returncode != 0
    assert "cannot be used with kms_plugin_mode static_pod" in run.stdout, output(run)
    assert manifest.read_bytes() == before
