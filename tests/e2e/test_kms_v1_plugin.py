"""Our plugin behind a real kube-apiserver v1.20.2 (KMS v1), with the emulator as Tencent KMS."""

from __future__ import annotations

import pytest
from kubernetes import client
from kubernetes.client.exceptions import ApiException

from tests.e2e.conftest import PROVIDER
from tests.e2e.secrets import create_secret, read_secret
from tests.lab import encryption
from tests.lab.runtime import wait_for

pytestmark = pytest.mark.e2e


def kms_v1_config(socket) -> dict:
    return encryption.config([encryption.kms_v1(PROVIDER, socket), encryption.identity()])


def test_seed_verification_secret_is_encrypted_by_tencent_kms(control_plane_factory, kms_plugin, tencent_kms):
    plane = control_plane_factory(kms_v1_config(kms_plugin.socket), controllers=True)
    api = plane.apiserver

    create_secret(api, "kms-secret", "mykey", "mydata")
    assert read_secret(api, "kms-secret", "mykey") == "mydata"

    raw = plane.etcd.get(api.secret_key("kms-secret"))
    assert raw.startswith(b"k8s:enc:kms:v1:tke-kms-plugin:")
    assert b"mydata" not in raw
    assert api.check("/healthz/kms-provider-0") == (200, "ok")
    assert tencent_kms.calls("Encrypt") >= 1

    # Cold apiserver and cold plugin: reading now needs Tencent KMS to decrypt the DEK.
    decrypts = tencent_kms.calls("Decrypt")
    kms_plugin.stop()
    kms_plugin.start()
    plane.restart_apiserver()
    assert read_secret(api, "kms-secret", "mykey") == "mydata"
    assert tencent_kms.calls("Decrypt") > decrypts


def test_plugin_down_reads_cached_data_writes_fail_then_recover(control_plane_factory, kms_plugin):
    plane = control_plane_factory(kms_v1_config(kms_plugin.socket))
    api = plane.apiserver
    core = api.core()
    create_secret(api, "before", "mykey", "mydata")

    kms_plugin.kill()

    assert read_secret(api, "before", "mykey") == "mydata"  # the apiserver's DEK cache
    body = client.V1Secret(metadata=client.V1ObjectMeta(name="during"), string_data={"mykey": "x"})
    with pytest.raises(ApiException) as failure:
        core.create_namespaced_secret("default", body)
    assert failure.value.status == 500
    assert "rpc error" in failure.value.body  # the KMS gRPC call failed, nothing was stored
    assert plane.etcd.get(api.secret_key("during")) is None
    api.wait_check("/healthz/kms-provider-0", expect_ok=False, timeout=60)

    kms_plugin.start()

    def write_works() -> bool:
        after = client.V1Secret(metadata=client.V1ObjectMeta(name="after"), string_data={"mykey": "back"})
        core.create_namespaced_secret("default", after)
        return True

    wait_for(write_works, timeout=60, what="a Secret write after the plugin came back")
    assert read_secret(api, "after", "mykey") == "back"
    assert plane.etcd.get(api.secret_key("after")).startswith(b"k8s:enc:kms:v1:tke-kms-plugin:")
    api.wait_check("/healthz/kms-provider-0", timeout=60)
