"""tke.kms.encryption_config: format by version, provider phases, kept providers, 0600, check and diff."""

from __future__ import annotations

import json
import os
import sys
import textwrap
from pathlib import Path

import pytest
import yaml
from ansible_collections.tke.kms.plugins.module_utils import _encryption_config as ec
from ansible_collections.tke.kms.plugins.module_utils._kube_version import parse_version
from ansible_collections.tke.kms.plugins.modules import encryption_config

from tests.lab.playbooks import ansible_playbook, output
from tests.unit.collection import run_module
from tests.unit.modules_rollout.conftest import MANIFESTS

SOCKET = "unix:///var/run/tke-kms-plugin/server.sock"
AESCBC_SECRET = "c2VjcmV0IGlzIHNlY3VyZSwgb3IgaXMgaXQ/Cg=="
AESCBC_CONFIG = textwrap.dedent(f"""\
    apiVersion: apiserver.config.k8s.io/v1
    kind: EncryptionConfiguration
    resources:
      - resources:
          - secrets
        providers:
          - aescbc:
              keys:
                - name: key1
                  secret: {AESCBC_SECRET}
          - identity: {{}}
    """)
GO_PLUGIN_CONFIG = textwrap.dedent("""\
    apiVersion: apiserver.config.k8s.io/v1
    kind: EncryptionConfiguration
    resources:
      - resources:
          - secrets
        providers:
          - kms:
              name: tke-kms-plugin
              timeout: 3s
              cachesize: 1000
              endpoint: unix:///var/run/tke-kms-plugin/server.sock
          - identity: {}
    """)


def configure(path: Path, *, check: bool = False, diff: bool = False, **args: object) -> dict:
    params: dict[str, object] = {"path": str(path), "kubernetes_version": "1.30.2"}
    params.update(args)
    return run_module(encryption_config.main, params, check=check, diff=diff)


def load(path: Path) -> dict:
    return yaml.safe_load(path.read_text())


def providers(path: Path) -> list:
    return load(path)["resources"][0]["providers"]


# ---- format by version -------------------------------------------------------------------------------------


@pytest.mark.parametrize(
    ("version", "api_version", "kind", "kms"),
    [
        (
            "1.10.0",
            "v1",
            "EncryptionConfig",
            {"name": "tke-kms-plugin", "endpoint": SOCKET, "cachesize": 1000, "timeout": "3s"},
        ),
        (
            "1.12.10",
            "v1",
            "EncryptionConfig",
            {"name": "tke-kms-plugin", "endpoint": SOCKET, "cachesize": 1000, "timeout": "3s"},
        ),
        (
            "1.13.0",
            "apiserver.config.k8s.io/v1",
            "EncryptionConfiguration",
            {"name": "tke-kms-plugin", "endpoint": SOCKET, "cachesize": 1000, "timeout": "3s"},
        ),
        (
            "1.20.2",
            "apiserver.config.k8s.io/v1",
            "EncryptionConfiguration",
            {"name": "tke-kms-plugin", "endpoint": SOCKET, "cachesize": 1000, "timeout": "3s"},
        ),
        (
            "1.28.5",
            "apiserver.config.k8s.io/v1",
            "EncryptionConfiguration",
            {"name": "tke-kms-plugin", "endpoint": SOCKET, "cachesize": 1000, "timeout": "3s"},
        ),
        (
            "1.29.0",
            "apiserver.config.k8s.io/v1",
            "EncryptionConfiguration",
            {"apiVersion": "v2", "name": "tke-kms-plugin", "endpoint": SOCKET, "timeout": "3s"},
        ),
        (
            "1.30.2",
            "apiserver.config.k8s.io/v1",
            "EncryptionConfiguration",
            {"apiVersion": "v2", "name": "tke-kms-plugin", "endpoint": SOCKET, "timeout": "3s"},
        ),
    ],
)
def test_new_file_format_follows_the_version(tmp_path, version, api_version, kind, kms) -> None:
    path = tmp_path / "config.yaml"
    result = configure(path, kubernetes_version=version, phase="write")
    assert result["changed"] and result["created"]
    assert load(path) == {
        "apiVersion": api_version,
        "kind": kind,
        "resources": [{"resources": ["secrets"], "providers": [{"kms": kms}, {"identity": {}}]}],
    }
    assert result["format"] == {"apiVersion": api_version, "kind": kind}
    assert oct(path.stat().st_mode & 0o777) == "0o600"
    assert (path.stat().st_uid, path.stat().st_gid) == (0, 0)


def test_kms_v2_is_opt_in_from_1_27_and_refused_before(tmp_path) -> None:
    path = tmp_path / "config.yaml"
    assert configure(path, kubernetes_version="1.27.1", kms_api_version="v2")["kms_api_version"] == "v2"
    assert providers(path)[0]["kms"]["apiVersion"] == "v2"
    result = configure(tmp_path / "other.yaml", kubernetes_version="1.26.9", kms_api_version="v2")
    assert result["failed"] and "KMS v2 needs Kubernetes 1.27 or newer" in result["msg"]
    assert not (tmp_path / "other.yaml").exists()


def test_kms_v1_on_1_29_is_possible_and_warns_about_the_feature_gate(tmp_path) -> None:
    result = configure(tmp_path / "c.yaml", kubernetes_version="1.29.3", kms_api_version="v1", cachesize=5000)
    assert result["kms_api_version"] == "v1"
    assert providers(tmp_path / "c.yaml")[0]["kms"]["cachesize"] == 5000
    assert "--feature-gates=KMSv1=true" in str(result["warnings"])


def test_cachesize_with_kms_v2_is_refused(tmp_path) -> None:
    result = configure(tmp_path / "c.yaml", cachesize=100)
    assert result["failed"] and "cachesize is only valid for KMS v1" in result["msg"]


def test_kubernetes_before_1_10_is_refused(tmp_path) -> None:
    result = configure(tmp_path / "c.yaml", kubernetes_version="1.9.11")
    assert result["failed"] and "needs 1.10 or newer" in result["msg"]


# ---- phases and kept providers -----------------------------------------------------------------------------


def test_read_then_write_on_a_cluster_without_encryption(tmp_path) -> None:
    path = tmp_path / "c.yaml"
    assert configure(path, phase="read")["providers"] == ["identity", "kms:tke-kms-plugin"]
    assert configure(path, phase="read")["changed"] is False
    assert configure(path, phase="write")["providers"] == ["kms:tke-kms-plugin", "identity"]
    assert configure(path, phase="write")["changed"] is False
    # a read phase after the write phase never steps back
    result = configure(path, phase="read")
    assert result["changed"] is False and result["providers"] == ["kms:tke-kms-plugin", "identity"]


def test_existing_aescbc_stays_as_read_fallback(tmp_path) -> None:
    path = tmp_path / "c.yaml"
    path.write_text(AESCBC_CONFIG)
    assert configure(path, phase="read")["providers"] == ["aescbc", "kms:tke-kms-plugin", "identity"]
    assert configure(path, phase="write")["providers"] == ["kms:tke-kms-plugin", "aescbc", "identity"]
    assert providers(path)[1] == {"aescbc": {"keys": [{"name": "key1", "secret": AESCBC_SECRET}]}}


def test_identity_goes_last_in_the_write_phase(tmp_path) -> None:
    path = tmp_path / "c.yaml"
    path.write_text(
        AESCBC_CONFIG.replace("      - identity: {}\n", "").replace(
            "    providers:\n", "    providers:\n      - identity: {}\n"
        )
    )
    assert configure(path, phase="read")["providers"] == ["identity", "kms:tke-kms-plugin", "aescbc"]
    assert configure(path, phase="write")["providers"] == ["kms:tke-kms-plugin", "aescbc", "identity"]


def test_a_config_without_identity_does_not_gain_it(tmp_path) -> None:
    path = tmp_path / "c.yaml"
    path.write_text(AESCBC_CONFIG.replace("      - identity: {}\n", ""))
    assert configure(path, phase="write")["providers"] == ["kms:tke-kms-plugin", "aescbc"]


def test_other_resource_entries_are_kept(tmp_path) -> None:
    path = tmp_path / "c.yaml"
    path.write_text(AESCBC_CONFIG.replace("      - secrets\n", "      - configmaps\n"))
    configure(path, phase="write")
    config = load(path)
    assert [entry["resources"] for entry in config["resources"]] == [["secrets"], ["configmaps"]]
    assert config["resources"][1]["providers"][0]["aescbc"]["keys"][0]["secret"] == AESCBC_SECRET


def test_resources_split_over_entries_are_refused(tmp_path) -> None:
    path = tmp_path / "c.yaml"
    text = AESCBC_CONFIG + "  - resources: [configmaps]\n    providers: [identity: {}]\n"
    path.write_text(text)
    result = configure(path, resources=["secrets", "configmaps"])
    assert result["failed"] and "split over several entries" in result["msg"]
    assert path.read_text() == text


def test_the_go_plugin_seed_keeps_its_kms_v1_provider_on_1_29(tmp_path) -> None:
    path = tmp_path / "c.yaml"
    path.write_text(GO_PLUGIN_CONFIG)
    path.chmod(0o600)
    result = configure(path, kubernetes_version="1.29.1", phase="write")
    assert result["kms_api_version"] == "v1"
    assert result["changed"] is False  # same content: the file is not even rewritten
    assert path.read_text() == GO_PLUGIN_CONFIG


def test_switching_a_provider_between_v1_and_v2_is_refused(tmp_path) -> None:
    path = tmp_path / "c.yaml"
    path.write_text(GO_PLUGIN_CONFIG)
    result = configure(path, kubernetes_version="1.30.0", kms_api_version="v2")
    assert result["failed"] and "would make the data stored under it unreadable" in result["msg"]
    assert path.read_text() == GO_PLUGIN_CONFIG


def test_cachesize_is_kept_unless_given(tmp_path) -> None:
    path = tmp_path / "c.yaml"
    path.write_text(GO_PLUGIN_CONFIG.replace("cachesize: 1000", "cachesize: 7000"))
    configure(path, kubernetes_version="1.20.2")
    assert providers(path)[0]["kms"]["cachesize"] == 7000
    configure(path, kubernetes_version="1.20.2", cachesize=12000)
    assert providers(path)[0]["kms"]["cachesize"] == 12000


def test_legacy_file_is_converted_after_an_upgrade(tmp_path) -> None:
    path = tmp_path / "c.yaml"
    path.write_text(
        GO_PLUGIN_CONFIG.replace("apiserver.config.k8s.io/v1", "v1").replace(
            "EncryptionConfiguration", "EncryptionConfig"
        )
    )
    result = configure(path, kubernetes_version="1.13.5")
    assert result["changed"] and result["format"]["kind"] == "EncryptionConfiguration"
    assert load(path) == yaml.safe_load(GO_PLUGIN_CONFIG)


# ---- bad existing files ------------------------------------------------------------------------------------

BAD_CONFIGS = {
    "not yaml": ("resources: [\n", "is not valid YAML"),
    "empty": ("\n", "it is empty"),
    "another kind": ("apiVersion: v1\nkind: ConfigMap\ndata: {}\n", "found v1/ConfigMap"),
    "a list": ("- a\n- b\n", "found list"),
    "unknown provider": (
        "apiVersion: apiserver.config.k8s.io/v1\nkind: EncryptionConfiguration\nresources:\n"
        "- resources: [secrets]\n  providers:\n  - vault: {secret: hunter2}\n",
        "is not one of identity, aescbc, aesgcm, secretbox, kms",
    ),
    "no providers": (
        "apiVersion: apiserver.config.k8s.io/v1\nkind: EncryptionConfiguration\nresources:\n"
        "- resources: [secrets]\n",
        "needs a non-empty 'providers' list",
    ),
}


@pytest.mark.parametrize("case", sorted(BAD_CONFIGS))
def test_a_file_that_is_not_an_encryption_configuration_is_left_alone(tmp_path, case) -> None:
    text, message = BAD_CONFIGS[case]
    path = tmp_path / "c.yaml"
    path.write_text(text)
    path.chmod(0o640)
    result = configure(path, backup_dir=str(tmp_path / "backups"))
    assert result["failed"] is True and message in result["msg"] and str(path) in result["msg"]
    assert "hunter2" not in result["msg"]
    assert path.read_text() == text and path.stat().st_mode & 0o777 == 0o640
    assert sorted(os.listdir(tmp_path)) == ["c.yaml"]


# ---- check mode, diff, backups, file mode ------------------------------------------------------------------


def test_check_mode_predicts_without_writing(tmp_path) -> None:
    path = tmp_path / "c.yaml"
    path.write_text(AESCBC_CONFIG)
    result = configure(path, check=True, phase="write")
    assert result["changed"] is True and result["providers"][0] == "kms:tke-kms-plugin"
    assert path.read_text() == AESCBC_CONFIG
    real = configure(path, phase="write")
    assert real["checksum"] == result["checksum"] == ec.checksum(path.read_text())


def test_diff_never_shows_key_material(tmp_path) -> None:
    path = tmp_path / "c.yaml"
    path.write_text(AESCBC_CONFIG)
    result = configure(path, diff=True, phase="write")
    assert AESCBC_SECRET not in str(result)
    assert "secret: <redacted>" in result["diff"]["before"] and "kms:" in result["diff"]["after"]
    assert AESCBC_SECRET in path.read_text()


def test_backup_keeps_the_previous_file_with_its_mode(tmp_path) -> None:
    path = tmp_path / "c.yaml"
    path.write_text(AESCBC_CONFIG)
    path.chmod(0o600)
    result = configure(path, phase="read", backup_dir=str(tmp_path / "backups"))
    backup = Path(result["backup_file"])
    assert backup.read_text() == AESCBC_CONFIG and backup.stat().st_mode & 0o777 == 0o600
    assert (tmp_path / "backups").stat().st_mode & 0o777 == 0o700


def test_loose_permissions_are_fixed_without_rewriting(tmp_path) -> None:
    path = tmp_path / "c.yaml"
    configure(path)
    content = path.read_bytes()
    path.chmod(0o644)
    assert configure(path, check=True)["changed"] is True
    assert path.stat().st_mode & 0o777 == 0o644
    assert configure(path)["changed"] is True
    assert path.stat().st_mode & 0o777 == 0o600 and path.read_bytes() == content
    assert configure(path)["changed"] is False


def test_bad_parameters(tmp_path) -> None:
    assert "must not contain ':'" in configure(tmp_path / "c", provider_name="a:b")["msg"]
    assert "unix socket URL" in configure(tmp_path / "c", endpoint="tcp://1.2.3.4:5")["msg"]
    assert (
        "cachesize 0 is invalid" in configure(tmp_path / "c", kubernetes_version="1.20.0", cachesize=0)["msg"]
    )
    assert "not a Kubernetes version" in configure(tmp_path / "c", kubernetes_version="one.two")["msg"]


def test_redact_handles_every_keyed_provider() -> None:
    config = yaml.safe_load(AESCBC_CONFIG)
    config["resources"][0]["providers"].insert(0, {"secretbox": {"keys": [{"name": "k", "secret": "s1"}]}})
    assert "s1" not in ec.redacted_text(config) and AESCBC_SECRET not in ec.redacted_text(config)


def test_version_parsing() -> None:
    assert parse_version("v1.30.2") == (1, 30, 2)
    assert parse_version("1.29") == (1, 29, 0)
    assert parse_version("1.31.0-rc.1") == (1, 31, 0)
    with pytest.raises(ValueError, match="not a Kubernetes version"):
        parse_version("1")


def test_min_cachesize_raises_but_never_lowers(tmp_path) -> None:
    path = tmp_path / "c.yaml"
    configure(path, kubernetes_version="1.20.2", min_cachesize=6000)
    assert providers(path)[0]["kms"]["cachesize"] == 6000
    configure(path, kubernetes_version="1.20.2", min_cachesize=1200)
    assert providers(path)[0]["kms"]["cachesize"] == 6000
    assert (
        configure(path, kubernetes_version="1.30.2", kms_api_version="v1", min_cachesize=100)["changed"]
        is False
    )


# ---- rotation and turning encryption off -------------------------------------------------------------------

NEW_SOCKET = "unix:///var/run/tke-kms-plugin-2/server.sock"


@pytest.mark.parametrize(
    ("version", "api_version", "old"),
    [
        (
            "1.20.2",
            "v1",
            {"name": "tke-kms-plugin", "endpoint": SOCKET, "cachesize": 7000, "timeout": "3s"},
        ),
        (
            "1.30.2",
            "v2",
            {"apiVersion": "v2", "name": "tke-kms-plugin", "endpoint": SOCKET, "timeout": "3s"},
        ),
    ],
)
def test_rotation_to_a_new_provider(tmp_path, version, api_version, old) -> None:
    path = tmp_path / "c.yaml"
    configure(
        path, kubernetes_version=version, phase="write", cachesize=7000 if api_version == "v1" else None
    )
    assert providers(path) == [{"kms": old}, {"identity": {}}]
    new_args = dict(kubernetes_version=version, provider_name="tke-kms-plugin-2", endpoint=NEW_SOCKET)
    new = {"kms": dict(old, name="tke-kms-plugin-2", endpoint=NEW_SOCKET)}
    if api_version == "v1":
        new["kms"]["cachesize"] = 1000  # the new provider's own default, not the old one's size

    read = configure(path, phase="read", **new_args)
    assert read["changed"] and read["kms_api_version"] == api_version
    assert read["providers"] == ["kms:tke-kms-plugin", "kms:tke-kms-plugin-2", "identity"]
    assert providers(path) == [{"kms": old}, new, {"identity": {}}]
    assert configure(path, phase="read", **new_args)["changed"] is False

    write = configure(path, phase="write", **new_args)
    assert write["providers"] == ["kms:tke-kms-plugin-2", "kms:tke-kms-plugin", "identity"]
    assert providers(path) == [new, {"kms": old}, {"identity": {}}]
    assert configure(path, phase="write", **new_args)["changed"] is False

    gone = configure(path, kubernetes_version=version, state="absent", backup_dir=str(tmp_path / "b"))
    assert (gone["changed"], gone["removed"], gone["kms_api_version"]) == (True, True, api_version)
    assert gone["providers"] == ["kms:tke-kms-plugin-2", "identity"]
    assert providers(path) == [new, {"identity": {}}]
    assert gone["checksum"] == ec.checksum(path.read_text())
    assert (
        ec.summary(yaml.safe_load(Path(gone["backup_file"]).read_text()), ["secrets"]) == write["providers"]
    )
    assert oct(path.stat().st_mode & 0o777) == "0o600"

    again = configure(path, kubernetes_version=version, state="absent")
    assert (again["changed"], again["removed"], again["kms_api_version"]) == (False, False, None)
    assert again["checksum"] == gone["checksum"]


def test_turning_encryption_off(tmp_path) -> None:
    path = tmp_path / "c.yaml"
    path.write_text(GO_PLUGIN_CONFIG)
    path.chmod(0o600)
    kms = yaml.safe_load(GO_PLUGIN_CONFIG)["resources"][0]["providers"][0]

    # the options that describe a KMS provider are ignored: the existing one is kept exactly as it is
    ignored = dict(endpoint="tcp://10.0.0.1:1", cachesize=0, kms_api_version="v2", timeout="9s")
    decrypt = configure(path, kubernetes_version="1.20.2", phase="decrypt", **ignored)
    assert decrypt["changed"] is True and "failed" not in decrypt
    assert decrypt["providers"] == ["identity", "kms:tke-kms-plugin"]
    assert decrypt["kms_api_version"] == "v1"
    assert providers(path) == [{"identity": {}}, kms]
    assert configure(path, kubernetes_version="1.20.2", phase="decrypt")["changed"] is False

    gone = configure(path, kubernetes_version="1.20.2", state="absent", phase="write")  # phase is ignored
    assert gone["changed"] is True and gone["providers"] == ["identity"]
    assert load(path) == {
        "apiVersion": "apiserver.config.k8s.io/v1",
        "kind": "EncryptionConfiguration",
        "resources": [{"resources": ["secrets"], "providers": [{"identity": {}}]}],
    }
    again = configure(path, kubernetes_version="1.20.2", state="absent")
    assert again["changed"] is False and again["removed"] is False


def test_decrypt_puts_identity_first_and_keeps_every_other_provider_in_order(tmp_path) -> None:
    path = tmp_path / "c.yaml"
    path.write_text(AESCBC_CONFIG.replace("      - identity: {}\n", ""))  # [aescbc], no identity
    configure(path, kubernetes_version="1.20.2", phase="write")
    assert configure(path, phase="decrypt")["providers"] == ["identity", "kms:tke-kms-plugin", "aescbc"]
    assert providers(path)[2] == {"aescbc": {"keys": [{"name": "key1", "secret": AESCBC_SECRET}]}}


def test_decrypt_never_adds_the_kms_provider(tmp_path) -> None:
    path = tmp_path / "c.yaml"
    path.write_text(AESCBC_CONFIG)
    result = configure(path, phase="decrypt")
    assert result["providers"] == ["identity", "aescbc"] and result["kms_api_version"] is None
    new = tmp_path / "new.yaml"
    result = configure(new, phase="decrypt")
    assert result["created"] is True and result["providers"] == ["identity"]
    assert providers(new) == [{"identity": {}}]


def test_removing_the_provider_that_encrypts_writes_is_refused(tmp_path) -> None:
    path = tmp_path / "c.yaml"
    path.write_text(GO_PLUGIN_CONFIG)
    for check in (True, False):
        result = configure(path, state="absent", check=check, backup_dir=str(tmp_path / "b"))
        assert result["failed"] is True
        assert "KMS provider tke-kms-plugin is first" in result["msg"]
        assert "the decrypt phase" in result["msg"] and "write phase" in result["msg"]
    assert path.read_text() == GO_PLUGIN_CONFIG
    assert sorted(os.listdir(tmp_path)) == ["c.yaml"]


def test_absent_without_a_file_or_a_provider_changes_nothing(tmp_path) -> None:
    path = tmp_path / "c.yaml"
    result = configure(path, state="absent")
    assert result["changed"] is False and result["removed"] is False
    assert (result["checksum"], result["providers"], result["format"]) == (None, [], None)
    assert not path.exists()
    path.write_text(AESCBC_CONFIG)
    path.chmod(0o600)
    result = configure(path, state="absent", endpoint="not a url")
    assert result["changed"] is False and result["providers"] == ["aescbc", "identity"]
    assert result["checksum"] == ec.checksum(AESCBC_CONFIG) and path.read_text() == AESCBC_CONFIG


def test_absent_in_check_mode_with_diff(tmp_path) -> None:
    path = tmp_path / "c.yaml"
    path.write_text(AESCBC_CONFIG)
    configure(path, phase="read")
    before = path.read_text()
    check = configure(path, state="absent", check=True, diff=True, backup_dir=str(tmp_path / "b"))
    assert check["changed"] is True and check["removed"] is True
    assert check["providers"] == ["aescbc", "identity"] and "backup_file" not in check
    assert "kms:" in check["diff"]["before"] and "kms:" not in check["diff"]["after"]
    assert AESCBC_SECRET not in str(check)
    assert path.read_text() == before and not (tmp_path / "b").exists()
    real = configure(path, state="absent")
    assert real["checksum"] == check["checksum"] == ec.checksum(path.read_text())
    assert providers(path)[0]["aescbc"]["keys"][0]["secret"] == AESCBC_SECRET


def test_absent_touches_only_the_managed_entry_and_keeps_the_format(tmp_path) -> None:
    path = tmp_path / "c.yaml"
    legacy = (
        "apiVersion: v1\nkind: EncryptionConfig\nresources:\n"
        "- resources: [secrets]\n  providers:\n  - identity: {}\n"
        "  - kms: {name: tke-kms-plugin, endpoint: 'unix:///a.sock'}\n"
        "- resources: [configmaps]\n  providers:\n  - identity: {}\n"
        "  - kms: {name: other, endpoint: 'unix:///b.sock'}\n"
    )
    path.write_text(legacy)
    path.chmod(0o600)
    assert configure(path, state="absent", provider_name="other")["changed"] is False
    result = configure(path, kubernetes_version="1.30.2", state="absent")
    assert result["format"] == {"apiVersion": "v1", "kind": "EncryptionConfig"}
    assert [e["providers"] for e in load(path)["resources"]] == [
        [{"identity": {}}],
        [{"identity": {}}, {"kms": {"name": "other", "endpoint": "unix:///b.sock"}}],
    ]


# ---- the resources that carry the provider -----------------------------------------------------------------

SHARED_AESCBC_CONFIG = AESCBC_CONFIG.replace("      - secrets\n", "      - secrets\n      - configmaps\n")


def test_provider_resources_are_every_resource_of_the_entries_that_carry_it(tmp_path) -> None:
    assert SHARED_AESCBC_CONFIG != AESCBC_CONFIG
    path = tmp_path / "c.yaml"
    path.write_text(SHARED_AESCBC_CONFIG)
    check = configure(path, check=True, phase="read")
    assert check["provider_resources"] == ["secrets", "configmaps"]
    read = configure(path, phase="read")
    assert read["provider_resources"] == ["secrets", "configmaps"]
    assert read["providers"] == ["aescbc", "kms:tke-kms-plugin", "identity"]
    assert configure(path, phase="write")["provider_resources"] == ["secrets", "configmaps"]


def test_provider_resources_of_absent_are_those_that_carried_it(tmp_path) -> None:
    path = tmp_path / "c.yaml"
    path.write_text(SHARED_AESCBC_CONFIG)
    configure(path, phase="read")
    removed = configure(path, state="absent")
    assert removed["removed"] is True and removed["provider_resources"] == ["secrets", "configmaps"]
    again = configure(path, state="absent")
    assert again["changed"] is False and again["provider_resources"] == []
    nothing = configure(tmp_path / "none.yaml", state="absent")
    assert nothing["provider_resources"] == []


def test_provider_resources_of_a_config_with_another_entry_for_configmaps(tmp_path) -> None:
    path = tmp_path / "c.yaml"
    path.write_text(
        AESCBC_CONFIG
        + "  - resources: [configmaps]\n"
        + "    providers:\n      - aesgcm: {keys: [{name: k, secret: c2VjcmV0}]}\n"
    )
    assert configure(path, phase="read")["provider_resources"] == ["secrets"]


# ---- a malformed existing file never shows its content -----------------------------------------------------


def test_a_yaml_error_names_file_line_and_column_but_never_the_key(tmp_path) -> None:
    path = tmp_path / "c.yaml"
    text = AESCBC_CONFIG.replace(f"secret: {AESCBC_SECRET}", f"secret: {AESCBC_SECRET}: [")
    path.write_text(text)
    result = configure(path, phase="write", backup_dir=str(tmp_path / "backups"))
    assert result["failed"] is True
    assert result["msg"] == f"{path} is not valid YAML (line 10, column 63); fix it or move it away"
    assert AESCBC_SECRET not in json.dumps(result) and AESCBC_SECRET[:12] not in json.dumps(result)
    assert path.read_text() == text and sorted(os.listdir(tmp_path)) == ["c.yaml"]


def test_the_role_gives_an_existing_kms_v1_provider_on_1_30_its_cache_size(tmp_path) -> None:
    """roles/encryption_config used to decide v1/v2 from the version alone: with auto on 1.29+ it took an
    existing KMS v1 provider for v2 and dropped the cachesize asked for. Now the module decides."""
    config = tmp_path / "encryption-provider-config.yaml"
    config.write_text(GO_PLUGIN_CONFIG)
    manifest = tmp_path / "kube-apiserver.yaml"
    manifest.write_text(
        (MANIFESTS / "kube-apiserver-1.30.encrypted.yaml")
        .read_text()
        .replace("/etc/kubernetes/encryption-provider-config.yaml", str(config))
    )
    role_vars = dict(
        encryption_config_manifest_path=str(manifest),
        encryption_config_cachesize=6000,
        encryption_config_backup_dir=str(tmp_path / "backups"),
    )
    playbook = tmp_path / "play.yml"
    playbook.write_text(
        yaml.safe_dump(
            [
                {
                    "hosts": "localhost",
                    "gather_facts": False,
                    "roles": [{"role": "tke.kms.encryption_config", "vars": role_vars}],
                }
            ]
        )
    )
    run = ansible_playbook(
        str(playbook),
        "-i",
        "localhost,",
        "-c",
        "local",
        "-e",
        f"ansible_python_interpreter={sys.executable}",
        timeout=120,
    )
    assert run.returncode == 0, output(run)
    assert providers(config)[0]["kms"]["cachesize"] == 6000
    assert "apiVersion" not in providers(config)[0]["kms"]
