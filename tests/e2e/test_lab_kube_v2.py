"""The lab's KMS v2 kube-apiserver (tests/lab/kube_apiserver) behaves like kube-apiserver 1.36 where the
rollout depends on it: core Secrets/ConfigMaps/namespaces through the generic registry, stored under
kube-apiserver's etcd keys as protobuf, encrypted by the EncryptionConfiguration, kubeadm's flags accepted,
anything else refused at start-up."""

from __future__ import annotations

import base64
import os
import subprocess

import pytest
from kubernetes import client

from tests.lab import binaries

pytestmark = pytest.mark.e2e

AESCBC_KEY = base64.b64encode(os.urandom(32)).decode()
AESCBC_SECRETS = {
    "kind": "EncryptionConfiguration",
    "apiVersion": "apiserver.config.k8s.io/v1",
    "resources": [
        {
            "resources": ["secrets"],
            "providers": [{"aescbc": {"keys": [{"name": "k1", "secret": AESCBC_KEY}]}}, {"identity": {}}],
        }
    ],
}


def test_core_objects_are_served_and_stored_like_kube_apiserver(control_plane_factory):
    plane = control_plane_factory(AESCBC_SECRETS, kms_v2=True)
    core = plane.apiserver.core()

    names = {n.metadata.name for n in core.list_namespace().items}
    secret = client.V1Secret(metadata=client.V1ObjectMeta(name="s1"), string_data={"password": "hunter2"})
    core.create_namespaced_secret("default", secret)
    config_map = client.V1ConfigMap(metadata=client.V1ObjectMeta(name="c1"), data={"k": "v"})
    core.create_namespaced_config_map("default", config_map)

    assert {"default", "kube-system", "kube-public", "kube-node-lease"} <= names
    read = core.read_namespaced_secret("s1", "default")
    assert base64.b64decode(read.data["password"]) == b"hunter2" and read.type == "Opaque"
    assert plane.etcd.get("/registry/secrets/default/s1").startswith(b"k8s:enc:aescbc:v1:k1:")
    assert plane.etcd.get("/registry/configmaps/default/c1").startswith(b"k8s\x00")  # protobuf, as 1.36
    assert plane.apiserver.get("/version").json()["gitVersion"] == f"v{plane.apiserver.version}"


def test_invalid_objects_are_refused_with_422(control_plane_factory):
    core = control_plane_factory(kms_v2=True).apiserver.core()

    with pytest.raises(client.ApiException) as refused:
        core.create_namespaced_secret(
            "default", client.V1Secret(metadata=client.V1ObjectMeta(name="Bad_Name"), data={})
        )

    assert refused.value.status == 422


@pytest.mark.parametrize(
    "flag", ["--insecure-port=0", "--authorisation-mode=RBAC", "--feature-gates=NoSuchGate=true"]
)
def test_flags_kube_apiserver_would_refuse_stop_start_up(flag):
    binary = binaries.kube_v2_binary()

    result = subprocess.run([str(binary), flag], capture_output=True, text=True, timeout=30, check=False)

    assert result.returncode != 0
    assert flag.split("=")[0].lstrip("-") in result.stderr or "feature gate" in result.stderr


def test_kubectl_and_server_side_apply_work_unchanged(control_plane_factory):
    apiserver = control_plane_factory(kms_v2=True).apiserver
    if not apiserver.kubectl_available():
        pytest.skip("no kubectl on this machine")
    manifest = (
        "apiVersion: v1\nkind: ConfigMap\nmetadata: {name: applied, namespace: default}\ndata: {k: v1}\n"
    )

    apiserver.kubectl("create", "secret", "generic", "kms-secret", "--from-literal=mykey=mydata")
    apiserver.kubectl("apply", "--server-side", "-f", "-", input=manifest)
    apiserver.kubectl("apply", "--server-side", "-f", "-", input=manifest.replace("v1}", "v2}"))
    listed = apiserver.kubectl("get", "secrets,configmaps", "-o", "name").stdout.split()
    value = apiserver.kubectl("get", "configmap", "applied", "-o", "jsonpath={.data.k}").stdout

    assert "secret/kms-secret" in listed and "configmap/applied" in listed
    assert value == "v2"
