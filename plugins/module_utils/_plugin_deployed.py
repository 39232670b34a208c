# Copyright (c) tke.kms contributors
# Apache License 2.0 (see https://www.apache.org/licenses/LICENSE-2.0)
"""What KMS plugin is deployed already, read without changing anything: DaemonSet, static pod or systemd unit.

PRIVATE to the collection.
"""

from __future__ import annotations

import shlex
import typing as t

from ansible_collections.tke.kms.plugins.module_utils._errors import TkeKmsError
from ansible_collections.tke.kms.plugins.module_utils._files import read_text
from ansible_collections.tke.kms.plugins.module_utils._k8s import KubeResources, strip_volatile
from ansible_collections.tke.kms.plugins.module_utils._plugin_pod import (
    container_args,
    flag_value,
    redact_credentials,
)
from ansible_collections.tke.kms.plugins.module_utils._plugin_static_pod import read_manifest


class UnreadableDeployment(TkeKmsError):
    """A plugin file exists but cannot be understood, so what it runs is unknown."""


def deployment_facts(exists: bool, resource: t.Dict[str, t.Any], args: t.List[str]) -> t.Dict[str, t.Any]:
    """The info result: whether a plugin is there, its command line, and the KMS key and socket it uses."""
    return dict(
        exists=exists,
        resource=resource,
        args=args,
        key_id=flag_value(args, "--key-id"),
        unix_socket=flag_value(args, "--unix-socket"),
    )


def deployed_daemonset(params: t.Dict[str, t.Any]) -> t.Dict[str, t.Any]:
    found = KubeResources(params).get_daemonset(params["namespace"], params["name"])
    resource = redact_credentials(strip_volatile(found)) if found else {}
    return deployment_facts(found is not None, resource, container_args(found))


def deployed_static_pod(path: str) -> t.Dict[str, t.Any]:
    text, manifest = read_manifest(path)
    if text is not None and not isinstance(manifest, dict):
        raise UnreadableDeployment("static pod manifest %s is not a YAML or JSON mapping" % path)
    resource = redact_credentials(manifest) if manifest else {}
    return dict(deployment_facts(text is not None, resource, container_args(manifest)), path=path)


def deployed_unit(path: str) -> t.Dict[str, t.Any]:
    """The plugin's systemd unit: its command line is the last ExecStart= (systemd resets on an empty one)."""
    text = read_text(path)
    command: t.List[str] = []
    for line in (text or "").splitlines():
        key, sep, value = line.strip().partition("=")
        if sep and key.strip() == "ExecStart":
            try:
                command = shlex.split(value)
            except ValueError as exc:
                raise UnreadableDeployment("unit %s: ExecStart cannot be parsed: %s" % (path, exc)) from exc
    return dict(deployment_facts(text is not None, {}, command[1:]), path=path)
