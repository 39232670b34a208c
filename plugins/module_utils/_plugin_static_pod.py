# Copyright (c) tke.kms contributors
# Apache License 2.0 (see https://www.apache.org/licenses/LICENSE-2.0)
"""The KMS plugin as a static pod: the manifest file the kubelet runs, and the wait for the plugin's socket.

PRIVATE to the collection. Standard library, PyYAML when present (the manifest is JSON without it, which the
kubelet reads as well).
"""

from __future__ import annotations

import json
import os
import typing as t

from ansible_collections.tke.kms.plugins.module_utils._files import atomic_write
from ansible_collections.tke.kms.plugins.module_utils._plugin_deploy import PluginWaitError, wait_for
from ansible_collections.tke.kms.plugins.module_utils._plugin_pod import redact_credentials, static_pod
from ansible_collections.tke.kms.plugins.module_utils._unix_socket import socket_accepts, socket_identity

try:
    import yaml
except ImportError:
    yaml = None
    PARSE_ERRORS: t.Tuple[t.Type[Exception], ...] = (ValueError,)
else:
    PARSE_ERRORS = (ValueError, yaml.YAMLError)

MANIFEST_HEADER = "# Managed by tke.kms.kms_plugin: changes made here are overwritten.\n"
DEFAULT_WAIT_SLEEP = 1


def read_manifest(path: str) -> t.Tuple[t.Optional[str], t.Any]:
    """(text, parsed) of the manifest at path: (None, None) if missing, (text, None) if it does not parse."""
    try:
        with open(path, encoding="utf-8") as handle:
            text = handle.read()
    except FileNotFoundError:
        return None, None
    try:
        return text, (yaml.safe_load(text) if yaml else json.loads(text))
    except PARSE_ERRORS:  # an unreadable manifest is simply replaced
        return text, None


def render_manifest(manifest: t.Dict[str, t.Any]) -> str:
    if yaml:
        return MANIFEST_HEADER + yaml.safe_dump(manifest, default_flow_style=False, sort_keys=False)
    return json.dumps(manifest, indent=2) + "\n"


class StaticPodDeployment:
    """Write (or remove) the plugin's static pod manifest on this host."""

    def __init__(self, params: t.Dict[str, t.Any], check_mode: bool, diff: bool) -> None:
        self.params = params
        self.check_mode = check_mode
        self.diff = diff
        self.path = params["static_pod_path"]
        self.socket = params["unix_socket"]

    def run(self) -> t.Dict[str, t.Any]:
        current_text, current = read_manifest(self.path)
        socket_before = socket_identity(self.socket)
        if self.params["state"] == "absent":
            changed = current_text is not None
            new_text = ""
            resource: t.Dict[str, t.Any] = {}
            if changed and not self.check_mode:
                os.unlink(self.path)
        else:
            manifest = static_pod(self.params)
            new_text = render_manifest(manifest)
            changed = current != manifest
            if changed and not self.check_mode:
                self.write(new_text)
            resource = redact_credentials(manifest)
        result: t.Dict[str, t.Any] = dict(changed=changed, resource=resource, manifest_path=self.path)
        if self.diff:
            result["diff"] = dict(
                before=self.redact_text(current_text or ""),
                after=self.redact_text(new_text),
                before_header=self.path,
                after_header=self.path,
            )
        if self.params["wait"] and not self.check_mode:
            self.wait(result, socket_before if changed else None)
        return result

    def write(self, text: str) -> None:
        """Root-only, replaced through a dot file: the kubelet ignores dot files in its manifest directory."""
        os.makedirs(os.path.dirname(self.path), mode=0o700, exist_ok=True)
        atomic_write(self.path, text, 0o600)

    def wait(self, result: t.Dict[str, t.Any], old_socket: t.Optional[t.Tuple[int, int]]) -> None:
        check = self.stopped if self.params["state"] == "absent" else self.serving(old_socket)
        timeout = self.params["wait_timeout"]
        result["rollout"] = wait_for(check, timeout, self.params.get("wait_sleep") or DEFAULT_WAIT_SLEEP)
        if not result["rollout"]["done"]:
            raise PluginWaitError(
                "static pod %s: %s after %ds" % (self.path, result["rollout"]["message"], timeout), result
            )

    def redact_text(self, text: str) -> str:
        """Diff text without env credentials, also old ones (not among this run's no_log values)."""
        if not text or (self.params["credentials_source"] != "env" and "SECRET_KEY" not in text):
            return text
        try:
            parsed = yaml.safe_load(text) if yaml else json.loads(text)
            return render_manifest(redact_credentials(parsed))
        except (*PARSE_ERRORS, AttributeError):
            return "(content hidden: it may hold credentials)"

    def serving(self, old_socket: t.Optional[t.Tuple[int, int]]) -> t.Callable[[], t.Tuple[bool, str]]:
        """A plugin accepts connections on the socket; after a change, a new one (new socket file)."""
        path = self.socket

        def check() -> t.Tuple[bool, str]:
            identity = socket_identity(path)
            if identity is None:
                return False, "no plugin socket at %s yet" % path
            if old_socket is not None and identity == old_socket:
                return False, "the previous plugin still owns %s; the kubelet has not restarted it yet" % path
            if not socket_accepts(path):
                return False, "%s does not accept connections" % path
            return True, "the plugin accepts connections on %s" % path

        return check

    def stopped(self) -> t.Tuple[bool, str]:
        if socket_identity(self.socket) is not None and socket_accepts(self.socket):
            return False, "a plugin still accepts connections on %s" % self.socket
        return True, "no plugin serves %s any more" % self.socket
