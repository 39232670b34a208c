"""From a pod's container spec to what to exec: command, args, environment, `$(VAR)` expansion."""

from __future__ import annotations

import base64
import re
from collections.abc import Callable
from typing import Any

from tests.lab.node_agent.container import LaunchSpec

# (kind, namespace, name) -> the object's `data` (ConfigMap) or base64 `data` (Secret), None if absent.
ObjectReader = Callable[[str, str, str], dict[str, str] | None]
VAR_REF = re.compile(r"\$\$|\$\(([A-Za-z_][A-Za-z0-9_.-]*)\)")


class UnresolvedReference(ValueError):
    """A referenced Secret, ConfigMap or key does not exist (kubelet: CreateContainerConfigError)."""


def expand(text: str, env: dict[str, str]) -> str:
    """Kubernetes `$(VAR)` expansion: known variables are substituted, `$$` escapes, unknown stay."""

    def substitute(match: re.Match[str]) -> str:
        if match.group(0) == "$$":
            return "$"
        return env.get(match.group(1), match.group(0))

    return VAR_REF.sub(substitute, text)


def image_name(image: str) -> str:
    """`registry.example.com/team/tke-kms-plugin:0.1.0` -> `tke-kms-plugin`."""
    return image.rsplit("/", 1)[-1].split("@", 1)[0].split(":", 1)[0]


def run_as(pod: dict[str, Any], container: dict[str, Any], image_users: dict[str, str]) -> str | None:
    """`uid:gid` the container runs as: securityContext (container, then pod), else the image's USER."""
    contexts = [container.get("securityContext") or {}, pod["spec"].get("securityContext") or {}]
    uid = next((c["runAsUser"] for c in contexts if c.get("runAsUser") is not None), None)
    gid = next((c["runAsGroup"] for c in contexts if c.get("runAsGroup") is not None), None)
    if uid is None:
        image_uid, _, image_gid = image_users.get(image_name(container["image"]), "").partition(":")
        if not image_uid:
            return None
        return f"{image_uid}:{gid if gid is not None else (image_gid or image_uid)}"
    # Without runAsGroup the runtime takes the user's primary group; in these images that is gid == uid.
    return f"{uid}:{gid if gid is not None else uid}"


def _field(pod: dict[str, Any], path: str, host_ip: str) -> str:
    values = {
        "metadata.name": pod["metadata"].get("name", ""),
        "metadata.namespace": pod["metadata"].get("namespace", ""),
        "metadata.uid": pod["metadata"].get("uid", ""),
        "spec.nodeName": pod["spec"].get("nodeName", ""),
        "spec.serviceAccountName": pod["spec"].get("serviceAccountName", ""),
        "status.hostIP": host_ip,
        "status.podIP": host_ip,  # every lab pod uses its node's network (hostNetwork)
    }
    if path not in values:
        raise UnresolvedReference(f"fieldRef {path} is not supported by the lab node agent")
    return values[path]


def _lookup(
    read: ObjectReader | None, kind: str, namespace: str, name: str, key: str | None
) -> dict[str, str]:
    if read is None:
        raise UnresolvedReference(f"{kind} {namespace}/{name}: static pods cannot reference API objects")
    data = read(kind, namespace, name)
    if data is None:
        raise UnresolvedReference(f"{kind} {namespace}/{name} not found")
    if kind == "secrets":
        data = {k: base64.b64decode(v).decode() for k, v in data.items()}
    if key is not None and key not in data:
        raise UnresolvedReference(f"{kind} {namespace}/{name} has no key {key!r}")
    return data


def _env_from(container: dict[str, Any], read: ObjectReader | None, namespace: str) -> dict[str, str]:
    env: dict[str, str] = {}
    for source in container.get("envFrom", []):
        prefix = source.get("prefix", "")
        for kind, ref in (("configmaps", source.get("configMapRef")), ("secrets", source.get("secretRef"))):
            if ref is None:
                continue
            try:
                data = _lookup(read, kind, namespace, ref["name"], None)
            except UnresolvedReference:
                if ref.get("optional"):
                    continue
                raise
            env.update({prefix + k: v for k, v in data.items()})
    return env


def environment(
    pod: dict[str, Any], container: dict[str, Any], read: ObjectReader | None, host_ip: str
) -> dict[str, str]:
    namespace = pod["metadata"].get("namespace", "default")
    env = _env_from(container, read, namespace)
    for var in container.get("env", []):
        if "valueFrom" not in var:
            env[var["name"]] = expand(str(var.get("value", "")), env)
            continue
        value_from = var["valueFrom"]
        if "fieldRef" in value_from:
            env[var["name"]] = _field(pod, value_from["fieldRef"]["fieldPath"], host_ip)
            continue
        for kind, ref_key in (("configmaps", "configMapKeyRef"), ("secrets", "secretKeyRef")):
            if ref_key in value_from:
                ref = value_from[ref_key]
                try:
                    env[var["name"]] = _lookup(read, kind, namespace, ref["name"], ref["key"])[ref["key"]]
                except UnresolvedReference:
                    if not ref.get("optional"):
                        raise
                break
        else:
            raise UnresolvedReference(f"env {var['name']}: unsupported valueFrom {sorted(value_from)}")
    return env


def launch_spec(
    pod: dict[str, Any],
    container: dict[str, Any],
    *,
    entrypoints: dict[str, list[str]],
    read: ObjectReader | None,
    host_ip: str = "127.0.0.1",
    image_users: dict[str, str] | None = None,
) -> LaunchSpec:
    try:
        env = environment(pod, container, read, host_ip)
    except UnresolvedReference as exc:
        return LaunchSpec(error=str(exc))
    except Exception as exc:  # the API is down: retried at the next start, like kubelet
        return LaunchSpec(error=f"cannot read referenced objects: {exc}")
    command = container.get("command")
    args = container.get("args", [])
    if not command:
        command = entrypoints.get(image_name(container["image"]))
        if command is None:
            return LaunchSpec(error=f"image {container['image']!r} has no known entrypoint; set command")
    argv = [expand(part, env) for part in [*command, *args]]
    user = run_as(pod, container, image_users or {})
    return LaunchSpec(argv=argv, env=env, working_dir=container.get("workingDir"), user=user)
