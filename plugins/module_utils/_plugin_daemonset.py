# Copyright (c) tke.kms contributors
# Apache License 2.0 (see https://www.apache.org/licenses/LICENSE-2.0)
"""The KMS plugin as a DaemonSet: server-side apply through the Kubernetes API, and the wait for its rollout.

PRIVATE to the collection.
"""

from __future__ import annotations

import typing as t

from ansible_collections.tke.kms.plugins.module_utils._k8s import KubeResources, strip_volatile
from ansible_collections.tke.kms.plugins.module_utils._k8s_waiter import daemonset_rollout, pod_problems
from ansible_collections.tke.kms.plugins.module_utils._plugin_deploy import PluginWaitError, wait_for
from ansible_collections.tke.kms.plugins.module_utils._plugin_pod import (
    APP_LABEL,
    daemonset,
    redact_credentials,
)

DEFAULT_WAIT_SLEEP = 2


class DaemonSetDeployment:
    """Apply (or delete) the plugin DaemonSet described by the kms_plugin options."""

    def __init__(self, params: t.Dict[str, t.Any], check_mode: bool, diff: bool) -> None:
        self.params = params
        self.check_mode = check_mode
        self.diff = diff
        self.api = KubeResources(params)
        self.namespace, self.name = params["namespace"], params["name"]

    def run(self) -> t.Dict[str, t.Any]:
        existing = self.api.get_daemonset(self.namespace, self.name)
        if self.params["state"] == "absent":
            result: t.Dict[str, t.Any] = dict(changed=existing is not None, resource={})
            if existing is not None and not self.check_mode:
                self.api.delete_daemonset(self.namespace, self.name)
            after: t.Dict[str, t.Any] = {}
        else:
            desired = daemonset(self.params)
            preview = self.api.apply_daemonset(desired, dry_run=True)
            changed = existing is None or strip_volatile(existing) != strip_volatile(preview)
            applied = self.api.apply_daemonset(desired) if changed and not self.check_mode else preview
            result = dict(changed=changed, resource=redact_credentials(applied))
            after = applied
        if self.diff:
            result["diff"] = dict(
                before=redact_credentials(strip_volatile(existing)),
                after=redact_credentials(strip_volatile(after)),
            )
        if self.params["wait"] and not self.check_mode:
            check = self.rollout_done if self.params["state"] == "present" else self.removal_done
            result["rollout"] = self.wait(check)
        return result

    def rollout_done(self) -> t.Tuple[bool, str]:
        return daemonset_rollout(self.api.get_daemonset(self.namespace, self.name))

    def removal_done(self) -> t.Tuple[bool, str]:
        if self.api.get_daemonset(self.namespace, self.name) is not None:
            return False, "the DaemonSet still exists"
        pods = self.plugin_pods()
        if pods:
            return False, "%d plugin pods still exist" % len(pods)
        return True, "the DaemonSet and its pods are gone"

    def plugin_pods(self) -> t.List[t.Dict[str, t.Any]]:
        return self.api.list_pods(self.namespace, "%s=%s" % (APP_LABEL, self.name))

    def wait(self, check: t.Callable[[], t.Tuple[bool, str]]) -> t.Dict[str, t.Any]:
        timeout = self.params["wait_timeout"]
        rollout = wait_for(check, timeout, self.params.get("wait_sleep") or DEFAULT_WAIT_SLEEP)
        if rollout["done"]:
            return rollout
        problems = pod_problems(self.plugin_pods())
        raise PluginWaitError(
            "DaemonSet %s/%s: not done after %ds: %s%s"
            % (
                self.namespace,
                self.name,
                timeout,
                rollout["message"],
                "; " + "; ".join(problems) if problems else "",
            ),
            dict(rollout=dict(rollout, pods=problems), changed=True),
        )
