"""Our plugin behind the modern KMS v2 code path (k8s.io/apiserver >= 0.29: the apiext lab) on a CRD."""

from __future__ import annotations

import itertools

import pytest

from tests.e2e.conftest import PROVIDER
from tests.lab import encryption
from tests.lab.apiext import RESOURCE
from tests.lab.envelope import parse_v2
from tests.lab.runtime import wait_for

pytestmark = pytest.mark.e2e
SEED_ROTATION_TIMEOUT = 180  # the apiserver polls Status once a minute


def kms_v2_config(socket) -> dict:
    return encryption.config([encryption.kms_v2(PROVIDER, socket)], (RESOURCE,))


def test_v2_envelope_readyz_kdf_and_decrypt_after_restart(apiext_factory, kms_plugin, tencent_kms):
    lab = apiext_factory(kms_v2_config(kms_plugin.socket))
    api = lab.apiserver
    api.wait_check("/readyz/kms-providers")

    api.create_widget("w1", {"password": "s3cr3t"})
    raw = lab.etcd.get(api.widget_key("w1"))
    assert raw.startswith(b"k8s:enc:kms:v2:tke-kms-plugin:")
    assert b"s3cr3t" not in raw
    assert tencent_kms.key_id in parse_v2(raw).key_id

    # KDF: writes derive keys from one seed; Tencent KMS is not called per write.
    encrypts = tencent_kms.calls("Encrypt")
    for i in range(20):
        api.create_widget(f"bulk-{i}", {"password": f"p{i}"})
    assert tencent_kms.calls("Encrypt") == encrypts

    # Cold apiserver and cold plugin: reading needs Tencent KMS to decrypt the stored seed.
    decrypts = tencent_kms.calls("Decrypt")
    kms_plugin.stop()
    kms_plugin.start()
    api.restart()
    api.wait_check("/readyz/kms-providers")
    assert api.get_widget("w1")["data"] == {"password": "s3cr3t"}
    assert tencent_kms.calls("Decrypt") > decrypts


def test_new_cmk_rotates_key_id_and_old_objects_still_read(apiext_factory, kms_plugin, tencent_kms):
    lab = apiext_factory(kms_v2_config(kms_plugin.socket))
    api = lab.apiserver
    api.wait_check("/readyz/kms-providers")
    api.create_widget("old", {"password": "old-secret"})
    old_key_id = parse_v2(lab.etcd.get(api.widget_key("old"))).key_id

    new_cmk = tencent_kms.new_key("tke-kms-e2e-rotated")
    encrypts = tencent_kms.calls("Encrypt")
    kms_plugin.stop()
    kms_plugin.start(key_id=new_cmk)

    probes = itertools.count()

    def key_id_of_a_new_write() -> str | None:
        name = f"probe-{next(probes)}"
        api.create_widget(name, {"password": "probe"})
        key_id = parse_v2(lab.etcd.get(api.widget_key(name))).key_id
        return key_id if key_id != old_key_id else None

    new_key_id = wait_for(
        key_id_of_a_new_write, timeout=SEED_ROTATION_TIMEOUT, interval=2, what="writes under the new key_id"
    )
    assert new_cmk in new_key_id
    assert tencent_kms.calls("Encrypt") > encrypts  # a new seed, encrypted with the new CMK
    assert api.get_widget("old")["data"] == {"password": "old-secret"}

    api.restart()  # cold: the old object's seed must be decrypted again, under the old key
    api.wait_check("/readyz/kms-providers")
    assert api.get_widget("old")["data"] == {"password": "old-secret"}
    api.create_widget("new", {"password": "new-secret"})
    assert parse_v2(lab.etcd.get(api.widget_key("new"))).key_id == new_key_id
