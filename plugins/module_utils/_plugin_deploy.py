# Copyright (c) tke.kms contributors
# Apache License 2.0 (see https://www.apache.org/licenses/LICENSE-2.0)
"""What both ways of deploying the KMS plugin share: how they wait, and the error when the wait times out.

PRIVATE to the collection. Standard library only.
"""

from __future__ import annotations

import typing as t

from ansible_collections.tke.kms.plugins.module_utils._errors import TkeKmsError
from ansible_collections.tke.kms.plugins.module_utils._k8s_waiter import wait_until

Check = t.Callable[[], t.Tuple[bool, str]]


class PluginWaitError(TkeKmsError):
    """The plugin was deployed (or removed) but did not get there before wait_timeout.

    result is the module result so far (changed, resource, rollout, ...): the change did happen.
    """

    def __init__(self, message: str, result: t.Dict[str, t.Any]) -> None:
        super().__init__(message)
        self.result = result

    def details(self) -> t.Dict[str, t.Any]:
        return dict(rollout=self.result.get("rollout", {}))


def wait_for(check: Check, timeout: float, interval: float) -> t.Dict[str, t.Any]:
    """Poll check until done or timeout: the `rollout` result (done, last message, seconds waited)."""
    done, message, waited = wait_until(check, timeout, interval=interval)
    return dict(done=done, message=message, waited=round(waited, 1))
