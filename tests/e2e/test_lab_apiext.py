"""The lab itself (the apiext lab, k8s.io/apiserver >= 0.29): KMS v2 and v1 envelopes on the test CRD."""

from __future__ import annotations

import pytest

from tests.lab import encryption
from tests.lab.apiext import RESOURCE

pytestmark = pytest.mark.e2e


def test_noop_kms_v2_envelope_readyz_and_decrypt_after_restart(apiext_factory, noop_plugin_factory):
    plugin = noop_plugin_factory(key_id="noop-key-1")
    lab = apiext_factory(encryption.config([encryption.kms_v2("noop", plugin.socket)], (RESOURCE,)))
    api = lab.apiserver
    api.wait_check("/readyz/kms-providers")
    api.create_widget("w1", {"password": "s3cr3t"})

    raw = lab.etcd.get(api.widget_key("w1"))
    assert raw.startswith(b"k8s:enc:kms:v2:noop:")
    assert b"s3cr3t" not in raw
    assert b"noop-key-1" in raw  # EncryptedObject.keyID is stored in the clear

    api.restart()
    assert api.get_widget("w1")["data"] == {"password": "s3cr3t"}
    assert [w["metadata"]["name"] for w in api.list_widgets()] == ["w1"]
    widget = api.custom_objects().get_cluster_custom_object("example.com", "v1", "widgets", "w1")
    assert widget["data"] == {"password": "s3cr3t"}
    assert plugin.stop()["v2.Decrypt"] >= 1


def test_kms_v1_behind_its_feature_gate(apiext_factory, noop_plugin_factory):
    plugin = noop_plugin_factory()
    config = encryption.config([encryption.kms_v1("noop", plugin.socket)], (RESOURCE,))
    lab = apiext_factory(config, kms_v1=True)
    lab.apiserver.wait_check("/readyz/kms-provider-0")
    lab.apiserver.create_widget("w1", {"password": "s3cr3t"})
    assert lab.etcd.get(lab.apiserver.widget_key("w1")).startswith(b"k8s:enc:kms:v1:noop:")
