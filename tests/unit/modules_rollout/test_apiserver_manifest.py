"""tke.kms.apiserver_manifest and apiserver_manifest_info on kubeadm manifests of 1.12, 1.20, 1.30 style."""

from __future__ import annotations

import hashlib
import json
import os
import textwrap
import time
from pathlib import Path

import pytest
import yaml
from ansible_collections.tke.kms.plugins.module_utils._yaml_edit import YamlEditError, YamlEditor
from ansible_collections.tke.kms.plugins.modules import apiserver_manifest, apiserver_manifest_info

from tests.unit.collection import run_module

from .conftest import MANIFESTS

CHECKSUM = "3f9a6c1e0b7d4a2f8e5c9b1d6a0f3e7c2b8d4a9f1e6c0b5d7a3f8e2c9b4d1a6f"
CONFIG = "/etc/kubernetes/encryption-provider-config.yaml"


@pytest.fixture
def master(tmp_path: Path) -> dict[str, Path]:
    manifests = tmp_path / "etc/kubernetes/manifests"
    manifests.mkdir(parents=True)
    return {
        "manifests": manifests,
        "manifest": manifests / "kube-apiserver.yaml",
        "backups": tmp_path / "backups",
    }


def install(master: dict[str, Path], text: str, mode: int = 0o600) -> Path:
    path = master["manifest"]
    path.write_text(text)
    path.chmod(mode)
    return path


def edit(master: dict[str, Path], *, check: bool = False, diff: bool = False, **args: object) -> dict:
    params = {
        "path": str(master["manifest"]),
        "backup_dir": str(master["backups"]),
        "encryption_config_checksum": CHECKSUM,
    }
    params.update(args)
    return run_module(apiserver_manifest.main, params, check=check, diff=diff)


def only_files(directory: Path) -> list[str]:
    return sorted(p.name for p in directory.iterdir())


@pytest.mark.parametrize(
    ("version", "flag"),
    [
        ("1.12", "--experimental-encryption-provider-config"),
        ("1.20", "--encryption-provider-config"),
        ("1.30", "--encryption-provider-config"),
    ],
)
def test_kubeadm_manifest_gets_flag_volumes_and_checksum_only(master, manifest_text, version, flag) -> None:
    original = manifest_text(version)
    path = install(master, original)
    result = edit(master)
    assert result["changed"] is True
    assert result["encryption_flag"] == flag
    assert result["kubernetes_version"].startswith(version + ".")
    assert result["layout_preserved"] is True
    assert path.read_text() == (MANIFESTS / f"kube-apiserver-{version}.encrypted.yaml").read_text()
    # every original line is still there, in order: the edit only added lines
    new_lines = path.read_text().splitlines()
    position = 0
    for line in original.splitlines():
        position = new_lines.index(line, position) + 1
    assert len(new_lines) - len(original.splitlines()) == 1 + 1 + 5 + 8  # annotation, flag, mounts, volumes
    # the backup is the original, outside the manifests directory, with the original mode
    backup = Path(result["backup_file"])
    assert backup.parent == master["backups"] and backup.read_text() == original
    assert oct(backup.stat().st_mode & 0o777) == "0o600"
    assert only_files(master["manifests"]) == ["kube-apiserver.yaml"]
    assert oct(path.stat().st_mode & 0o777) == "0o600"


@pytest.mark.parametrize("version", ["1.12", "1.20", "1.30"])
def test_second_run_changes_nothing_byte_for_byte(master, manifest_text, version) -> None:
    path = install(master, manifest_text(version))
    edit(master)
    first = path.read_bytes()
    backups = only_files(master["backups"])
    result = edit(master)
    assert result["changed"] is False
    assert path.read_bytes() == first
    assert only_files(master["backups"]) == backups


def test_check_mode_reports_and_writes_nothing(master, manifest_text) -> None:
    path = install(master, manifest_text("1.20"))
    result = edit(master, check=True, diff=True)
    assert result["changed"] is True
    assert path.read_text() == manifest_text("1.20")
    assert not master["backups"].exists()
    assert "--encryption-provider-config=" + CONFIG in result["diff"]["after"]
    assert "backup_file" not in result and "written_at" not in result


def test_new_config_checksum_changes_only_the_annotation(master, manifest_text) -> None:
    path = install(master, manifest_text("1.30"))
    edit(master)
    before = path.read_text().splitlines()
    edit(master, encryption_config_checksum="a" * 64)
    after = path.read_text().splitlines()
    changed = [(b, a) for b, a in zip(before, after, strict=True) if b != a]
    assert changed == [
        (
            f"    tke.kms/encryption-config-sha256: {CHECKSUM}",
            f"    tke.kms/encryption-config-sha256: {'a' * 64}",
        )
    ]


def test_checksum_is_read_from_the_config_file(master, manifest_text, tmp_path) -> None:
    install(master, manifest_text("1.20"))
    config = tmp_path / "config.yaml"
    config.write_text("apiVersion: apiserver.config.k8s.io/v1\n")
    edit(master, encryption_config_checksum=None, encryption_config_path=str(config))
    pod = yaml.safe_load(master["manifest"].read_text())
    assert (
        pod["metadata"]["annotations"]["tke.kms/encryption-config-sha256"]
        == hashlib.sha256(config.read_bytes()).hexdigest()
    )


def test_missing_config_file_without_checksum_fails(master, manifest_text, tmp_path) -> None:
    path = install(master, manifest_text("1.20"))
    result = edit(master, encryption_config_checksum=None, encryption_config_path=str(tmp_path / "nope.yaml"))
    assert result["failed"] and "write it first" in result["msg"]
    assert path.read_text() == manifest_text("1.20")


def test_backup_dir_inside_the_manifests_dir_is_refused(master, manifest_text) -> None:
    path = install(master, manifest_text("1.20"))
    result = edit(master, backup_dir=str(master["manifests"] / "backup"))
    assert result["failed"] and "kubelet would run a backed-up manifest" in result["msg"]
    assert path.read_text() == manifest_text("1.20")
    assert only_files(master["manifests"]) == ["kube-apiserver.yaml"]


BAD_MANIFESTS = {
    "not yaml": ("apiVersion: v1\nkind: Pod\nspec:\n  containers: [\n", "is not valid YAML"),
    "not a pod": ("apiVersion: v1\nkind: ConfigMap\ndata: {}\n", "is not a Pod manifest"),
    "no apiserver container": (
        "apiVersion: v1\nkind: Pod\nmetadata: {name: etcd}\nspec:\n  containers:\n"
        "  - name: etcd\n    image: etcd:3.5\n",
        "has no container named kube-apiserver (containers: etcd)",
    ),
    "no command": (
        "apiVersion: v1\nkind: Pod\nmetadata: {name: x}\nspec:\n  containers:\n"
        "  - name: kube-apiserver\n    image: k:v1.20.0\n",
        "has neither command nor args",
    ),
    "image without version": (
        "apiVersion: v1\nkind: Pod\nmetadata: {name: x}\nspec:\n  containers:\n  - name: kube-apiserver\n"
        "    image: my/apiserver:latest\n    command: [kube-apiserver]\n",
        "cannot tell the Kubernetes version from the image",
    ),
}


@pytest.mark.parametrize("case", sorted(BAD_MANIFESTS))
def test_bad_manifests_fail_clearly_and_leave_the_master_as_it_was(master, case) -> None:
    text, message = BAD_MANIFESTS[case]
    path = install(master, text)
    for module in (apiserver_manifest, apiserver_manifest_info):
        params = {"path": str(path)}
        if module is apiserver_manifest:
            params.update(backup_dir=str(master["backups"]), encryption_config_checksum=CHECKSUM)
        result = run_module(module.main, params)
        assert result.get("failed") is True, result
        assert message in result["msg"]
        assert str(path) in result["msg"]
    assert path.read_text() == text
    assert only_files(master["manifests"]) == ["kube-apiserver.yaml"]
    assert not master["backups"].exists()


def test_missing_manifest(master) -> None:
    result = edit(master)
    assert result["failed"] and "does not exist" in result["msg"]


def test_version_override_for_untagged_images(master) -> None:
    text, _ = BAD_MANIFESTS["image without version"]
    install(master, text)
    result = edit(master, kubernetes_version="1.12.3")
    assert result["encryption_flag"] == "--experimental-encryption-provider-config"
    assert yaml.safe_load(master["manifest"].read_text())["spec"]["containers"][0]["command"] == [
        "kube-apiserver",
        "--experimental-encryption-provider-config=" + CONFIG,
    ]


def pod(text: str) -> dict:
    return yaml.safe_load(text)


def container(text: str) -> dict:
    return pod(text)["spec"]["containers"][0]


def test_existing_flag_spellings_and_values_are_corrected(master, manifest_text) -> None:
    text = manifest_text("1.20").replace(
        "    - --enable-bootstrap-token-auth=true\n",
        "    - --enable-bootstrap-token-auth=true\n"
        "    - --experimental-encryption-provider-config=/etc/kubernetes/old.yaml\n",
    )
    install(master, text)
    edit(master)
    command = container(master["manifest"].read_text())["command"]
    assert "--encryption-provider-config=" + CONFIG in command
    assert not [c for c in command if c.startswith("--experimental-encryption")]
    assert command.index("--encryption-provider-config=" + CONFIG) == 7  # where the old flag was


def test_flag_with_separate_value_item(master) -> None:
    install(
        master,
        textwrap.dedent("""\
            apiVersion: v1
            kind: Pod
            metadata: {name: kube-apiserver}
            spec:
              containers:
              - name: kube-apiserver
                image: registry.k8s.io/kube-apiserver:v1.29.0
                command: [kube-apiserver]
                args:
                - --encryption-provider-config
                - /old.yaml
                - --secure-port=6443
            """),
    )
    edit(master)
    assert container(master["manifest"].read_text())["args"] == [
        "--encryption-provider-config",
        CONFIG,
        "--secure-port=6443",
    ]


def test_mounts_that_already_show_the_paths_are_reused(master, manifest_text) -> None:
    text = (
        manifest_text("1.20")
        .replace(
            "    - mountPath: /etc/kubernetes/pki\n      name: k8s-certs\n",
            "    - mountPath: /etc/kubernetes\n      name: k8s-certs\n",
        )
        .replace("      path: /etc/kubernetes/pki\n", "      path: /etc/kubernetes\n")
    )
    text = text.replace(
        "    volumeMounts:\n",
        "    volumeMounts:\n    - mountPath: /var/run\n      name: run\n",
    ).replace("  volumes:\n", "  volumes:\n  - hostPath:\n      path: /var/run\n    name: run\n")
    install(master, text)
    result = edit(master)
    new = pod(master["manifest"].read_text())
    assert [v["name"] for v in new["spec"]["volumes"]] == [v["name"] for v in pod(text)["spec"]["volumes"]]
    assert result["changed"] is True  # flag and annotation only


def test_a_mount_elsewhere_is_not_mistaken_for_the_path(master, manifest_text) -> None:
    # /etc/kubernetes/pki is mounted, but that does not show /etc/kubernetes/encryption-provider-config.yaml
    install(master, manifest_text("1.20"))
    edit(master)
    names = [v["name"] for v in pod(master["manifest"].read_text())["spec"]["volumes"]]
    assert "encryption-provider-config" in names and "tke-kms-plugin-socket" in names


def test_a_volume_name_taken_by_another_kind_of_volume_is_refused(master, manifest_text) -> None:
    text = manifest_text("1.20").replace(
        "  volumes:\n", "  volumes:\n  - configMap:\n      name: x\n    name: tke-kms-plugin-socket\n"
    )
    path = install(master, text)
    result = edit(master)
    assert (
        result["failed"]
        and "volume tke-kms-plugin-socket exists but is not a hostPath volume" in result["msg"]
    )
    assert path.read_text() == text


def test_feature_gates_are_merged(master, manifest_text) -> None:
    install(
        master,
        manifest_text("1.30").replace(
            "    - --secure-port=6443\n", "    - --feature-gates=Foo=true\n    - --secure-port=6443\n"
        ),
    )
    edit(master, feature_gates={"KMSv1": True})
    assert "--feature-gates=Foo=true,KMSv1=true" in container(master["manifest"].read_text())["command"]
    install(master, manifest_text("1.20"))
    edit(master, feature_gates={"KMSv1": True})
    command = container(master["manifest"].read_text())["command"]
    assert (
        command.index("--feature-gates=KMSv1=true")
        == command.index("--etcd-servers=https://127.0.0.1:2379") + 1
    )


def test_manifest_without_volumes(master) -> None:
    install(
        master,
        textwrap.dedent("""\
            apiVersion: v1
            kind: Pod
            metadata:
              name: kube-apiserver
            spec:
              containers:
              - command:
                - kube-apiserver
                image: registry.k8s.io/kube-apiserver:v1.30.0
                name: kube-apiserver
              hostNetwork: true
            """),
    )
    edit(master)
    assert master["manifest"].read_text() == textwrap.dedent(f"""\
        apiVersion: v1
        kind: Pod
        metadata:
          name: kube-apiserver
          annotations:
            tke.kms/encryption-config-sha256: {CHECKSUM}
        spec:
          containers:
          - command:
            - kube-apiserver
            - --encryption-provider-config={CONFIG}
            image: registry.k8s.io/kube-apiserver:v1.30.0
            name: kube-apiserver
            volumeMounts:
            - mountPath: {CONFIG}
              name: encryption-provider-config
              readOnly: true
            - mountPath: /var/run/tke-kms-plugin
              name: tke-kms-plugin-socket
          hostNetwork: true
          volumes:
          - hostPath:
              path: {CONFIG}
              type: File
            name: encryption-provider-config
          - hostPath:
              path: /var/run/tke-kms-plugin
              type: DirectoryOrCreate
            name: tke-kms-plugin-socket
        """)


def test_json_manifest(master, manifest_text) -> None:
    original = pod(manifest_text("1.20"))
    install(master, json.dumps(original, indent=2) + "\n")
    edit(master)
    text = master["manifest"].read_text()
    assert json.loads(text)["spec"]["volumes"][-1]["name"] == "tke-kms-plugin-socket"
    assert edit(master)["changed"] is False


def test_manifest_info(master, manifest_text) -> None:
    install(master, manifest_text("1.30"))
    info = run_module(apiserver_manifest_info.main, {"path": str(master["manifest"])})
    assert info["changed"] is False
    assert info["kubernetes_version"] == "1.30.2" and info["minor_version"] == "1.30"
    assert info["encryption_config_path"] is None and info["config_checksum"] is None
    assert info["url"] == "https://192.168.10.11:6443"
    assert info["etcd"] == {
        "servers": ["https://127.0.0.1:2379"],
        "ca_file": "/etc/kubernetes/pki/etcd/ca.crt",
        "cert_file": "/etc/kubernetes/pki/apiserver-etcd-client.crt",
        "key_file": "/etc/kubernetes/pki/apiserver-etcd-client.key",
        "prefix": "/registry",
    }
    edit(master)
    info = run_module(apiserver_manifest_info.main, {"path": str(master["manifest"])})
    assert info["encryption_config_path"] == CONFIG and info["config_checksum"] == CHECKSUM


def test_manifest_mode_and_owner_are_kept(master, manifest_text) -> None:
    path = install(master, manifest_text("1.20"), mode=0o644)
    os.chown(path, 1234, 5678)
    edit(master)
    stat = path.stat()
    assert (stat.st_mode & 0o777, stat.st_uid, stat.st_gid) == (0o644, 1234, 5678)


# ---- state=absent: turning encryption off ------------------------------------------------------------------

NOTHING_REMOVED = {"flags": [], "volumes": [], "volume_mounts": [], "annotations": []}
OURS = ["encryption-provider-config", "tke-kms-plugin-socket"]


def remove(master: dict[str, Path], *, check: bool = False, diff: bool = False, **args: object) -> dict:
    params = {"path": str(master["manifest"]), "backup_dir": str(master["backups"]), "state": "absent"}
    params.update(args)
    return run_module(apiserver_manifest.main, params, check=check, diff=diff)


@pytest.mark.parametrize(
    ("version", "flag"),
    [
        ("1.12", "--experimental-encryption-provider-config"),
        ("1.20", "--encryption-provider-config"),
        ("1.30", "--encryption-provider-config"),
    ],
)
def test_absent_gives_back_the_kubeadm_manifest_byte_for_byte(master, manifest_text, version, flag) -> None:
    encrypted = (MANIFESTS / f"kube-apiserver-{version}.encrypted.yaml").read_text()
    path = install(master, encrypted)
    before = time.time()
    result = remove(master)
    assert result["changed"] is True and result["layout_preserved"] is True
    assert result["removed"] == {
        "flags": [f"{flag}={CONFIG}"],
        "volumes": OURS,
        "volume_mounts": OURS,
        "annotations": ["tke.kms/encryption-config-sha256"],
    }
    assert "encryption_flag" not in result
    assert result["kubernetes_version"].startswith(version + ".")
    assert path.read_text() == manifest_text(version)
    assert before <= result["written_at"] <= path.stat().st_mtime
    assert Path(result["backup_file"]).read_text() == encrypted
    assert only_files(master["manifests"]) == ["kube-apiserver.yaml"]
    assert oct(path.stat().st_mode & 0o777) == "0o600"

    again = remove(master)
    assert again["changed"] is False and again["removed"] == NOTHING_REMOVED
    assert "written_at" not in again and "backup_file" not in again
    assert path.read_text() == manifest_text(version)
    assert len(only_files(master["backups"])) == 1


@pytest.mark.parametrize("version", ["1.12", "1.20", "1.30", "no volumes"])
def test_present_absent_present_round_trip(master, manifest_text, version) -> None:
    original = MANIFEST_WITHOUT_VOLUMES if version == "no volumes" else manifest_text(version)
    path = install(master, original)
    edit(master)
    first_present = path.read_bytes()
    remove(master)
    assert path.read_text() == original
    edit(master)
    assert path.read_bytes() == first_present


def test_absent_in_check_mode_reports_and_writes_nothing(master) -> None:
    encrypted = (MANIFESTS / "kube-apiserver-1.30.encrypted.yaml").read_text()
    path = install(master, encrypted)
    result = remove(master, check=True, diff=True)
    assert result["changed"] is True and result["removed"]["volumes"] == OURS
    assert "--encryption-provider-config=" + CONFIG in result["diff"]["before"]
    assert "encryption-provider-config" not in result["diff"]["after"]
    assert "written_at" not in result and "backup_file" not in result
    assert path.read_text() == encrypted and not master["backups"].exists()


def test_absent_removes_only_what_encryption_needs(master, manifest_text) -> None:
    text = manifest_text("1.30").replace(
        "    - --secure-port=6443\n", "    - --feature-gates=Foo=true\n    - --secure-port=6443\n"
    )
    path = install(master, text)
    edit(master, feature_gates={"KMSv1": True})
    enabled = path.read_text().replace(
        "    - --secure-port=6443\n",
        "    - --encryption-provider-config-automatic-reload=true\n    - --secure-port=6443\n",
    )
    install(master, enabled)
    result = remove(master)
    assert result["removed"]["flags"] == [
        "--encryption-provider-config-automatic-reload=true",
        "--encryption-provider-config=" + CONFIG,
    ]
    # the intended pod: the enabled one without the flags, our volumes and mounts, and the annotation
    intended = pod(enabled)
    spec = intended["spec"]
    command = spec["containers"][0]["command"]
    spec["containers"][0]["command"] = [c for c in command if not c.startswith("--encryption-provider")]
    spec["containers"][0]["volumeMounts"] = [
        m for m in spec["containers"][0]["volumeMounts"] if m["name"] not in OURS
    ]
    spec["volumes"] = [v for v in spec["volumes"] if v["name"] not in OURS]
    del intended["metadata"]["annotations"]["tke.kms/encryption-config-sha256"]
    assert pod(path.read_text()) == intended
    assert "--feature-gates=Foo=true,KMSv1=true" in container(path.read_text())["command"]
    assert "# Audit logging, added by hand after kubeadm init (keep these comments)." in path.read_text()
    assert "  # Volumes end here.\n" in path.read_text()


def test_absent_takes_a_flag_with_its_separate_value_item(master) -> None:
    install(
        master,
        textwrap.dedent("""\
            apiVersion: v1
            kind: Pod
            metadata: {name: kube-apiserver}
            spec:
              containers:
              - name: kube-apiserver
                image: registry.k8s.io/kube-apiserver:v1.29.0
                command: [kube-apiserver]
                args:
                - --encryption-provider-config
                - /old.yaml   # set by hand
                - --secure-port=6443
            """),
    )
    result = remove(master)
    assert result["removed"]["flags"] == ["--encryption-provider-config=/old.yaml"]
    assert master["manifest"].read_text().endswith("    args:\n    - --secure-port=6443\n")
    assert remove(master)["changed"] is False


def test_absent_leaves_a_volume_of_that_name_that_is_not_a_host_path(master, manifest_text) -> None:
    text = (
        manifest_text("1.20")
        .replace(
            "  volumes:\n", "  volumes:\n  - configMap:\n      name: x\n    name: tke-kms-plugin-socket\n"
        )
        .replace(
            "    volumeMounts:\n",
            "    volumeMounts:\n    - mountPath: /x\n      name: tke-kms-plugin-socket\n",
        )
    )
    install(master, text)
    result = remove(master)
    assert result["changed"] is False and result["removed"] == NOTHING_REMOVED
    assert master["manifest"].read_text() == text


def test_absent_on_a_json_manifest(master, manifest_text) -> None:
    original = pod(manifest_text("1.20"))
    install(master, json.dumps(original, indent=2) + "\n")
    edit(master)
    result = remove(master)
    assert result["changed"] is True and result["removed"]["volumes"] == OURS
    assert json.loads(master["manifest"].read_text()) == original
    assert remove(master)["changed"] is False


MANIFEST_WITHOUT_VOLUMES = textwrap.dedent("""\
    apiVersion: v1
    kind: Pod
    metadata:
      name: kube-apiserver
    spec:
      containers:
      - command:
        - kube-apiserver
        image: registry.k8s.io/kube-apiserver:v1.30.0
        name: kube-apiserver
      hostNetwork: true
    """)


# ---- the editor's removals ---------------------------------------------------------------------------------


def test_editor_removes_items_and_keys_with_their_lines_only() -> None:
    editor = YamlEditor(
        textwrap.dedent("""\
            # head
            a:
              keep: 1   # stays
              drop: |
                block
              last: 2
            items:
              - x   # goes
              # about y
              - y
              - z:
                  deep: [1, 2]
                  other: 3
            tail: {}
            """)
    )
    a = editor.get(editor.root, "a")
    editor.remove_key(a, "drop")
    editor.remove_key(a, "missing")
    items = editor.get(editor.root, "items")
    editor.remove_item(items, 2)
    editor.remove_item(items, 0)
    editor.insert_item(items, 1, "w")
    assert editor.render() == textwrap.dedent("""\
        # head
        a:
          keep: 1   # stays
          last: 2
        items:
          # about y
          - y
          - w
        tail: {}
        """)


def test_editor_drops_pending_edits_inside_what_it_removes() -> None:
    editor = YamlEditor("m:\n  inner:\n  - a\n  k: v\nz: 1\n")
    m = editor.get(editor.root, "m")
    inner = editor.get(m, "inner")
    editor.set_scalar(inner, 0, "b")
    editor.insert_item(inner, 1, "c")
    editor.set_key(m, "new", "n")
    editor.remove_key(m, "new")
    editor.remove_key(m, "inner")
    assert editor.render() == "m:\n  k: v\nz: 1\n"


def test_editor_refuses_a_removal_it_cannot_do_in_place() -> None:
    editor = YamlEditor("items:\n- a: 1\n  b: 2\n")
    item = editor.get(editor.get(editor.root, "items"), 0)
    editor.remove_key(item, "a")  # its line starts with the dash of the item
    with pytest.raises(YamlEditError, match="cannot remove the lines at line 2"):
        editor.render()


# ---- what the encryption config the manifest names holds ---------------------------------------------------

SHARED_ENTRY_CONFIG = textwrap.dedent("""\
    apiVersion: apiserver.config.k8s.io/v1
    kind: EncryptionConfiguration
    resources:
      - resources: [secrets, configmaps]
        providers:
          - kms: {apiVersion: v2, name: tke-kms-plugin-2, endpoint: "unix:///var/run//tke-kms-plugin-2/server.sock"}
          - kms: {name: tke-kms-plugin, endpoint: "unix:///run/tke-kms-plugin/server.sock", cachesize: 1000}
          - aescbc: {keys: [{name: key1, secret: c2VjcmV0IGlzIHNlY3VyZSwgb3IgaXMgaXQ/Cg==}]}
          - identity: {}
      - resources: [widgets.example.com]
        providers:
          - kms: {name: tke-kms-plugin, endpoint: "unix:///run/tke-kms-plugin/server.sock", cachesize: 1000}
          - identity: {}
      - resources: [events]
        providers:
          - identity: {}
    """)


def test_manifest_info_reports_the_entries_and_kms_providers_of_the_config(
    master, manifest_text, tmp_path
) -> None:
    config = tmp_path / "encryption.yaml"
    config.write_text(SHARED_ENTRY_CONFIG)
    install(master, manifest_text("1.30"))
    edit(master, encryption_config_path=str(config))
    info = run_module(apiserver_manifest_info.main, {"path": str(master["manifest"])})
    assert info["encryption_entries"] == [
        {
            "resources": ["secrets", "configmaps"],
            "providers": ["kms:tke-kms-plugin-2", "kms:tke-kms-plugin", "aescbc", "identity"],
        },
        {"resources": ["widgets.example.com"], "providers": ["kms:tke-kms-plugin", "identity"]},
        {"resources": ["events"], "providers": ["identity"]},
    ]
    assert info["kms_providers"] == [
        {
            "name": "tke-kms-plugin-2",
            "endpoint": "unix:///var/run//tke-kms-plugin-2/server.sock",
            "socket": "/run/tke-kms-plugin-2/server.sock",
            "api_version": "v2",
            "resources": ["secrets", "configmaps"],
            "write": True,
        },
        {
            "name": "tke-kms-plugin",
            "endpoint": "unix:///run/tke-kms-plugin/server.sock",
            "socket": "/run/tke-kms-plugin/server.sock",
            "api_version": "v1",
            "resources": ["secrets", "configmaps", "widgets.example.com"],
            "write": True,
        },
    ]
    assert "c2VjcmV0" not in json.dumps(info)


def test_manifest_info_reads_the_config_at_the_host_path_of_its_mount(
    master, manifest_text, tmp_path
) -> None:
    config = tmp_path / "host" / "encryption.yaml"
    config.parent.mkdir()
    config.write_text(SHARED_ENTRY_CONFIG)
    install(master, manifest_text("1.30"))
    edit(master, encryption_config_path="/etc/kubernetes/enc/encryption.yaml")
    text = master["manifest"].read_text()
    install(master, text.replace("path: /etc/kubernetes/enc/encryption.yaml", f"path: {config}"))
    info = run_module(apiserver_manifest_info.main, {"path": str(master["manifest"])})
    assert info["encryption_config_path"] == "/etc/kubernetes/enc/encryption.yaml"
    assert [p["name"] for p in info["kms_providers"]] == ["tke-kms-plugin-2", "tke-kms-plugin"]


def test_manifest_info_without_a_config_file_has_no_entries(master, manifest_text, tmp_path) -> None:
    install(master, manifest_text("1.30"))
    edit(master, encryption_config_path=str(tmp_path / "none.yaml"))
    info = run_module(apiserver_manifest_info.main, {"path": str(master["manifest"])})
    assert info["encryption_entries"] == [] and info["kms_providers"] == []


def test_manifest_info_names_only_the_position_of_a_yaml_error_in_the_config(
    master, manifest_text, tmp_path
) -> None:
    config = tmp_path / "encryption.yaml"
    config.write_text(SHARED_ENTRY_CONFIG.replace("- aescbc: {keys:", "- aescbc: {keys: : ["))
    install(master, manifest_text("1.30"))
    edit(master, encryption_config_path=str(config))
    info = run_module(apiserver_manifest_info.main, {"path": str(master["manifest"])})
    assert info["failed"] is True
    assert info["msg"].startswith(f"{config} is not valid YAML (line 8, column 24)")
    assert "c2VjcmV0" not in info["msg"] and "aescbc" not in info["msg"]


# ---- state=absent refuses while the config still encrypts something ----------------------------------------

IDENTITY_ONLY_CONFIG = textwrap.dedent("""\
    apiVersion: apiserver.config.k8s.io/v1
    kind: EncryptionConfiguration
    resources:
      - resources: [secrets]
        providers:
          - identity: {}
    """)
AESGCM_KEY = "dGhpcyBpcyBhIDMyIGJ5dGUga2V5IGZvciBhZXNnY20h"
CONFIGMAPS_LEFT_CONFIG = IDENTITY_ONLY_CONFIG + textwrap.indent(
    textwrap.dedent(f"""\
        - resources: [configmaps]
          providers:
            - aesgcm: {{keys: [{{name: key1, secret: {AESGCM_KEY}}}]}}
            - identity: {{}}
        """),
    "  ",
)


def encrypted_master(master, manifest_text, config: Path, text: str) -> str:
    config.write_text(text)
    install(master, manifest_text("1.20"))
    edit(master, encryption_config_path=str(config))
    return master["manifest"].read_text()


@pytest.mark.parametrize("named_by", ["option", "manifest"])
def test_absent_refuses_while_an_entry_is_not_identity_only(
    master, manifest_text, tmp_path, named_by
) -> None:
    config = tmp_path / "encryption.yaml"
    manifest = encrypted_master(master, manifest_text, config, CONFIGMAPS_LEFT_CONFIG)
    args = {"encryption_config_path": str(config)} if named_by == "option" else {}
    backups = only_files(master["backups"])
    for check in (True, False):
        result = remove(master, check=check, **args)
        assert result["failed"] is True and result["changed"] is False
        assert "refusing to take the encryption provider config out of" in result["msg"]
        assert f"{config} still has entries with providers other than identity" in result["msg"]
        assert "([configmaps]: aesgcm, identity)" in result["msg"]
        assert result["entries"] == [{"resources": ["configmaps"], "providers": ["aesgcm", "identity"]}]
        assert AESGCM_KEY not in json.dumps(result)
        assert master["manifest"].read_text() == manifest and config.read_text() == CONFIGMAPS_LEFT_CONFIG
        assert only_files(master["manifests"]) == ["kube-apiserver.yaml"]
        assert only_files(master["backups"]) == backups


def test_absent_refuses_while_the_kms_provider_is_in_the_config(master, manifest_text, tmp_path) -> None:
    config = tmp_path / "encryption.yaml"
    text = IDENTITY_ONLY_CONFIG.replace(
        "      - identity: {}\n",
        "      - identity: {}\n      - kms: {name: tke-kms-plugin, endpoint: unix:///x}\n",
    )
    manifest = encrypted_master(master, manifest_text, config, text)
    result = remove(master)
    assert result["failed"] is True and "([secrets]: identity, kms:tke-kms-plugin)" in result["msg"]
    assert master["manifest"].read_text() == manifest


def test_absent_goes_ahead_when_every_entry_is_identity_only(master, manifest_text, tmp_path) -> None:
    config = tmp_path / "encryption.yaml"
    encrypted_master(master, manifest_text, config, IDENTITY_ONLY_CONFIG)
    result = remove(master)
    assert result["changed"] is True and result["removed"]["flags"] == [
        f"--encryption-provider-config={config}"
    ]
    assert master["manifest"].read_text() == manifest_text("1.20")


def test_absent_names_only_the_position_of_a_yaml_error_in_the_config(
    master, manifest_text, tmp_path
) -> None:
    config = tmp_path / "encryption.yaml"
    manifest = encrypted_master(master, manifest_text, config, CONFIGMAPS_LEFT_CONFIG)
    config.write_text(CONFIGMAPS_LEFT_CONFIG.replace(f"secret: {AESGCM_KEY}", f"secret: {AESGCM_KEY}: x"))
    result = remove(master)
    assert result["failed"] is True and result["msg"].startswith(
        f"{config} is not valid YAML (line 9, column"
    )
    assert AESGCM_KEY[:16] not in json.dumps(result)
    assert master["manifest"].read_text() == manifest


# ---- the Kubernetes floor ----------------------------------------------------------------------------------


def test_kubernetes_before_1_10_is_refused(master, manifest_text) -> None:
    path = install(master, manifest_text("1.12"))
    result = edit(master, kubernetes_version="1.9.11")
    assert result["failed"] is True
    assert result["msg"] == "Kubernetes 1.9.11 has no KMS encryption provider; it needs 1.10 or newer"
    assert path.read_text() == manifest_text("1.12") and not master["backups"].exists()
    assert edit(master, kubernetes_version="1.10.0")["changed"] is True
