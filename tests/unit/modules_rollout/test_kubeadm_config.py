"""The kubeadm ClusterConfiguration edit (module_utils/_kubeadm_config.py) and module tke.kms.kubeadm_config
with a local kubeadm config file: kubeadm API v1beta2, v1beta3 and v1beta4, taking it out again to the very
bytes, idempotence, refusals. The ConfigMap path and a real kubeadm: test_kubeadm_config_lab.py."""

from __future__ import annotations

import hashlib
from pathlib import Path

import pytest
import yaml
from ansible_collections.tke.kms.plugins.module_utils import _kubeadm_config as kc
from ansible_collections.tke.kms.plugins.module_utils import _manifest as mf
from ansible_collections.tke.kms.plugins.modules import apiserver_manifest, kubeadm_config

from tests.unit.collection import run_module

CONFIG = "/etc/kubernetes/encryption-provider-config.yaml"
SOCKET_DIR = "/var/run/tke-kms-plugin"
VOLUMES = ["encryption-provider-config", "tke-kms-plugin-socket"]

# As kubeadm 1.20 writes it into kube-system/kubeadm-config, with a comment an operator added.
V1BETA2 = """apiServer:
  extraArgs:
    authorization-mode: Node,RBAC
  timeoutForControlPlane: 4m0s
apiVersion: kubeadm.k8s.io/v1beta2
certificatesDir: /etc/kubernetes/pki
clusterName: kubernetes
controllerManager: {}
dns:
  type: CoreDNS
etcd:
  local:
    dataDir: /var/lib/etcd
imageRepository: k8s.gcr.io
kind: ClusterConfiguration
kubernetesVersion: v1.20.2
networking:
  dnsDomain: cluster.local   # keep: set by hand
  serviceSubnet: 10.96.0.0/12
scheduler: {}
"""

V1BETA3 = """apiVersion: kubeadm.k8s.io/v1beta3
kind: ClusterConfiguration
kubernetesVersion: v1.28.4
apiServer:
  extraArgs:
    feature-gates: "SomeGate=false"
    audit-log-path: /var/log/kubernetes/audit.log
  extraVolumes:
    - name: audit
      hostPath: /var/log/kubernetes
      mountPath: /var/log/kubernetes
      pathType: DirectoryOrCreate
"""

V1BETA4 = """apiVersion: kubeadm.k8s.io/v1beta4
kind: ClusterConfiguration
kubernetesVersion: v1.31.1
apiServer:
  extraArgs:
  - name: audit-log-path
    value: /var/log/kubernetes/audit.log
  - name: encryption-provider-config
    value: /etc/kubernetes/old-config.yaml
controllerManager: {}
"""


@pytest.fixture
def encrypted_manifest(manifest_text) -> mf.ApiserverManifest:
    return mf.ApiserverManifest(manifest_text("1.20.encrypted"), "kube-apiserver.yaml")


def apply(text: str, manifest: mf.ApiserverManifest, gates: tuple[str, ...] = ("KMSv1",)) -> str:
    config = kc.ClusterConfiguration(text, "test")
    config.apply(kc.wanted_from_manifest(manifest, SOCKET_DIR, gates))
    return config.render()


def remove(text: str) -> tuple[str, dict[str, list[str]]]:
    config = kc.ClusterConfiguration(text, "test")
    removed = config.remove(VOLUMES)
    return config.render(), removed


def test_v1beta2_gets_the_flag_and_volumes_and_gives_them_back_byte_for_byte(encrypted_manifest) -> None:
    edited = apply(V1BETA2, encrypted_manifest)
    api_server = yaml.safe_load(edited)["apiServer"]
    assert api_server["extraArgs"] == {
        "authorization-mode": "Node,RBAC",
        "encryption-provider-config": CONFIG,
    }
    assert api_server["extraVolumes"] == [
        {"name": VOLUMES[0], "hostPath": CONFIG, "mountPath": CONFIG, "readOnly": True, "pathType": "File"},
        {
            "name": VOLUMES[1],
            "hostPath": SOCKET_DIR,
            "mountPath": SOCKET_DIR,
            "readOnly": False,
            "pathType": "DirectoryOrCreate",
        },
    ]
    assert "  dnsDomain: cluster.local   # keep: set by hand\n" in edited
    assert apply(edited, encrypted_manifest) == edited  # idempotent
    back, removed = remove(edited)
    assert back == V1BETA2
    assert removed == {"flags": [f"encryption-provider-config={CONFIG}"], "volumes": VOLUMES}
    assert remove(back) == (V1BETA2, {"flags": [], "volumes": []})


def test_v1beta3_keeps_other_args_volumes_and_gates(manifest_text) -> None:
    pod = manifest_text("1.30.encrypted").replace(
        "--encryption-provider-config=", "--feature-gates=KMSv1=true\n    - --encryption-provider-config="
    )
    manifest = mf.ApiserverManifest(pod, "kube-apiserver.yaml")
    edited = apply(V1BETA3, manifest)
    loaded = yaml.safe_load(edited)["apiServer"]
    assert loaded["extraArgs"]["feature-gates"] == "SomeGate=false,KMSv1=true"
    assert loaded["extraArgs"]["audit-log-path"] == "/var/log/kubernetes/audit.log"
    assert [v["name"] for v in loaded["extraVolumes"]] == ["audit", *VOLUMES]
    assert edited.startswith(
        V1BETA3.split("  extraVolumes:", maxsplit=1)[0].replace(
            '"SomeGate=false"', '"SomeGate=false,KMSv1=true"'
        )
    )
    assert apply(edited, manifest) == edited
    back, _ = remove(edited)
    # the gate stays (as in the manifest: KMS v1 may still be in use elsewhere); all else is as it was
    assert back == V1BETA3.replace('"SomeGate=false"', '"SomeGate=false,KMSv1=true"')


def test_v1beta4_list_args(encrypted_manifest) -> None:
    edited = apply(V1BETA4, encrypted_manifest)
    args = yaml.safe_load(edited)["apiServer"]["extraArgs"]
    assert args == [
        {"name": "audit-log-path", "value": "/var/log/kubernetes/audit.log"},
        {"name": "encryption-provider-config", "value": CONFIG},  # updated where it stood
    ]
    assert apply(edited, encrypted_manifest) == edited
    back, removed = remove(edited)
    assert removed["flags"] == [f"encryption-provider-config={CONFIG}"]
    assert yaml.safe_load(back)["apiServer"]["extraArgs"] == [args[0]]
    assert "extraVolumes" not in back and back.endswith("controllerManager: {}\n")


def test_automatic_reload_copies_the_flag_and_the_directory_mount(tmp_path, manifest_text) -> None:
    (tmp_path / "manifests").mkdir()
    path = tmp_path / "manifests" / "kube-apiserver.yaml"
    path.write_text(manifest_text("1.30"))
    config = "/etc/kubernetes/encryption/config.yaml"
    result = run_module(
        apiserver_manifest.main,
        dict(
            path=str(path),
            encryption_config_path=config,
            automatic_reload=True,
            backup_dir=str(tmp_path / "b"),
        ),
    )
    assert result["changed"], result
    manifest = mf.ApiserverManifest(path.read_text(), str(path))
    api_server = yaml.safe_load(apply(V1BETA3, manifest))["apiServer"]
    assert api_server["extraArgs"]["encryption-provider-config"] == config
    assert api_server["extraArgs"]["encryption-provider-config-automatic-reload"] == "true"
    directory = [v for v in api_server["extraVolumes"] if v["name"] == "encryption-provider-config"]
    assert directory == [
        {
            "name": "encryption-provider-config",
            "hostPath": "/etc/kubernetes/encryption",
            "mountPath": "/etc/kubernetes/encryption",
            "readOnly": True,
            "pathType": "DirectoryOrCreate",
        }
    ]


@pytest.mark.parametrize(
    ("text", "message"),
    [
        (
            V1BETA2.replace("v1beta2", "v1beta1"),
            "has apiVersion kubeadm.k8s.io/v1beta1; this collection edits",
        ),
        (V1BETA2.replace("kind: ClusterConfiguration", "kind: InitConfiguration"), "is not a kubeadm"),
        ("apiServer: [1\n", "is not valid YAML (line"),
        (V1BETA3.replace("  extraArgs:\n", "  extraArgs: 3\n  x:\n"), "extraArgs must be a mapping"),
    ],
    ids=["unknown-api-version", "other-kind", "bad-yaml", "extra-args-not-a-mapping"],
)
def test_refusals(text, message, encrypted_manifest) -> None:
    with pytest.raises(kc.KubeadmConfigError, match=message.replace("(", r"\(")):
        apply(text, encrypted_manifest)


def test_a_manifest_without_the_flag_has_nothing_to_copy(manifest_text) -> None:
    manifest = mf.ApiserverManifest(manifest_text("1.20"), "kube-apiserver.yaml")
    with pytest.raises(kc.KubeadmConfigError, match="names no encryption provider config"):
        kc.wanted_from_manifest(manifest, SOCKET_DIR, ())


INIT = """apiVersion: kubeadm.k8s.io/v1beta2
bootstrapTokens:
- token: abcdef.0123456789abcdef
kind: InitConfiguration
---
"""
KUBELET = """---
apiVersion: kubelet.config.k8s.io/v1beta1
kind: KubeletConfiguration
cgroupDriver: systemd
"""


def digest(path: Path) -> str:
    return hashlib.sha256(path.read_bytes()).hexdigest()


def test_module_on_a_local_multi_document_file(tmp_path, manifest_text) -> None:
    manifest = tmp_path / "kube-apiserver.yaml"
    manifest.write_text(manifest_text("1.20.encrypted"))
    config_file = tmp_path / "kubeadm.yaml"
    original = INIT + V1BETA2 + KUBELET
    config_file.write_text(original)
    config_file.chmod(0o640)
    args = dict(
        manifest_path=str(manifest),
        configmap=False,
        config_file=str(config_file),
        backup_dir=str(tmp_path / "b"),
    )

    check = run_module(kubeadm_config.main, args, check=True, diff=True)
    assert check["changed"] is True and config_file.read_text() == original
    assert "abcdef" not in str(check["diff"])  # only the ClusterConfiguration is shown
    assert "+  - name: tke-kms-plugin-socket" in "\n".join(
        "+" + line for line in check["diff"][0]["after"].splitlines()
    )

    done = run_module(kubeadm_config.main, args)
    assert done["changed"] is True and done["config_file"]["api_version"] == "kubeadm.k8s.io/v1beta2"
    text = config_file.read_text()
    assert text.startswith(INIT) and text.endswith(KUBELET)
    assert (
        yaml.safe_load(text.split("---\n")[1])["apiServer"]["extraArgs"]["encryption-provider-config"]
        == CONFIG
    )
    assert Path(done["config_file"]["backup_file"]).read_text() == original
    assert config_file.stat().st_mode & 0o777 == 0o640
    assert done["extra_args"] == {"encryption-provider-config": CONFIG}

    before = digest(config_file)
    again = run_module(kubeadm_config.main, args)
    assert again["changed"] is False and digest(config_file) == before

    refused = run_module(kubeadm_config.main, dict(args, state="absent"))
    assert refused["failed"] and "still names" in refused["msg"] and digest(config_file) == before

    manifest.write_text(manifest_text("1.20"))  # the flag has left the manifest
    off = run_module(kubeadm_config.main, dict(args, state="absent"))
    assert off["changed"] is True and config_file.read_text() == original
    assert off["removed"]["config_file"]["volumes"] == VOLUMES
    assert run_module(kubeadm_config.main, dict(args, state="absent"))["changed"] is False


def test_module_refuses_a_missing_file_or_two_cluster_configurations(tmp_path, manifest_text) -> None:
    manifest = tmp_path / "kube-apiserver.yaml"
    manifest.write_text(manifest_text("1.20.encrypted"))
    args = dict(manifest_path=str(manifest), configmap=False, backup_dir=str(tmp_path / "b"))
    missing = run_module(kubeadm_config.main, dict(args, config_file=str(tmp_path / "none.yaml")))
    assert missing["failed"] and "none.yaml does not exist" in missing["msg"]
    twice = tmp_path / "twice.yaml"
    twice.write_text(V1BETA2 + "---\n" + V1BETA2)
    result = run_module(kubeadm_config.main, dict(args, config_file=str(twice)))
    assert result["failed"] and "exactly one ClusterConfiguration document, found 2" in result["msg"]
    assert twice.read_text() == V1BETA2 + "---\n" + V1BETA2
