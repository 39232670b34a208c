from __future__ import annotations

from pathlib import Path

import pytest
from ansible.module_utils.common.arg_spec import ArgumentSpecValidator
from ansible_collections.tke.kms.plugins.module_utils._k8s import (
    KubeError,
    build_configuration,
    k8s_auth_argument_spec,
    strip_volatile,
)
from ansible_collections.tke.kms.plugins.module_utils._k8s_waiter import (
    daemonset_rollout,
    pod_problems,
    wait_until,
)

KUBECONFIG = {
    "apiVersion": "v1",
    "kind": "Config",
    "clusters": [
        {"name": "a", "cluster": {"server": "https://10.0.0.1:6443", "insecure-skip-tls-verify": True}},
        {"name": "b", "cluster": {"server": "https://10.0.0.2:6443"}},
    ],
    "users": [{"name": "admin", "user": {"token": "tok-123"}}],
    "contexts": [
        {"name": "ctx-a", "context": {"cluster": "a", "user": "admin"}},
        {"name": "ctx-b", "context": {"cluster": "b", "user": "admin"}},
    ],
    "current-context": "ctx-a",
}


def test_kubeconfig_dict_and_context() -> None:
    configuration = build_configuration({"kubeconfig": KUBECONFIG, "context": "ctx-b"})
    assert configuration.host == "https://10.0.0.2:6443"
    assert configuration.api_key["BearerToken"] == "Bearer tok-123"


def test_explicit_options_override_the_kubeconfig(tmp_path: Path) -> None:
    path = tmp_path / "config"
    path.write_text(__import__("json").dumps(KUBECONFIG))
    configuration = build_configuration(
        {
            "kubeconfig": str(path),
            "host": "https://127.0.0.1:7443",
            "api_key": "other",
            "validate_certs": True,
            "ca_cert": "/ca.pem",
            "client_cert": "/c.pem",
            "client_key": "/k.pem",
            "proxy": "http://proxy:3128",
        }
    )
    assert configuration.host == "https://127.0.0.1:7443"
    assert configuration.api_key["BearerToken"] == "Bearer other"
    assert configuration.verify_ssl is True
    assert (configuration.ssl_ca_cert, configuration.cert_file, configuration.key_file) == (
        "/ca.pem",
        "/c.pem",
        "/k.pem",
    )
    assert configuration.proxy == "http://proxy:3128"


def test_host_alone_needs_no_kubeconfig() -> None:
    configuration = build_configuration(
        {"host": "https://127.0.0.1:6443", "api_key": "t", "validate_certs": False}
    )
    assert (configuration.host, configuration.verify_ssl) == ("https://127.0.0.1:6443", False)


def test_no_connection_at_all_says_what_to_set(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("HOME", str(tmp_path))
    monkeypatch.setenv("KUBECONFIG", str(tmp_path / "missing"))
    monkeypatch.delenv("KUBERNETES_SERVICE_HOST", raising=False)
    with pytest.raises(KubeError, match=r"set kubeconfig .* or host"):
        build_configuration({})


def test_connection_options_use_the_kubernetes_core_environment(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("K8S_AUTH_KUBECONFIG", "/etc/kubernetes/admin.conf")
    monkeypatch.setenv("K8S_AUTH_CONTEXT", "admin")
    monkeypatch.setenv("K8S_AUTH_HOST", "https://h:6443")
    monkeypatch.setenv("K8S_AUTH_API_KEY", "tok")
    monkeypatch.setenv("K8S_AUTH_VERIFY_SSL", "no")
    monkeypatch.setenv("K8S_AUTH_SSL_CA_CERT", "/ca")
    result = ArgumentSpecValidator(k8s_auth_argument_spec()).validate({})
    params = result.validated_parameters
    assert params["kubeconfig"] == "/etc/kubernetes/admin.conf"
    assert (params["context"], params["host"], params["api_key"]) == ("admin", "https://h:6443", "tok")
    assert (params["validate_certs"], params["ca_cert"]) == (False, "/ca")
    assert "tok" in result._no_log_values


def test_strip_volatile_keeps_what_a_user_can_change() -> None:
    stored = {
        "metadata": {
            "name": "x",
            "labels": {"a": "b"},
            "resourceVersion": "7",
            "generation": 3,
            "uid": "u",
            "managedFields": [{}],
            "creationTimestamp": "t",
            "annotations": {"deprecated.daemonset.template.generation": "3"},
        },
        "spec": {"k": "v"},
        "status": {"numberReady": 1},
    }
    assert strip_volatile(stored) == {"metadata": {"name": "x", "labels": {"a": "b"}}, "spec": {"k": "v"}}
    assert stored["status"] == {"numberReady": 1}  # not modified in place
    assert strip_volatile(None) == {}


def daemonset(generation: int = 2, **status: int) -> dict:
    return {"metadata": {"generation": generation}, "status": status}


@pytest.mark.parametrize(
    ("ds", "done", "says"),
    [
        (None, False, "does not exist"),
        (daemonset(observedGeneration=1), False, "has not processed generation 2"),
        (daemonset(), False, "has not processed"),
        (daemonset(observedGeneration=2, desiredNumberScheduled=0), False, "no node matches"),
        (
            daemonset(
                observedGeneration=2,
                desiredNumberScheduled=3,
                updatedNumberScheduled=2,
                numberReady=3,
                numberAvailable=3,
            ),
            False,
            "3 desired, 2 updated, 3 ready, 3 available",
        ),
        (
            daemonset(
                observedGeneration=2,
                desiredNumberScheduled=3,
                updatedNumberScheduled=3,
                numberReady=2,
                numberAvailable=2,
            ),
            False,
            "in progress",
        ),
        (
            daemonset(
                observedGeneration=2,
                desiredNumberScheduled=3,
                updatedNumberScheduled=3,
                numberReady=3,
                numberAvailable=3,
            ),
            True,
            "rolled out",
        ),
    ],
)
def test_daemonset_rollout(ds: dict | None, done: bool, says: str) -> None:
    found_done, message = daemonset_rollout(ds)
    assert found_done is done
    assert says in message


def test_pod_problems_name_node_and_reason() -> None:
    pods = [
        {"metadata": {"name": "ok"}, "status": {"conditions": [{"type": "Ready", "status": "True"}]}},
        {
            "metadata": {"name": "p1"},
            "spec": {"nodeName": "master-1"},
            "status": {
                "phase": "Running",
                "containerStatuses": [
                    {
                        "state": {"waiting": {"reason": "CrashLoopBackOff", "message": "back-off"}},
                        "lastState": {"terminated": {"exitCode": 2, "message": "cannot read credentials"}},
                    }
                ],
            },
        },
        {"metadata": {"name": "p2"}, "status": {"phase": "Pending"}},
    ]
    assert pod_problems(pods) == [
        "pod p1 on node master-1: phase Running; waiting CrashLoopBackOff: back-off; "
        "last exit 2: cannot read credentials",
        "pod p2 on node (not scheduled): phase Pending",
    ]


class FakeClock:
    """Deterministic time for the polling loop."""

    def __init__(self) -> None:
        self.now = 100.0
        self.sleeps: list[float] = []

    def sleep(self, seconds: float) -> None:
        self.sleeps.append(seconds)
        self.now += seconds


def test_wait_until_done() -> None:
    clock = FakeClock()
    answers = iter([(False, "a"), (False, "b"), (True, "done")])
    assert wait_until(lambda: next(answers), 60, 2, clock.sleep, lambda: clock.now) == (True, "done", 4.0)


def test_wait_until_gives_up_at_the_deadline_with_the_last_message() -> None:
    clock = FakeClock()
    done, message, waited = wait_until(lambda: (False, "still"), 5, 2, clock.sleep, lambda: clock.now)
    assert (done, message, waited) == (False, "still", 5.0)
    assert clock.sleeps == [2, 2, 1]


def test_a_malformed_kubeconfig_file_is_reported_by_position_only(tmp_path: Path) -> None:
    path = tmp_path / "admin.conf"
    path.write_text(
        "apiVersion: v1\nkind: Config\nusers:\n- name: admin\n  user:\n    token: tok-secret: [\n"
    )
    with pytest.raises(KubeError) as raised:
        build_configuration({"kubeconfig": str(path)})
    assert str(raised.value) == (
        f"cannot load the Kubernetes connection: the kubeconfig {path} is not valid YAML (line 6, column 22)"
    )
    assert "tok-secret" not in str(raised.value)
