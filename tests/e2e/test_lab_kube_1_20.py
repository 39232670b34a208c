"""The lab itself (the kube-1.20 lab, kube-apiserver v1.20.2): what it stores is what etcd really holds.

These use identity, aescbc and the no-op KMS plugin, so they check the lab and not our plugin.
"""

from __future__ import annotations

import base64
import stat

import pytest
import yaml
from kubernetes import client

from tests.lab import encryption
from tests.lab.runtime import wait_for

pytestmark = pytest.mark.e2e


def create_secret(api, name: str, data: dict[str, str], namespace: str = "default") -> None:
    body = client.V1Secret(metadata=client.V1ObjectMeta(name=name), string_data=data)
    api.core().create_namespaced_secret(namespace, body)


def read_secret(api, name: str, namespace: str = "default") -> dict[str, str]:
    secret = api.core().read_namespaced_secret(name, namespace)
    return {key: base64.b64decode(value).decode() for key, value in secret.data.items()}


def test_identity_stores_plain_protobuf_and_admin_conf_is_kubeadm_like(control_plane):
    api = control_plane.apiserver
    create_secret(api, "plain", {"mykey": "mydata"})

    raw = control_plane.etcd.get(api.secret_key("plain"))
    assert raw.startswith(b"k8s\x00")  # the apiserver's protobuf envelope, unencrypted
    assert b"mydata" in raw  # so a raw read really shows plaintext when it is there
    assert (
        b"mydata" in control_plane.etcd.etcdctl("get", api.secret_key("plain"), "--print-value-only").stdout
    )

    conf = yaml.safe_load(api.admin_conf.read_text())
    assert stat.S_IMODE(api.admin_conf.stat().st_mode) == 0o600
    assert conf["users"][0]["user"].keys() == {"client-certificate-data", "client-key-data"}
    assert "certificate-authority-data" in conf["clusters"][0]["cluster"]
    if api.kubectl_available():
        assert api.kubectl("get", "secret", "plain", "-o", "jsonpath={.data.mykey}").stdout == "bXlkYXRh"


def test_aescbc_then_restart_with_a_new_config_keeps_old_data_readable(control_plane_factory):
    key = encryption.aescbc("key1")
    plane = control_plane_factory(encryption.config([key, encryption.identity()]))
    api = plane.apiserver
    create_secret(api, "before", {"mykey": "mydata"})

    raw = plane.etcd.get(api.secret_key("before"))
    assert raw.startswith(b"k8s:enc:aescbc:v1:key1:")
    assert b"mydata" not in raw

    plane.restart_apiserver(encryption.config([encryption.identity(), key]))
    create_secret(api, "after", {"mykey": "other"})

    assert read_secret(api, "before") == {"mykey": "mydata"}
    assert plane.etcd.get(api.secret_key("after")).startswith(b"k8s\x00")


def test_noop_kms_v1_envelope_health_and_decrypt_after_restart(control_plane_factory, noop_plugin_factory):
    plugin = noop_plugin_factory()
    plane = control_plane_factory(
        encryption.config([encryption.kms_v1("noop", plugin.socket), encryption.identity()])
    )
    api = plane.apiserver
    create_secret(api, "kms-secret", {"mykey": "mydata"})

    raw = plane.etcd.get(api.secret_key("kms-secret"))
    assert raw.startswith(b"k8s:enc:kms:v1:noop:")
    assert b"mydata" not in raw
    assert api.check("/healthz/kms-provider-0") == (200, "ok")

    api.restart()  # cold DEK cache: reading needs the plugin's Decrypt
    assert read_secret(api, "kms-secret") == {"mykey": "mydata"}
    counts = plugin.stop()
    assert counts["v1.Decrypt"] >= 2  # the health probe's and the secret's DEK


def test_controllers_run_and_their_token_secrets_are_encrypted(control_plane_factory, noop_plugin_factory):
    plugin = noop_plugin_factory()
    config = encryption.config([encryption.kms_v1("noop", plugin.socket), encryption.identity()])
    plane = control_plane_factory(config, controllers=True)
    api = plane.apiserver

    def token_secret():
        items = api.core().list_namespaced_secret("default").items
        return next((s.metadata.name for s in items if s.type == "kubernetes.io/service-account-token"), None)

    name = wait_for(token_secret, timeout=120, what="controller-manager's default token Secret")
    assert plane.etcd.get(api.secret_key(name)).startswith(b"k8s:enc:kms:v1:noop:")

    plane.restart_apiserver()
    assert all(c.process.running() for c in plane.controllers)
