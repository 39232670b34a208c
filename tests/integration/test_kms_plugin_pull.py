"""tke.kms.kms_plugin's DaemonSet with a private registry's pull Secret and pull policy, and the masters' own
KMS endpoint, against the lab's real kube-apiserver 1.20 (one control plane for the whole story)."""

from __future__ import annotations

from collections.abc import Callable

from tests.integration.conftest import AnsibleRun
from tests.integration.test_kms_plugin import PLUGIN, read_daemonset
from tests.lab.apiserver import ControlPlane

Run = Callable[..., AnsibleRun]
PRIVATE = dict(
    PLUGIN,
    image="tkekms.tencentcloudcr.com/infra/tke-kms-plugin:0.1.0",
    image_pull_secrets=["tcr-pull"],
    image_pull_policy="Always",
    endpoint="kms.internal.tencentcloudapi.com",
)


def pod_spec(plane: ControlPlane) -> dict:
    return read_daemonset(plane)["spec"]["template"]["spec"]


def test_pull_secrets_policy_and_endpoint_are_applied_idempotently(
    ansible_module: Run, control_plane: ControlPlane
) -> None:
    args = dict(PRIVATE, kubeconfig=str(control_plane.apiserver.admin_conf))
    predicted = ansible_module("tke.kms.kms_plugin", args, check=True, diff=True)
    assert predicted["changed"] is True, predicted.result
    after = predicted["diff"]["after"]["spec"]["template"]["spec"]
    assert after["imagePullSecrets"] == [{"name": "tcr-pull"}]
    assert read_daemonset(control_plane) is None  # the server-side dry run stored nothing

    assert ansible_module("tke.kms.kms_plugin", args)["changed"] is True
    spec = pod_spec(control_plane)
    assert spec["imagePullSecrets"] == [{"name": "tcr-pull"}]
    assert spec["containers"][0]["imagePullPolicy"] == "Always"
    assert "--kms-endpoint=kms.internal.tencentcloudapi.com" in spec["containers"][0]["args"]
    assert ansible_module("tke.kms.kms_plugin", args)["changed"] is False

    # Node-level registry credentials instead: the pull Secret leaves the DaemonSet, the policy changes.
    node_level = dict(args, image_pull_secrets=[], image_pull_policy="IfNotPresent")
    changed = ansible_module("tke.kms.kms_plugin", node_level, diff=True)
    assert changed["changed"] is True
    assert changed["diff"]["before"]["spec"]["template"]["spec"]["imagePullSecrets"] == [{"name": "tcr-pull"}]
    spec = pod_spec(control_plane)
    assert "imagePullSecrets" not in spec
    assert spec["containers"][0]["imagePullPolicy"] == "IfNotPresent"
    assert ansible_module("tke.kms.kms_plugin", node_level)["changed"] is False
