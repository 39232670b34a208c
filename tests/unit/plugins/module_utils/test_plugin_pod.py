"""The plugin pod: one spec, rendered as a DaemonSet and as a static pod."""

from __future__ import annotations

import copy
from typing import Any

import pytest
from ansible_collections.tke.kms.plugins.module_utils import _plugin_pod as pod

PARAMS: dict[str, Any] = dict(
    name="tke-kms-plugin",
    namespace="kube-system",
    image="registry.example.com/tke-kms-plugin:0.1.0",
    image_pull_policy="IfNotPresent",
    image_pull_secrets=None,
    plugin_binary="/tke-kms-plugin",
    region="ap-guangzhou",
    key_id="key-1",
    unix_socket="/var/run/tke-kms-plugin/server.sock",
    credentials_source="file",
    credentials_file="/etc/tke-kms-plugin/credentials",
    cvm_role=None,
    env_secret_id=None,
    env_secret_key=None,
    endpoint=None,
    metrics_address="127.0.0.1:9876",
    qps=None,
    decrypt_cache_size=None,
    verbosity=None,
    extra_args=None,
    resources=None,
    node_selector=None,
    extra_tolerations=None,
)


def params(**overrides: Any) -> dict[str, Any]:
    return dict(copy.deepcopy(PARAMS), **overrides)


def container(spec: dict) -> dict:
    (only,) = spec["containers"]
    return only


def test_daemonset_runs_on_masters_with_either_role_label_despite_their_taints() -> None:
    ds = pod.daemonset(params())
    spec = ds["spec"]["template"]["spec"]
    terms = spec["affinity"]["nodeAffinity"]["requiredDuringSchedulingIgnoredDuringExecution"][
        "nodeSelectorTerms"
    ]
    # Separate terms are ORed by the scheduler: a node with either label qualifies.
    assert terms == [
        {"matchExpressions": [{"key": "node-role.kubernetes.io/control-plane", "operator": "Exists"}]},
        {"matchExpressions": [{"key": "node-role.kubernetes.io/master", "operator": "Exists"}]},
    ]
    assert {(t["key"], t["effect"]) for t in spec["tolerations"]} == {
        ("node-role.kubernetes.io/control-plane", "NoSchedule"),
        ("node-role.kubernetes.io/master", "NoSchedule"),
    }
    assert "nodeSelector" not in spec


def test_daemonset_identity_and_rolling_update_one_master_at_a_time() -> None:
    ds = pod.daemonset(params())
    assert (ds["apiVersion"], ds["kind"]) == ("apps/v1", "DaemonSet")
    assert ds["metadata"]["namespace"] == "kube-system"
    assert ds["spec"]["selector"] == {"matchLabels": {"app.kubernetes.io/name": "tke-kms-plugin"}}
    assert ds["spec"]["template"]["metadata"]["labels"]["app.kubernetes.io/name"] == "tke-kms-plugin"
    assert ds["spec"]["updateStrategy"] == {"type": "RollingUpdate", "rollingUpdate": {"maxUnavailable": 1}}


def test_pod_is_a_hardened_host_network_system_critical_pod() -> None:
    spec = pod.pod_spec(params())
    assert spec["hostNetwork"] is True
    assert spec["dnsPolicy"] == "Default"
    assert spec["priorityClassName"] == "system-node-critical"
    security = container(spec)["securityContext"]
    assert security["readOnlyRootFilesystem"] is True
    assert security["allowPrivilegeEscalation"] is False
    assert security["capabilities"] == {"drop": ["ALL"]}
    assert container(spec)["resources"] == pod.DEFAULT_RESOURCES


def test_arguments_for_the_plugin_cli() -> None:
    args = container(pod.pod_spec(params()))["args"]
    assert args == [
        "--region=ap-guangzhou",
        "--key-id=key-1",
        "--unix-socket=/var/run/tke-kms-plugin/server.sock",
        "--credentials-file=/etc/tke-kms-plugin/credentials",
        "--metrics-address=127.0.0.1:9876",
    ]


def test_optional_arguments_are_passed_when_set() -> None:
    args = pod.plugin_args(
        params(
            endpoint="http://10.0.0.5:8080",
            qps=50.0,
            decrypt_cache_size=0,
            verbosity=4,
            extra_args=["--x=y"],
        )
    )
    assert (
        args[-5:]
        == [
            "--kms-endpoint=http://10.0.0.5:8080",
            "--metrics-address=127.0.0.1:9876",
            "--qps=50.0",
            "--decrypt-cache-size=0",
            "--v=4",
            "--x=y",
        ][-5:]
    )
    assert "--decrypt-cache-size=0" in args


def test_file_credentials_come_from_a_read_only_host_directory() -> None:
    spec = pod.pod_spec(params(credentials_file="/etc/tke-kms/creds.ini"))
    mounts = {m["name"]: m for m in container(spec)["volumeMounts"]}
    volumes = {v["name"]: v for v in spec["volumes"]}
    assert mounts["credentials"] == {"name": "credentials", "mountPath": "/etc/tke-kms", "readOnly": True}
    assert volumes["credentials"]["hostPath"] == {"path": "/etc/tke-kms", "type": "Directory"}
    assert volumes["socket-dir"]["hostPath"] == {
        "path": "/var/run/tke-kms-plugin",
        "type": "DirectoryOrCreate",
    }
    assert "env" not in container(spec)


def test_cvm_role_needs_no_secret_on_the_master() -> None:
    spec = pod.pod_spec(params(credentials_source="cvm_role", cvm_role="kms-role"))
    assert "--cvm-role=kms-role" in container(spec)["args"]
    assert not any("credentials" in arg for arg in container(spec)["args"])
    assert "credentials" not in {v["name"] for v in spec["volumes"]}
    assert "env" not in container(spec)


def test_env_credentials_only_when_asked_and_redacted_for_output() -> None:
    ds = pod.daemonset(params(credentials_source="env", env_secret_id="AKIDx", env_secret_key="sk-x"))
    env = container(ds["spec"]["template"]["spec"])["env"]
    assert env == [{"name": "SECRET_ID", "value": "AKIDx"}, {"name": "SECRET_KEY", "value": "sk-x"}]
    shown = pod.redact_credentials(ds)
    assert "sk-x" not in str(shown) and "AKIDx" not in str(shown)
    assert container(ds["spec"]["template"]["spec"])["env"][1]["value"] == "sk-x"  # the original is untouched


def test_probes_liveness_is_the_local_health_check_readiness_is_readyz() -> None:
    spec = pod.pod_spec(params())
    liveness = container(spec)["livenessProbe"]
    readiness = container(spec)["readinessProbe"]
    assert liveness["exec"]["command"] == [
        "/tke-kms-plugin",
        "health-check",
        "--unix-socket=/var/run/tke-kms-plugin/server.sock",
    ]
    assert readiness["httpGet"] == {"host": "127.0.0.1", "port": 9876, "path": "/readyz", "scheme": "HTTP"}


def test_without_metrics_readiness_falls_back_to_the_health_check() -> None:
    spec = pod.pod_spec(params(metrics_address=""))
    assert container(spec)["readinessProbe"]["exec"] == container(spec)["livenessProbe"]["exec"]
    assert "--metrics-address=" in container(spec)["args"]


@pytest.mark.parametrize(
    ("address", "expected"),
    [("127.0.0.1:9876", ("127.0.0.1", 9876)), ("0.0.0.0:80", ("127.0.0.1", 80)), ("[::1]:9", ("::1", 9))],
)
def test_metrics_address(address: str, expected: tuple[str, int]) -> None:
    assert pod.metrics_host_port(address) == expected


@pytest.mark.parametrize("address", ["9876", "host:", "host:70000", "host:x"])
def test_bad_metrics_address(address: str) -> None:
    with pytest.raises(ValueError, match="HOST:PORT"):
        pod.metrics_host_port(address)


def test_static_pod_runs_the_same_pod_without_scheduling() -> None:
    manifest = pod.static_pod(params())
    assert (manifest["apiVersion"], manifest["kind"]) == ("v1", "Pod")
    assert manifest["spec"] == pod.pod_spec(params())
    template = pod.daemonset(params())["spec"]["template"]["spec"]
    assert {k: v for k, v in template.items() if k not in ("affinity", "tolerations")} == manifest["spec"]


def test_custom_placement() -> None:
    extra = [{"key": "dedicated", "operator": "Equal", "value": "kms", "effect": "NoSchedule"}]
    spec = pod.daemonset(params(node_selector={"kms": "yes"}, extra_tolerations=extra))["spec"]["template"][
        "spec"
    ]
    assert spec["nodeSelector"] == {"kms": "yes"}
    assert "affinity" not in spec
    assert spec["tolerations"][-1] == extra[0]


def test_pull_secrets_and_resources() -> None:
    resources = {"requests": {"cpu": "10m"}}
    spec = pod.pod_spec(params(image_pull_secrets=["ccr"], resources=resources))
    assert spec["imagePullSecrets"] == [{"name": "ccr"}]
    assert container(spec)["resources"] == resources
