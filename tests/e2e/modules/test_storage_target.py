"""secret_storage_info and encryption_verify `target` against a real kube-apiserver 1.20.2 + etcd (tests/lab).

The apiserver goes through the states of a key rotation and of turning encryption off, with two no-op KMS v1
plugins (old and new provider), and the modules' counts are checked against what etcd really holds.
"""

from __future__ import annotations

from pathlib import Path

import pytest
from ansible_collections.tke.kms.plugins.modules import encryption_verify, secret_storage_info
from kubernetes import client

from tests.lab import encryption
from tests.lab.apiserver import write_manifest
from tests.unit.collection import run_module

pytestmark = pytest.mark.e2e
OLD, NEW = "tke-kms-plugin", "tke-kms-plugin-2"
SEEDED = [f"default/seed-{number}" for number in range(4)]


def storage(access: dict, **args: object) -> dict:
    return run_module(secret_storage_info.main, {"manifest_path": access["manifest_path"], **args})


def restart(plane, manifest: Path, providers: list) -> None:
    plane.restart_apiserver(encryption.config(providers))
    write_manifest(manifest, plane.apiserver.argv())


def rewrite_every_secret(plane) -> None:
    """What tke.kms.reencrypt does: an unchanged update makes the apiserver store each Secret again."""
    core = plane.apiserver.core()
    for secret in core.list_secret_for_all_namespaces().items:
        core.replace_namespaced_secret(secret.metadata.name, secret.metadata.namespace, secret)


def test_targets_through_a_rotation_and_turning_encryption_off(
    control_plane_factory, noop_plugin_factory, tmp_path
) -> None:
    old, new = noop_plugin_factory("old"), noop_plugin_factory("new")
    plane = control_plane_factory(
        encryption.config([encryption.kms_v1(OLD, old.socket), encryption.identity()])
    )
    for name in SEEDED:
        plane.apiserver.core().create_namespaced_secret(
            "default",
            client.V1Secret(metadata=client.V1ObjectMeta(name=name.split("/")[1]), string_data={"k": "v"}),
        )
    manifest = write_manifest(tmp_path / "kube-apiserver.yaml", plane.apiserver.argv())
    access = {"manifest_path": str(manifest), "kubeconfig": str(plane.apiserver.admin_conf)}
    before = storage(access, provider_name=OLD)
    assert before["target"] == "kms" and before["by_storage"][f"kms:v1:{OLD}"] == len(SEEDED)
    total = before["total"]

    # rotation, write phase: [new, old, identity]; new writes go to the new provider
    restart(
        plane,
        manifest,
        [encryption.kms_v1(NEW, new.socket), encryption.kms_v1(OLD, old.socket), encryption.identity()],
    )
    plane.apiserver.core().create_namespaced_secret(
        "default",
        client.V1Secret(metadata=client.V1ObjectMeta(name="after-rotation"), string_data={"k": "v"}),
    )
    total += 1
    rotating = storage(access, provider_name=NEW)
    assert rotating["encrypted_count"] == 1 and rotating["pending_count"] == total - 1
    assert set(SEEDED) <= set(rotating["pending"]) and "default/after-rotation" not in rotating["pending"]
    assert rotating["by_storage"][f"kms:v1:{OLD}"] == len(SEEDED)

    verify_new = run_module(encryption_verify.main, dict(access, provider_name=NEW))
    assert verify_new["probe"]["storage"] == f"kms:v1:{NEW}" and verify_new["target"] == "kms"
    assert verify_new["failed"] is True and verify_new["encrypted_count"] == 1
    assert f"{total - 1} of {total} Secrets are not yet stored with {NEW}" in verify_new["msg"]
    assert "a new Secret is stored" not in verify_new["msg"]

    # every encrypted Secret is pending for identity, whatever its provider
    clear = storage(access, provider_name=NEW, target="identity")
    encrypted = total - clear["by_storage"].get("identity", 0)
    assert clear["target"] == "identity" and clear["pending_count"] == encrypted >= len(SEEDED) + 1
    assert "default/after-rotation" in clear["pending"] and set(SEEDED) <= set(clear["pending"])
    assert clear["encrypted_count"] == 1  # still counts provider_name only
    not_clear = run_module(encryption_verify.main, dict(access, target="identity", fail_on_pending=False))
    assert not_clear["failed"] is True and not_clear["probe"]["storage"] == f"kms:v1:{NEW}"
    assert f"a new Secret is stored as kms:v1:{NEW}, not in the clear" in not_clear["msg"]

    # turning encryption off, decrypt phase: [identity, new, old]
    restart(
        plane,
        manifest,
        [encryption.identity(), encryption.kms_v1(NEW, new.socket), encryption.kms_v1(OLD, old.socket)],
    )
    decrypting = run_module(encryption_verify.main, dict(access, target="identity"))
    assert decrypting["probe"]["storage"] == "identity" and decrypting["probe"]["plaintext_in_etcd"] is True
    assert decrypting["failed"] is True and "new Secret" not in decrypting["msg"]
    assert f"{encrypted} of {total} Secrets are still stored encrypted" in decrypting["msg"]

    rewrite_every_secret(plane)
    done = storage(access, target="identity")
    assert (done["pending_count"], done["pending"], done["encrypted_count"]) == (0, [], 0)
    assert done["by_storage"] == {"identity": total}
    verified = run_module(encryption_verify.main, dict(access, target="identity"))
    assert not verified.get("failed") and verified["pending_count"] == 0 and verified["changed"] is False
    back = storage(access, provider_name=NEW)  # target kms: everything in the clear is pending again
    assert back["pending_count"] == total and back["encrypted_count"] == 0
