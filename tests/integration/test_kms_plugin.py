"""tke.kms.kms_plugin against the lab's real kube-apiserver 1.20 (etcd, TLS, RBAC), through ansible.

The lab has no kubelets, so no plugin pod ever runs here: `wait` is exercised on its failure paths (the
DaemonSet controller not running, or no master to run on), which is what the module must report clearly.
"""

from __future__ import annotations

import json
from collections.abc import Callable
from typing import Any

import pytest
from kubernetes import client

from tests.integration.conftest import AnsibleRun, assert_clean_failure
from tests.lab.apiserver import ControlPlane

Run = Callable[..., AnsibleRun]
PLUGIN = dict(image="registry.example.com/tke-kms-plugin:0.1.0", region="ap-guangzhou", key_id="key-1")


def read_daemonset(plane: ControlPlane, name: str = "tke-kms-plugin") -> dict[str, Any] | None:
    apps = client.AppsV1Api(plane.apiserver.api_client())
    try:
        response = apps.read_namespaced_daemon_set(name, "kube-system", _preload_content=False)
    except client.ApiException as exc:
        if exc.status == 404:
            return None
        raise
    return json.loads(response.data)


@pytest.fixture
def kube(control_plane: ControlPlane) -> dict[str, str]:
    return dict(kubeconfig=str(control_plane.apiserver.admin_conf))


def test_apply_rerun_update_and_remove(ansible_module: Run, control_plane: ControlPlane, kube: dict) -> None:
    args = dict(kube, **PLUGIN)
    predicted = ansible_module("tke.kms.kms_plugin", args, check=True, diff=True)
    assert predicted["changed"] is True, predicted.result
    assert predicted["diff"]["before"] == {}
    assert read_daemonset(control_plane) is None  # the server-side dry run stored nothing

    created = ansible_module("tke.kms.kms_plugin", args, diff=True)
    assert created["changed"] is True, created.result
    stored = read_daemonset(control_plane)
    assert stored is not None
    spec = stored["spec"]["template"]["spec"]
    assert spec["hostNetwork"] is True and spec["priorityClassName"] == "system-node-critical"
    terms = spec["affinity"]["nodeAffinity"]["requiredDuringSchedulingIgnoredDuringExecution"][
        "nodeSelectorTerms"
    ]
    assert {term["matchExpressions"][0]["key"] for term in terms} == {
        "node-role.kubernetes.io/control-plane",
        "node-role.kubernetes.io/master",
    }
    container = spec["containers"][0]
    assert "--key-id=key-1" in container["args"]
    assert container["readinessProbe"]["httpGet"]["path"] == "/readyz"
    assert {"name": "credentials", "mountPath": "/etc/tke-kms-plugin", "readOnly": True} in container[
        "volumeMounts"
    ]
    assert stored["metadata"]["managedFields"][0]["manager"] == "tke.kms"
    assert created["resource"]["metadata"]["uid"] == stored["metadata"]["uid"]

    again = ansible_module("tke.kms.kms_plugin", args, diff=True)
    assert again["changed"] is False, again["diff"]
    deployed = ansible_module("tke.kms.kms_plugin_info", kube, check=True)
    assert (deployed["exists"], deployed["key_id"], deployed["changed"]) == (True, "key-1", False)
    assert deployed["resource"]["spec"] == stored["spec"] and "--key-id=key-1" in deployed["args"]
    assert read_daemonset(control_plane)["metadata"]["generation"] == stored["metadata"]["generation"]

    update = dict(args, key_id="key-2")
    predicted = ansible_module("tke.kms.kms_plugin", update, check=True, diff=True)
    assert predicted["changed"] is True
    before_args = predicted["diff"]["before"]["spec"]["template"]["spec"]["containers"][0]["args"]
    after_args = predicted["diff"]["after"]["spec"]["template"]["spec"]["containers"][0]["args"]
    assert "--key-id=key-1" in before_args and "--key-id=key-2" in after_args
    assert (
        "--key-id=key-1" in read_daemonset(control_plane)["spec"]["template"]["spec"]["containers"][0]["args"]
    )

    updated = ansible_module("tke.kms.kms_plugin", update)
    assert updated["changed"] is True
    current = read_daemonset(control_plane)
    assert "--key-id=key-2" in current["spec"]["template"]["spec"]["containers"][0]["args"]
    assert current["metadata"]["generation"] == stored["metadata"]["generation"] + 1

    absent = dict(kube, state="absent", wait=True, wait_timeout=30)
    assert ansible_module("tke.kms.kms_plugin", absent, check=True)["changed"] is True
    assert read_daemonset(control_plane) is not None
    removed = ansible_module("tke.kms.kms_plugin", absent)
    assert removed["changed"] is True, removed.result
    assert removed["rollout"]["done"] is True
    assert read_daemonset(control_plane) is None
    assert ansible_module("tke.kms.kms_plugin", absent)["changed"] is False
    gone = ansible_module("tke.kms.kms_plugin_info", kube)
    assert (gone["exists"], gone["key_id"], gone["resource"]) == (False, "", {}), gone.result


def test_fields_added_by_others_survive_and_drift_is_repaired(
    ansible_module: Run, control_plane: ControlPlane, kube: dict
) -> None:
    args = dict(kube, **PLUGIN)
    ansible_module("tke.kms.kms_plugin", args)
    apps = client.AppsV1Api(control_plane.apiserver.api_client())
    patch = {
        "metadata": {"annotations": {"team": "platform"}},
        "spec": {
            "template": {"spec": {"containers": [{"name": "tke-kms-plugin", "image": "someone/else:1"}]}}
        },
    }
    apps.patch_namespaced_daemon_set("tke-kms-plugin", "kube-system", patch, _preload_content=False)

    repaired = ansible_module("tke.kms.kms_plugin", args, diff=True)
    assert repaired["changed"] is True
    current = read_daemonset(control_plane)
    assert current["spec"]["template"]["spec"]["containers"][0]["image"] == PLUGIN["image"]
    assert current["metadata"]["annotations"]["team"] == "platform"  # not ours: kept
    assert ansible_module("tke.kms.kms_plugin", args)["changed"] is False


def test_env_credentials_are_applied_but_never_shown(
    ansible_module: Run, control_plane: ControlPlane, kube: dict
) -> None:
    args = dict(
        kube, credentials_source="env", env_secret_id="AKIDlab", env_secret_key="lab-secret-key-1", **PLUGIN
    )
    run = ansible_module("tke.kms.kms_plugin", args, diff=True)
    assert run["changed"] is True
    assert "credentials_source=env" in str(run.get("warnings"))
    env = read_daemonset(control_plane)["spec"]["template"]["spec"]["containers"][0]["env"]
    assert {"name": "SECRET_KEY", "value": "lab-secret-key-1"} in env
    rotated = ansible_module("tke.kms.kms_plugin", dict(args, env_secret_key="lab-secret-key-2"), diff=True)
    assert rotated["changed"] is True
    for output in (run.stdout, rotated.stdout):
        assert "lab-secret-key-1" not in output and "lab-secret-key-2" not in output


def test_wait_without_a_daemonset_controller_times_out_clearly(
    ansible_module: Run, control_plane: ControlPlane, kube: dict
) -> None:
    run = ansible_module("tke.kms.kms_plugin", dict(kube, wait=True, wait_timeout=3, **PLUGIN))
    assert_clean_failure(run, "not done after 3s", "has not processed generation 1")
    assert run["rollout"]["done"] is False
    assert read_daemonset(control_plane) is not None  # applied, then waited


def test_wait_with_no_master_to_run_on_times_out_clearly(
    ansible_module: Run, control_plane_factory: Callable[..., ControlPlane]
) -> None:
    plane = control_plane_factory(controllers=True)
    kube = dict(kubeconfig=str(plane.apiserver.admin_conf))
    run = ansible_module("tke.kms.kms_plugin", dict(kube, wait=True, wait_timeout=20, **PLUGIN))
    assert_clean_failure(run, "no node matches the DaemonSet's placement")


def test_module_defaults_group_and_connection_errors(
    ansible_playbook: Callable[..., list[AnsibleRun]], control_plane: ControlPlane, kube: dict
) -> None:
    tasks = [{"name": "deploy", "tke.kms.kms_plugin": dict(PLUGIN)}]
    (deployed,) = ansible_playbook(tasks, play={"module_defaults": {"group/tke.kms.k8s": kube}})
    assert deployed["changed"] is True, deployed.result

    untrusted = dict(
        PLUGIN,
        host=control_plane.apiserver.url,
        api_key="not-a-token",
        validate_certs=True,
        ca_cert="/etc/ssl/certs/ca-certificates.crt",
    )
    (refused,) = ansible_playbook([{"name": "wrong CA", "tke.kms.kms_plugin": untrusted}])
    assert_clean_failure(refused, "reading DaemonSet kube-system/tke-kms-plugin failed", "cannot reach")

    unauthorized = dict(untrusted, validate_certs=False)
    (denied,) = ansible_playbook([{"name": "bad token", "tke.kms.kms_plugin": unauthorized}])
    assert_clean_failure(denied, "401")
