"""The rollout's rules, one function each in _encryption_config, and the modules that return their answers.

The roles used to re-derive KMS v1 vs v2 in Jinja from the requested version and the Kubernetes version alone;
with kms_api_version auto that disagreed with resolve_kms_api_version wherever a provider of that name already
existed with the other API version. These tests pin the rules and show the disagreement is gone.
"""

from __future__ import annotations

import textwrap
from pathlib import Path

import pytest
from ansible_collections.tke.kms.plugins.module_utils import _encryption_config as ec
from ansible_collections.tke.kms.plugins.module_utils._kube_version import KubeVersion, parse_version
from ansible_collections.tke.kms.plugins.modules import apiserver_manifest_info, encryption_config

from tests.unit.collection import run_module

MANIFESTS = Path(__file__).parents[2] / "modules_rollout" / "manifests"
SOCKET = "unix:///var/run/tke-kms-plugin/server.sock"


def config_with(api_version: str) -> str:
    """A config whose secrets entry has the KMS provider tke-kms-plugin of that API version, then identity."""
    extra = "apiVersion: v2" if api_version == "v2" else "cachesize: 1000"
    return textwrap.dedent(f"""\
        apiVersion: apiserver.config.k8s.io/v1
        kind: EncryptionConfiguration
        resources:
          - resources: [secrets]
            providers:
              - kms:
                  {extra}
                  name: tke-kms-plugin
                  endpoint: {SOCKET}
                  timeout: 3s
              - identity: {{}}
        """)


def old_role_v1(requested: str, version: KubeVersion) -> bool:
    """What roles/encryption_config decided before (its Jinja, in Python): the version alone, no provider."""
    return requested == "v1" or (requested == "auto" and version < (1, 29))


def master(tmp_path: Path, manifest: str, config: str | None) -> tuple[Path, Path]:
    """A manifest (from the samples) naming a config in tmp_path, and that config (if any)."""
    config_path = tmp_path / "encryption-provider-config.yaml"
    text = (MANIFESTS / f"kube-apiserver-{manifest}.encrypted.yaml").read_text()
    manifest_path = tmp_path / "kube-apiserver.yaml"
    manifest_path.write_text(
        text.replace("/etc/kubernetes/encryption-provider-config.yaml", str(config_path))
    )
    if config is not None:
        config_path.write_text(config)
    return manifest_path, config_path


def info(manifest_path: Path, **args: object) -> dict:
    return run_module(apiserver_manifest_info.main, dict(path=str(manifest_path), **args))


# -- the rules ---------------------------------------------------------------------------------------------


@pytest.mark.parametrize(
    ("existing", "version", "expected"),
    [
        (None, "1.28.5", "v1"),
        (None, "1.29.0", "v2"),
        ("v1", "1.30.2", "v1"),  # the data of an existing provider needs its version
        ("v2", "1.28.5", "v2"),
    ],
)
def test_auto_resolves_from_an_existing_provider_then_the_version(existing, version, expected) -> None:
    config = ec.parse(config_with(existing), "c") if existing else None
    assert ec.resolve_kms_api_version("auto", parse_version(version), config, "tke-kms-plugin") == expected


@pytest.mark.parametrize(
    ("api_version", "version", "gates"),
    [("v1", "1.28.9", {}), ("v1", "1.29.0", {"KMSv1": True}), ("v2", "1.30.2", {}), (None, "1.30.2", {})],
)
def test_the_kms_v1_feature_gate_from_1_29(api_version, version, gates) -> None:
    assert ec.feature_gates_for(api_version, parse_version(version)) == gates
    assert ec.needs_kms_v1_gate(api_version, parse_version(version)) == bool(gates)


def test_only_kms_v1_has_a_cache_size() -> None:
    assert ec.cachesize_applies("v1") and not ec.cachesize_applies("v2")


def test_a_kms_health_check_needs_a_kms_provider_and_1_16() -> None:
    kms = ec.parse(config_with("v1"), "c")
    aescbc_only = ec.parse(config_with("v1").replace("kms:", "aescbc:"), "c")
    assert ec.has_kms_health_check(kms, parse_version("1.16.0"))
    assert not ec.has_kms_health_check(kms, parse_version("1.15.12"))
    assert not ec.has_kms_health_check(aescbc_only, parse_version("1.20.2"))
    assert not ec.has_kms_health_check(None, parse_version("1.30.2"))


def test_the_config_file_given_then_in_use_then_the_default() -> None:
    assert ec.config_file("/a.yaml", "/b.yaml") == "/a.yaml"
    assert ec.config_file(None, "/b.yaml") == "/b.yaml"
    assert ec.config_file("", None) == ec.DEFAULT_CONFIG_PATH


def test_the_provider_entry_by_name() -> None:
    config = ec.parse(config_with("v2"), "c")
    assert ec.provider_entry(config, "tke-kms-plugin")["api_version"] == "v2"
    assert ec.provider_entry(config, "other") == {}
    assert ec.provider_entry(None, "tke-kms-plugin") == {}


# -- the old disagreement, and the modules agreeing now -----------------------------------------------------


@pytest.mark.parametrize(("manifest", "existing"), [("1.30", "v1"), ("1.20", None)])
def test_info_decides_what_encryption_config_does(tmp_path, manifest, existing) -> None:
    manifest_path, config_path = master(tmp_path, manifest, config_with(existing) if existing else None)
    decided = info(manifest_path, provider_name="tke-kms-plugin", kms_api_version="auto")
    written = run_module(
        encryption_config.main,
        dict(path=str(config_path), kubernetes_version=decided["kubernetes_version"], phase="write"),
    )
    assert not written.get("failed"), written
    assert decided["kms"]["api_version"] == written["kms_api_version"]
    assert decided["kms"]["feature_gates"] == written["feature_gates"]
    assert decided["kms"]["cachesize_applies"] == (
        "cachesize" in ec.find_kms(ec.read_config(str(config_path)), "tke-kms-plugin")["kms"]
    )


def test_an_existing_v1_provider_on_1_30_with_auto_was_decided_as_v2_by_the_role(tmp_path) -> None:
    manifest_path, _config_path = master(tmp_path, "1.30", config_with("v1"))
    version = parse_version("1.30.2")
    assert old_role_v1("auto", version) is False  # the role took it for v2: no cache size, no count
    decided = info(manifest_path, provider_name="tke-kms-plugin", kms_api_version="auto")
    assert decided["kms"] == {
        "api_version": "v1",
        "cachesize_applies": True,
        "feature_gates": {"KMSv1": True},
    }
    assert decided["provider"]["api_version"] == "v1"
    assert decided["kms_health_check"] is True


def test_an_existing_v2_provider_on_1_28_with_auto_was_decided_as_v1_by_the_role(tmp_path) -> None:
    """The role passed cachesize for it, and encryption_config refused: cachesize is only valid for KMS v1."""
    manifest_path, config_path = master(tmp_path, "1.30", config_with("v2"))
    version = parse_version("1.28.5")
    assert old_role_v1("auto", version) is True
    refused = run_module(
        encryption_config.main,
        dict(path=str(config_path), kubernetes_version="1.28.5", cachesize=6000),
    )
    assert refused["failed"] and "only valid for KMS v1" in refused["msg"]
    decided = info(
        manifest_path, kubernetes_version="1.28.5", provider_name="tke-kms-plugin", kms_api_version="auto"
    )
    assert decided["kms"] == {"api_version": "v2", "cachesize_applies": False, "feature_gates": {}}


def test_info_decides_for_the_file_to_be_written_when_it_is_not_the_one_in_use(tmp_path) -> None:
    manifest_path, _config_path = master(tmp_path, "1.30", config_with("v1"))
    other = tmp_path / "other.yaml"
    decided = info(
        manifest_path,
        provider_name="tke-kms-plugin",
        kms_api_version="auto",
        encryption_config_path=str(other),
    )
    assert decided["encryption_config_file"] == str(other)
    assert decided["kms"]["api_version"] == "v2"  # other.yaml has no provider yet
    assert decided["provider"]["api_version"] == "v1"  # what kube-apiserver runs with


def test_info_without_the_options_returns_no_decisions(tmp_path) -> None:
    manifest_path, config_path = master(tmp_path, "1.20", None)
    found = info(manifest_path)
    assert "kms" not in found and "provider" not in found
    assert found["encryption_config_file"] == str(config_path)
    assert found["kms_health_check"] is False
    assert found["automatic_reload_supported"] is False  # 1.20
    assert info(master(tmp_path, "1.30", None)[0])["automatic_reload_supported"] is True


def test_info_refuses_kms_v2_before_1_27_as_encryption_config_does(tmp_path) -> None:
    manifest_path, _config_path = master(tmp_path, "1.20", None)
    refused = info(manifest_path, provider_name="tke-kms-plugin", kms_api_version="v2")
    assert refused["failed"] and "KMS v2 needs Kubernetes 1.27" in refused["msg"]
    assert refused["error"]["kind"] == "ConfigError"


def test_encryption_config_asks_for_no_gate_when_it_does_not_place_the_provider(tmp_path) -> None:
    config_path = tmp_path / "config.yaml"
    config_path.write_text(config_with("v1"))
    decrypt = run_module(
        encryption_config.main, dict(path=str(config_path), kubernetes_version="1.30.2", phase="decrypt")
    )
    assert decrypt["kms_api_version"] == "v1" and decrypt["feature_gates"] == {}
