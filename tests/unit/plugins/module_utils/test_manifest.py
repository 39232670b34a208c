"""_manifest: reading a kube-apiserver static-pod manifest and the edits the collection makes to it."""

from __future__ import annotations

import textwrap

import pytest
import yaml
from ansible_collections.tke.kms.plugins.module_utils import _manifest as mf
from ansible_collections.tke.kms.plugins.module_utils._kube_version import KubeVersion

POD = textwrap.dedent("""\
    apiVersion: v1
    kind: Pod
    metadata:
      # kubeadm's comment stays
      name: kube-apiserver
      namespace: kube-system
    spec:
      containers:
      - command:
        - kube-apiserver
        - --advertise-address=10.0.0.11
        - --etcd-servers=https://10.0.0.11:2379,https://10.0.0.12:2379
        - --feature-gates=Foo=true
        - --secure-port=6443
        image: registry.k8s.io/kube-apiserver:v1.30.2
        name: kube-apiserver
        volumeMounts:
        - mountPath: /etc/kubernetes/pki
          name: k8s-certs
          readOnly: true
      volumes:
      - hostPath:
          path: /etc/kubernetes/pki
          type: DirectoryOrCreate
        name: k8s-certs
    """)


def manifest(text: str = POD) -> mf.ApiserverManifest:
    return mf.ApiserverManifest(text, "kube-apiserver.yaml")


def container(edited: mf.ApiserverManifest) -> dict:
    text, _preserved = edited.render()
    return yaml.safe_load(text)["spec"]["containers"][0]


# -- pure functions ----------------------------------------------------------------------------------------


def test_the_encryption_flag_was_renamed_in_1_13() -> None:
    assert mf.encryption_flag_for(KubeVersion(1, 12)) == mf.LEGACY_ENCRYPTION_FLAG
    assert mf.encryption_flag_for(KubeVersion(1, 13)) == mf.ENCRYPTION_FLAG


@pytest.mark.parametrize(
    ("item", "expected"),
    [
        ("--a=b", ("--a", "b")),
        ("--a=", ("--a", "")),
        ("--a", ("--a", None)),
        ("--a=b=c", ("--a", "b=c")),
        ("kube-apiserver", (None, None)),
        ("-v=2", (None, None)),
        (3, (None, None)),
    ],
)
def test_split_flag(item, expected) -> None:
    assert mf.split_flag(item) == expected


def test_feature_gates_keep_their_order_and_skip_empty_parts() -> None:
    assert mf.parse_feature_gates("B=true, A=false,,C") == [("B", "true"), ("A", "false"), ("C", "")]
    assert mf.parse_feature_gates("") == []


def test_host_path_takes_the_longest_mount_and_the_rest_of_the_path() -> None:
    mounts = [
        {"mountPath": "/etc/kubernetes", "name": "k8s"},
        {"mountPath": "/etc/kubernetes/enc/", "name": "enc"},
    ]
    volumes = [
        {"name": "k8s", "hostPath": {"path": "/srv/k8s"}},
        {"name": "enc", "hostPath": {"path": "/srv/enc"}},
    ]
    assert mf.host_path_for(mounts, volumes, "/etc/kubernetes/enc/config.yaml") == "/srv/enc/config.yaml"
    assert mf.host_path_for(mounts, volumes, "/etc/kubernetes/admin.conf") == "/srv/k8s/admin.conf"
    assert mf.host_path_for(mounts, volumes, "/etc/kubernetes-other/x") is None  # not a path prefix
    assert (
        mf.host_path_for([{"mountPath": "/x", "name": "cfg"}], [{"name": "cfg", "configMap": {}}], "/x")
        is None
    )


@pytest.mark.parametrize(
    ("flags", "url"),
    [
        ({}, "https://127.0.0.1:6443"),
        ({"--advertise-address": "10.0.0.11", "--secure-port": "8443"}, "https://10.0.0.11:8443"),
        ({"--bind-address": "0.0.0.0", "--advertise-address": "10.0.0.11"}, "https://10.0.0.11:6443"),  # noqa: S104 - a flag value, nothing binds
        ({"--bind-address": "10.0.0.12", "--advertise-address": "10.0.0.11"}, "https://10.0.0.12:6443"),
        ({"--advertise-address": "fd00::11"}, "https://[fd00::11]:6443"),
    ],
)
def test_apiserver_url_is_this_masters_own_endpoint(flags, url) -> None:
    assert mf.apiserver_url(flags) == url


def test_etcd_settings_and_their_defaults() -> None:
    settings = mf.etcd_settings(
        {"--etcd-servers": " https://a:2379, ,https://b:2379", "--etcd-cafile": "/ca"}
    )
    assert settings == dict(
        servers=["https://a:2379", "https://b:2379"],
        ca_file="/ca",
        cert_file=None,
        key_file=None,
        prefix="/registry",
    )


# -- reading -----------------------------------------------------------------------------------------------


def test_reading_flags_version_and_gates() -> None:
    read = manifest()
    assert read.image == "registry.k8s.io/kube-apiserver:v1.30.2"
    assert read.version() == KubeVersion(1, 30, 2)
    assert read.version("1.28.5") == KubeVersion(1, 28, 5)
    assert read.flags()["--secure-port"] == "6443"
    assert read.feature_gates() == {"Foo": "true"}
    assert read.encryption_config_path() is None
    assert read.host_path_of("/etc/kubernetes/pki/ca.crt") == "/etc/kubernetes/pki/ca.crt"


def test_a_flag_and_its_value_as_two_items_and_the_last_occurrence_wins() -> None:
    text = POD.replace(
        "    - --secure-port=6443\n", "    - --secure-port\n    - '7443'\n    - --etcd-prefix=/a\n"
    )
    text = text.replace("    - --feature-gates=Foo=true\n", "    - --etcd-prefix=/first\n")
    assert manifest(text).flags()["--secure-port"] == "7443"
    assert manifest(text).flags()["--etcd-prefix"] == "/a"


def test_the_legacy_flag_names_the_config_too() -> None:
    text = POD.replace("--secure-port=6443", "--experimental-encryption-provider-config=/etc/enc.yaml")
    assert manifest(text).encryption_config_path() == "/etc/enc.yaml"
    assert manifest(text).encryption_config_host_path() == "/etc/enc.yaml"  # not mounted: the same path


@pytest.mark.parametrize(
    ("text", "message"),
    [
        ("kind: Deployment\n", "is not a Pod manifest (kind: Deployment)"),
        ("- a\n", "is not a Pod manifest (kind: list)"),
        ("kind: Pod\nspec: {}\n", "has no spec.containers list"),
        ("kind: Pod\n", "the pod has no spec mapping"),
        (
            "kind: Pod\nspec:\n  containers:\n  - name: etcd\n",
            "no container named kube-apiserver (containers: etcd)",
        ),
        (
            "kind: Pod\nspec:\n  containers:\n  - name: kube-apiserver\n    command: kube-apiserver\n",
            "command must be a list of strings",
        ),
        ("kind: Pod\nspec:\n  containers:\n  - name: kube-apiserver\n", "has neither command nor args"),
        ("kind: Pod\nspec: [\n", "kube-apiserver.yaml"),
    ],
)
def test_what_is_not_a_kube_apiserver_manifest_is_refused(text, message) -> None:
    with pytest.raises(mf.ManifestError) as refused:
        manifest(text)
    assert message in str(refused.value)


def test_a_version_the_image_does_not_tell_needs_kubernetes_version() -> None:
    read = manifest(POD.replace("kube-apiserver:v1.30.2", "kube-apiserver:latest"))
    with pytest.raises(mf.ManifestError, match="set kubernetes_version"):
        read.version()
    with pytest.raises(mf.ManifestError, match="not a Kubernetes version"):
        read.version("latest")


# -- editing -----------------------------------------------------------------------------------------------


def test_an_unchanged_manifest_renders_byte_for_byte() -> None:
    assert manifest().render() == (POD, True)


def test_a_new_flag_keeps_kubeadms_sorted_order_and_the_comments() -> None:
    edited = manifest()
    edited.set_flag(mf.ENCRYPTION_FLAG, "/etc/enc.yaml")
    text, preserved = edited.render()
    assert preserved and "# kubeadm's comment stays" in text
    assert container(edited)["command"][2:4] == [
        "--encryption-provider-config=/etc/enc.yaml",
        "--etcd-servers=https://10.0.0.11:2379,https://10.0.0.12:2379",
    ]


def test_set_flag_renames_the_legacy_flag_in_place() -> None:
    edited = manifest(
        POD.replace("--secure-port=6443", "--experimental-encryption-provider-config=/old.yaml")
    )
    edited.set_flag(mf.ENCRYPTION_FLAG, "/new.yaml", replaces=(mf.LEGACY_ENCRYPTION_FLAG,))
    assert container(edited)["command"][-1] == "--encryption-provider-config=/new.yaml"


def test_merging_feature_gates_keeps_the_existing_ones_first() -> None:
    edited = manifest()
    edited.merge_feature_gates({"KMSv1": True, "Foo": False})
    assert edited.feature_gates() == {"Foo": "false", "KMSv1": "true"}
    assert "--feature-gates=Foo=false,KMSv1=true" in container(edited)["command"]
    unchanged = manifest()
    unchanged.merge_feature_gates({})
    assert unchanged.render() == (POD, True)


def test_ensure_host_path_adds_a_volume_and_its_mount_once() -> None:
    edited = manifest()
    mount = mf.HostPathMount("enc", "/etc/enc.yaml", "File", True)
    edited.ensure_host_path(mount)
    once = edited.render()[0]
    edited.ensure_host_path(mount)
    assert edited.render()[0] == once
    pod = yaml.safe_load(once)
    assert {"mountPath": "/etc/enc.yaml", "name": "enc", "readOnly": True} in pod["spec"]["containers"][0][
        "volumeMounts"
    ]
    assert {"hostPath": {"path": "/etc/enc.yaml", "type": "File"}, "name": "enc"} in pod["spec"]["volumes"]


def test_a_path_an_existing_mount_shows_needs_no_new_volume() -> None:
    edited = manifest()
    edited.ensure_host_path(mf.HostPathMount("pki", "/etc/kubernetes/pki/extra", "Directory", True))
    assert edited.render() == (POD, True)


def test_a_volume_of_that_name_that_is_not_host_path_is_refused() -> None:
    text = POD.replace(
        "  - hostPath:\n      path: /etc/kubernetes/pki\n      type: DirectoryOrCreate\n",
        "  - emptyDir: {}\n",
    )
    with pytest.raises(mf.ManifestError, match="is not a hostPath volume"):
        manifest(text).ensure_host_path(mf.HostPathMount("k8s-certs", "/srv/x", "Directory", True))


def test_removing_what_the_collection_adds_restores_the_manifest() -> None:
    edited = manifest()
    edited.set_flag(mf.ENCRYPTION_FLAG, "/etc/enc.yaml")
    edited.ensure_host_path(mf.HostPathMount("enc", "/etc/enc.yaml", "File", True))
    edited.set_annotation(mf.CONFIG_CHECKSUM_ANNOTATION, "abc")
    again = manifest(edited.render()[0])
    assert again.remove_flags(mf.ENCRYPTION_FLAGS) == ["--encryption-provider-config=/etc/enc.yaml"]
    assert again.remove_host_path("enc") == (True, True)
    assert again.remove_annotation(mf.CONFIG_CHECKSUM_ANNOTATION) is True
    assert yaml.safe_load(again.render()[0]) == yaml.safe_load(POD)
    assert again.remove_flags(mf.ENCRYPTION_FLAGS) == [] and again.remove_host_path("enc") == (False, False)
    assert again.remove_annotation(mf.CONFIG_CHECKSUM_ANNOTATION) is False


def test_remove_flags_takes_a_separate_value_item_too() -> None:
    edited = manifest(
        POD.replace("    - --secure-port=6443\n", "    - --encryption-provider-config\n    - /e.yaml\n")
    )
    assert edited.remove_flags(mf.ENCRYPTION_FLAGS) == ["--encryption-provider-config=/e.yaml"]
    assert "/e.yaml" not in container(edited)["command"]


def test_a_non_host_path_volume_of_that_name_is_not_removed() -> None:
    text = POD.replace(
        "  - hostPath:\n      path: /etc/kubernetes/pki\n      type: DirectoryOrCreate\n",
        "  - emptyDir: {}\n",
    )
    edited = manifest(text)
    assert edited.remove_host_path("k8s-certs") == (False, False)
    assert edited.render() == (text, True)


def test_sequence_refuses_a_null_or_a_mapping() -> None:
    edited = manifest(POD.replace("  volumes:\n", "  hostAliases:\n  volumes:\n", 1))
    with pytest.raises(mf.ManifestError, match="hostAliases is empty"):
        edited.sequence(edited.spec, "hostAliases")
    assert edited.sequence(edited.spec, "initContainers").value == []
