# Copyright (c) tke.kms contributors
# Apache License 2.0 (see https://www.apache.org/licenses/LICENSE-2.0)
"""The tke-kms-plugin pod, rendered once and wrapped as a DaemonSet or as a static pod manifest.

Pure functions of the kms_plugin module options: the one source of truth for the pod spec.

PRIVATE to the collection.
"""

from __future__ import annotations

import copy
import posixpath
import typing as t

from ansible_collections.tke.kms.plugins.module_utils._errors import InvalidValue

APP_LABEL = "app.kubernetes.io/name"
CONTAINER_NAME = "tke-kms-plugin"
# Masters carry one of these labels (and taints with the same keys), depending on the Kubernetes version.
CONTROL_PLANE_ROLES = ("node-role.kubernetes.io/control-plane", "node-role.kubernetes.io/master")
DEFAULT_RESOURCES = {"requests": {"cpu": "50m", "memory": "64Mi"}, "limits": {"memory": "256Mi"}}
LEGACY_ENV_NAMES = ("SECRET_ID", "SECRET_KEY")
REDACTED_ENV_NAMES = frozenset(
    (*LEGACY_ENV_NAMES, "TENCENTCLOUD_SECRET_ID", "TENCENTCLOUD_SECRET_KEY", "TENCENTCLOUD_SECURITY_TOKEN")
)
REDACTED = "VALUE_REDACTED"
CREDENTIALS_VOLUME = "credentials"
SOCKET_VOLUME = "socket-dir"


def metrics_host_port(address: str) -> t.Tuple[str, int]:
    """'127.0.0.1:9876' -> ('127.0.0.1', 9876); a wildcard host is probed on loopback."""
    host, sep, port = address.rpartition(":")
    if not sep or not port.isdigit() or not 0 < int(port) < 65536:
        raise InvalidValue("metrics_address %r: expected HOST:PORT, or an empty string to disable" % address)
    host = host.strip("[]")
    return ("127.0.0.1" if host in ("", "0.0.0.0", "::") else host), int(port)


def plugin_args(params: t.Dict[str, t.Any]) -> t.List[str]:
    args = [
        "--region=%s" % params["region"],
        "--key-id=%s" % params["key_id"],
        "--unix-socket=%s" % params["unix_socket"],
    ]
    source = params["credentials_source"]
    if source == "file":
        args.append("--credentials-file=%s" % params["credentials_file"])
    elif source == "cvm_role":
        args.append("--cvm-role=%s" % params["cvm_role"])
    if params.get("endpoint"):
        args.append("--kms-endpoint=%s" % params["endpoint"])
    args.append("--metrics-address=%s" % (params.get("metrics_address") or ""))
    for option, flag in (
        ("qps", "--qps"),
        ("decrypt_cache_size", "--decrypt-cache-size"),
        ("verbosity", "--v"),
    ):
        if params.get(option) is not None:
            args.append("%s=%s" % (flag, params[option]))
    args.extend(params.get("extra_args") or [])
    return args


def _probes(params: t.Dict[str, t.Any]) -> t.Tuple[t.Dict[str, t.Any], t.Dict[str, t.Any]]:
    """Liveness: the cheap local health-check (no KMS call). Readiness: /readyz, which knows if KMS works."""
    health_check = {
        "exec": {
            "command": [params["plugin_binary"], "health-check", "--unix-socket=%s" % params["unix_socket"]]
        }
    }
    liveness = dict(
        health_check, initialDelaySeconds=10, periodSeconds=20, timeoutSeconds=10, failureThreshold=3
    )
    if params.get("metrics_address"):
        host, port = metrics_host_port(params["metrics_address"])
        # hostNetwork: the kubelet reaches the pod's loopback address as its own.
        ready_check: t.Dict[str, t.Any] = {
            "httpGet": {"host": host, "port": port, "path": "/readyz", "scheme": "HTTP"}
        }
    else:
        ready_check = copy.deepcopy(health_check)
    readiness = dict(ready_check, periodSeconds=10, timeoutSeconds=5, failureThreshold=3)
    return liveness, readiness


def labels(params: t.Dict[str, t.Any]) -> t.Dict[str, str]:
    return {APP_LABEL: params["name"], "app.kubernetes.io/managed-by": "tke.kms"}


def pod_spec(params: t.Dict[str, t.Any]) -> t.Dict[str, t.Any]:
    """The pod both deployment modes run: host network, root-only credentials mounted read-only, probes."""
    socket_dir = posixpath.dirname(params["unix_socket"])
    mounts = [{"name": SOCKET_VOLUME, "mountPath": socket_dir}, {"name": "tmp", "mountPath": "/tmp"}]
    volumes: t.List[t.Dict[str, t.Any]] = [
        {"name": SOCKET_VOLUME, "hostPath": {"path": socket_dir, "type": "DirectoryOrCreate"}},
        {"name": "tmp", "emptyDir": {"medium": "Memory", "sizeLimit": "16Mi"}},
    ]
    env = []
    if params["credentials_source"] == "file":
        # The directory, not the file: the role replaces the file by rename, the plugin re-reads the new one.
        credentials_dir = posixpath.dirname(params["credentials_file"])
        mounts.append({"name": CREDENTIALS_VOLUME, "mountPath": credentials_dir, "readOnly": True})
        volumes.append(
            {"name": CREDENTIALS_VOLUME, "hostPath": {"path": credentials_dir, "type": "Directory"}}
        )
    elif params["credentials_source"] == "env":
        env = [
            {"name": LEGACY_ENV_NAMES[0], "value": params["env_secret_id"]},
            {"name": LEGACY_ENV_NAMES[1], "value": params["env_secret_key"]},
        ]
    liveness, readiness = _probes(params)
    container: t.Dict[str, t.Any] = {
        "name": CONTAINER_NAME,
        "image": params["image"],
        "imagePullPolicy": params["image_pull_policy"],
        "command": [params["plugin_binary"]],
        "args": plugin_args(params),
        "livenessProbe": liveness,
        "readinessProbe": readiness,
        "resources": copy.deepcopy(params.get("resources") or DEFAULT_RESOURCES),
        "securityContext": {
            # root: the socket directory and the 0600 credentials file on the host belong to root.
            "runAsUser": 0,
            "allowPrivilegeEscalation": False,
            "readOnlyRootFilesystem": True,
            "capabilities": {"drop": ["ALL"]},
            "seccompProfile": {"type": "RuntimeDefault"},
        },
        "volumeMounts": mounts,
    }
    if env:
        container["env"] = env
    spec: t.Dict[str, t.Any] = {
        "hostNetwork": True,
        # The host's resolver: cluster DNS may itself need the API server, which may need this plugin.
        "dnsPolicy": "Default",
        "priorityClassName": "system-node-critical",
        "terminationGracePeriodSeconds": 30,
        "containers": [container],
        "volumes": volumes,
    }
    if params.get("image_pull_secrets"):
        spec["imagePullSecrets"] = [{"name": name} for name in params["image_pull_secrets"]]
    return spec


def placement(params: t.Dict[str, t.Any]) -> t.Dict[str, t.Any]:
    """Masters only, whichever role label they carry, despite their taints."""
    tolerations = [
        {"key": role, "operator": "Exists", "effect": "NoSchedule"} for role in CONTROL_PLANE_ROLES
    ]
    tolerations.extend(copy.deepcopy(params.get("extra_tolerations") or []))
    if params.get("node_selector"):
        return {"nodeSelector": dict(params["node_selector"]), "tolerations": tolerations}
    terms = [{"matchExpressions": [{"key": role, "operator": "Exists"}]} for role in CONTROL_PLANE_ROLES]
    return {
        "affinity": {
            "nodeAffinity": {"requiredDuringSchedulingIgnoredDuringExecution": {"nodeSelectorTerms": terms}}
        },
        "tolerations": tolerations,
    }


def daemonset(params: t.Dict[str, t.Any]) -> t.Dict[str, t.Any]:
    spec = pod_spec(params)
    spec.update(placement(params))
    return {
        "apiVersion": "apps/v1",
        "kind": "DaemonSet",
        "metadata": {"name": params["name"], "namespace": params["namespace"], "labels": labels(params)},
        "spec": {
            "selector": {"matchLabels": {APP_LABEL: params["name"]}},
            # One master at a time: the others keep serving the API servers during an update.
            "updateStrategy": {"type": "RollingUpdate", "rollingUpdate": {"maxUnavailable": 1}},
            "template": {"metadata": {"labels": labels(params)}, "spec": spec},
        },
    }


def static_pod(params: t.Dict[str, t.Any]) -> t.Dict[str, t.Any]:
    """The same pod for the kubelet's manifest directory (the kubelet runs it on its node, unscheduled)."""
    return {
        "apiVersion": "v1",
        "kind": "Pod",
        "metadata": {"name": params["name"], "namespace": params["namespace"], "labels": labels(params)},
        "spec": pod_spec(params),
    }


def redact_credentials(obj: t.Dict[str, t.Any]) -> t.Dict[str, t.Any]:
    """A copy for results and diffs without credential values in container env, also old ones read back."""
    clean = copy.deepcopy(obj)
    spec = clean.get("spec") or {}
    pod = (spec.get("template") or {}).get("spec") or spec
    for container in pod.get("containers") or []:
        for variable in container.get("env") or []:
            if variable.get("name") in REDACTED_ENV_NAMES and "value" in variable:
                variable["value"] = REDACTED
    return clean


def container_args(resource: t.Optional[t.Dict[str, t.Any]]) -> t.List[str]:
    """The command line of the plugin container of a DaemonSet or pod (the first container if none is named
    like ours, as in the Go plugin's DaemonSet); empty when there is no pod."""
    spec = (resource or {}).get("spec") or {}
    containers = (((spec.get("template") or {}).get("spec") or spec).get("containers")) or []
    ours = [c for c in containers if c.get("name") == CONTAINER_NAME] or containers[:1]
    return [str(word) for c in ours for word in (c.get("command") or []) + (c.get("args") or [])]


def flag_value(args: t.Sequence[str], flag: str) -> str:
    """The value of --flag=VALUE or --flag VALUE on a command line, '' when it is not there."""
    for position, word in enumerate(args):
        if word.startswith(flag + "="):
            return word[len(flag) + 1 :]
        if word == flag and position + 1 < len(args):
            return args[position + 1]
    return ""
