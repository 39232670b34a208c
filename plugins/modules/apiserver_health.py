#!/usr/bin/python
# Copyright (c) tke.kms contributors
# Apache License 2.0 (see https://www.apache.org/licenses/LICENSE-2.0)

from __future__ import annotations

DOCUMENTATION = r"""
module: apiserver_health
short_description: Check that the kube-apiserver on this master runs, is ready, and reaches its KMS plugin
version_added: 0.1.0
description:
  - Asks the kube-apiserver of the master the task runs on for C(/readyz?verbose) (C(/healthz?verbose) before
    Kubernetes 1.16) and, once it is ready, for its process start time (metric C(process_start_time_seconds)),
    which tells whether it was restarted after a manifest change (O(previous_started_at), O(started_after)).
  - KMS health checks (C(kms-provider-N), C(kms-providers)) must be listed and passing when O(require_kms) is
    on.
  - Fails when the apiserver is not healthy, saying why (RV(message)); RV(healthy) and the other values are
    in the result either way. With O(wait), it probes every O(wait_sleep) seconds until the apiserver is
    healthy or O(wait_timeout) seconds have passed; without, it probes once.
options:
  wait:
    description:
      - Wait for the apiserver to become healthy, up to O(wait_timeout) seconds.
      - V(false) probes once (and fails at once when the apiserver is not healthy).
    type: bool
    default: false
  wait_timeout:
    description: Seconds to wait at most, with O(wait).
    type: float
    default: 120
  wait_sleep:
    description: Seconds between two probes, with O(wait).
    type: float
    default: 5
  previous_started_at:
    description:
      - The RV(started_at) this module returned before the change. RV(healthy) also needs the apiserver to run
        as another process, started later.
      - Preferred over O(started_after) - the start time the apiserver reports counts from the boot time in
        whole seconds, so it can read up to a second earlier than the real start; compared with the value it
        reported before, a restart within a second of the change is still recognised.
    type: float
  started_after:
    description:
      - Seconds since the epoch, on the master's clock (M(tke.kms.apiserver_manifest) returns it as
        C(written_at)). RV(healthy) also needs the apiserver process to have started after it (as the
        apiserver reports its start, see O(previous_started_at)). Ignored when O(previous_started_at) is set.
    type: float
  kubernetes_version:
    description: The apiserver version, if the manifest's image tag does not tell it.
    type: str
  require_kms:
    description:
      - Require a passing KMS health check.
      - The default follows the configuration the apiserver runs with - V(true) from Kubernetes 1.16 (where
        the checks appeared) when the encryption configuration the manifest names has a C(kms) provider, so
        an apiserver whose configuration has only C(aescbc), C(aesgcm), C(secretbox) or C(identity)
        providers (or no configuration) is healthy without one.
      - A configuration that cannot be read fails the module (a YAML error by file, line and column only).
    type: bool
extends_documentation_fragment:
  - tke.kms.master_api
  - tke.kms.attributes
  - tke.kms.attributes.INFO_MODULE
seealso:
  - module: tke.kms.apiserver_manifest
author:
  - tke.kms maintainers (@tke-kms)
"""

EXAMPLES = r"""
- name: Check the apiserver before the change
  tke.kms.apiserver_health:
  register: before

- name: Wait for the apiserver on this master to come back with the new manifest
  tke.kms.apiserver_health:
    previous_started_at: "{{ before.started_at }}"
    wait: true
    wait_timeout: 300
  register: apiserver

- name: Record whether a master is healthy without failing the play
  tke.kms.apiserver_health:
  register: probe
  failed_when: false

- name: Ask another apiserver, with the credentials of a kubeconfig on the master
  tke.kms.apiserver_health:
    host: https://10.0.0.12:6443
    kubeconfig: /etc/kubernetes/admin.conf
"""

RETURN = r"""
healthy:
  description: Ready, KMS checks passing (if required), and a new process (if O(previous_started_at) or
    O(started_after) is set).
  returned: always
  type: bool
ready:
  description: Whether the readiness endpoint answered 200.
  returned: always
  type: bool
checks:
  description: Every check of the verbose readiness answer, name to V(true) when it passes.
  returned: when the apiserver answered
  type: dict
  sample: {etcd: true, kms-provider-0: true, "poststarthook/start-apiextensions-informers": true}
kms_checks:
  description: The KMS checks among RV(checks).
  returned: when the apiserver answered
  type: dict
started_at:
  description: Start time of the apiserver process (seconds since the epoch), as its /metrics reports it.
  returned: when the apiserver is ready and its /metrics answers
  type: float
waited:
  description: Seconds spent waiting (with O(wait)).
  returned: always
  type: float
restarted:
  description: Whether RV(started_at) is after O(previous_started_at), else after O(started_after).
  returned: when O(previous_started_at) or O(started_after) is set and the apiserver is ready
  type: bool
message:
  description: One line saying what was found (also the failure's C(msg)).
  returned: always
  type: str
  sample: "https://10.0.0.11:6443: ready, kms-provider-0 ok, started 21s after the change"
"""


import typing as t

from ansible_collections.tke.kms.plugins.module_utils import _encryption_config as ec
from ansible_collections.tke.kms.plugins.module_utils._https import Endpoint, HttpsError
from ansible_collections.tke.kms.plugins.module_utils._k8s_waiter import wait_argument_spec, wait_until
from ansible_collections.tke.kms.plugins.module_utils._manifest import ManifestError
from ansible_collections.tke.kms.plugins.module_utils._master_api import (
    master_endpoint,
    master_module,
    read_manifest,
)
from ansible_collections.tke.kms.plugins.module_utils._readiness import kms_health_check, probe


def probe_until_healthy(
    endpoint: Endpoint, path: str, require_kms: bool, params: t.Dict[str, t.Any]
) -> t.Dict[str, t.Any]:
    """The last probe's result, with `waited`: one probe, or (wait) probes until healthy or the deadline."""
    last: t.Dict[str, t.Any] = {}

    def check() -> t.Tuple[bool, str]:
        last.clear()
        last.update(
            probe(
                endpoint,
                path,
                require_kms,
                started_after=params["started_after"],
                previous_started_at=params["previous_started_at"],
                report_start=True,
            )
        )
        return last["healthy"], last["message"]

    timeout = params["wait_timeout"] if params["wait"] else 0
    healthy, _message, waited = wait_until(check, timeout, params["wait_sleep"])
    last["waited"] = round(waited, 1)
    if params["wait"] and not healthy:
        last["message"] += "; not healthy within %gs" % params["wait_timeout"]
    return last


def main() -> None:
    module = master_module(
        dict(
            previous_started_at=dict(type="float"),
            started_after=dict(type="float"),
            require_kms=dict(type="bool"),
            kubernetes_version=dict(type="str"),
            **wait_argument_spec(timeout=120, sleep=5),
        ),
    )
    params = module.params
    try:
        manifest = read_manifest(params["manifest_path"])
        version = manifest.version(params["kubernetes_version"])
        endpoint = master_endpoint(params, manifest)
        require_kms = params["require_kms"]
        if require_kms is None:
            require_kms = kms_health_check(manifest, version)
    except (ManifestError, HttpsError, ec.ConfigError, OSError) as exc:
        module.fail_from_exception(exc)
    with endpoint:
        result = probe_until_healthy(
            endpoint, "/readyz" if version >= (1, 16) else "/healthz", require_kms, params
        )
    if not result["healthy"]:
        module.fail_json(msg=result["message"], changed=False, **result)
    module.exit_json(changed=False, msg=result["message"], **result)


if __name__ == "__main__":
    main()
