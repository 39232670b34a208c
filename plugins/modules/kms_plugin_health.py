#!/usr/bin/python
# Copyright (c) tke.kms contributors
# Apache License 2.0 (see https://www.apache.org/licenses/LICENSE-2.0)

from __future__ import annotations

DOCUMENTATION = r"""
module: kms_plugin_health
short_description: Ask the KMS plugin on a master's unix socket whether it answers
version_added: 0.1.0
description:
  - Makes the gRPC calls kube-apiserver makes to a KMS plugin, on the socket of the host the task runs on -
    the socket the apiserver will use - whatever runs the plugin (DaemonSet, static pod, systemd).
  - KMS v1 (C(v1beta1)) C(Version) must answer C(v1beta1). KMS v2 C(Status) must answer version C(v2) or
    C(v2beta1), C(healthz) V(ok) and a key id.
  - Needs nothing but Python's standard library on the master (the gRPC call is made with a minimal built-in
    HTTP/2 client), so it works on masters without grpcio or the plugin's command line.
  - The module fails when the plugin is not healthy - at once, or at the end of O(wait_timeout) with
    O(wait=true) - and reports RV(healthy) and the reason in RV(message) either way.
options:
  socket:
    description: The plugin's unix socket on the master.
    type: path
    default: /var/run/tke-kms-plugin/server.sock
  kms_api_version:
    description:
      - Which KMS API to ask. V(v1) and V(v2) check that API; V(both) checks both (the tke-kms-plugin serves
        both on one socket).
    type: str
    choices: [v1, v2, both]
    default: both
  timeout:
    description: Seconds for each call.
    type: float
    default: 5
  wait:
    description:
      - Ask again until the plugin is healthy or O(wait_timeout) has passed (a plugin that is just starting,
        or whose first KMS check is still running).
      - V(false) asks once.
    type: bool
    default: false
  wait_timeout:
    description: Seconds to wait for a healthy answer with O(wait=true).
    type: float
    default: 120
  wait_sleep:
    description: Seconds between two attempts with O(wait=true).
    type: float
    default: 2
extends_documentation_fragment:
  - tke.kms.attributes
  - tke.kms.attributes.INFO_MODULE
seealso:
  - module: tke.kms.kms_plugin
author:
  - tke.kms maintainers (@tke-kms)
"""

EXAMPLES = r"""
- name: Wait until the plugin answers on this master's socket, up to a minute
  tke.kms.kms_plugin_health:
    kms_api_version: v2
    wait: true
    wait_timeout: 60

- name: Ask once, and go on with the answer when the plugin is not healthy
  tke.kms.kms_plugin_health:
    socket: /var/run/tke-kms-plugin/server.sock
  register: plugin_health
  failed_when: false
"""

RETURN = r"""
healthy:
  description: Whether every requested API answered as kube-apiserver expects. The module fails when not.
  returned: always
  type: bool
message:
  description: What was found, for example why the plugin is not healthy (also the C(msg) of a failure).
  returned: always
  type: str
  sample: "/var/run/tke-kms-plugin/server.sock: v1beta1 Version ok (tke-kms-plugin 0.1.0); v2 Status ok"
kms_api_versions:
  description: The KMS APIs asked, in the names kube-apiserver uses (C(v1beta1) for KMS v1, C(v2)).
  returned: always
  type: list
  elements: str
  sample: [v1beta1, v2]
waited:
  description: Seconds spent waiting for a healthy answer (0 with O(wait=false)).
  returned: always
  type: float
v1:
  description: The v1beta1 C(Version) answer.
  returned: when O(kms_api_version) is V(v1) or V(both) and the plugin answered
  type: dict
  sample: {version: v1beta1, runtime_name: tke-kms-plugin, runtime_version: 0.1.0}
v2:
  description: The v2 C(Status) answer.
  returned: when O(kms_api_version) is V(v2) or V(both) and the plugin answered
  type: dict
  sample: {version: v2, healthz: ok, key_id: 1a2b3c4d-0000-4000-8000-000000000000}
"""

import typing as t

from ansible_collections.tke.kms.plugins.module_utils._grpc_probe import (
    ProbeError,
    kms_v1_version,
    kms_v2_status,
)
from ansible_collections.tke.kms.plugins.module_utils._k8s_waiter import wait_argument_spec, wait_until
from ansible_collections.tke.kms.plugins.module_utils._module import TkeKmsModule

API_NAMES = {"v1": ["v1beta1"], "v2": ["v2"], "both": ["v1beta1", "v2"]}


def v1_problem(answer: t.Dict[str, t.Any]) -> str:
    if answer["version"] != "v1beta1":
        return "v1beta1 Version answered version %r, kube-apiserver needs 'v1beta1'" % answer["version"]
    return ""


def v2_problem(answer: t.Dict[str, t.Any]) -> str:
    if answer["version"] not in ("v2", "v2beta1"):
        return "v2 Status answered version %r, kube-apiserver needs 'v2'" % answer["version"]
    if answer["healthz"] != "ok":
        return "v2 Status answered healthz %r (the plugin cannot use its KMS key)" % answer["healthz"]
    if not answer["key_id"]:
        return "v2 Status answered no key_id"
    return ""


class Check(t.NamedTuple):
    """One KMS API's call as kube-apiserver makes it, what makes its answer unusable, and how an ok reads."""

    call_name: str
    call: t.Callable[[str, float], t.Dict[str, t.Any]]
    problem: t.Callable[[t.Dict[str, t.Any]], str]
    ok: t.Callable[[t.Dict[str, t.Any]], str]


CHECKS = {
    "v1": Check(
        "v1beta1 Version",
        kms_v1_version,
        v1_problem,
        lambda answer: "v1beta1 Version ok (%s %s)" % (answer["runtime_name"], answer["runtime_version"]),
    ),
    "v2": Check(
        "v2 Status", kms_v2_status, v2_problem, lambda answer: "v2 Status ok (key %s)" % answer["key_id"]
    ),
}


def probe(socket: str, timeout: float, wanted: str) -> t.Dict[str, t.Any]:
    """One round of the calls kube-apiserver makes: the answers, `healthy` and a `message` saying why."""
    result: t.Dict[str, t.Any] = {}
    problems = []
    summary = []
    for api in ("v1", "v2") if wanted == "both" else (wanted,):
        check = CHECKS[api]
        try:
            result[api] = check.call(socket, timeout)
        except ProbeError as exc:
            problems.append("%s failed: %s" % (check.call_name, exc))
            continue
        problem = check.problem(result[api])
        if problem:
            problems.append(problem)
        else:
            summary.append(check.ok(result[api]))
    result["healthy"] = not problems
    result["message"] = "%s: %s" % (socket, "; ".join(problems or summary))
    return result


def probe_until_healthy(params: t.Dict[str, t.Any]) -> t.Dict[str, t.Any]:
    """Probe once, or with wait until healthy or the deadline: the last round's result and the time waited."""
    rounds: t.List[t.Dict[str, t.Any]] = []

    def check() -> t.Tuple[bool, str]:
        rounds.append(probe(params["socket"], params["timeout"], params["kms_api_version"]))
        return rounds[-1]["healthy"], rounds[-1]["message"]

    if params["wait"]:
        waited = wait_until(check, params["wait_timeout"], interval=params["wait_sleep"])[2]
    else:
        check()
        waited = 0.0
    return dict(rounds[-1], waited=round(waited, 1))


def main() -> None:
    module = TkeKmsModule(
        dict(
            socket=dict(type="path", default="/var/run/tke-kms-plugin/server.sock"),
            kms_api_version=dict(type="str", choices=["v1", "v2", "both"], default="both"),
            timeout=dict(type="float", default=5),
            **wait_argument_spec(timeout=120, sleep=2),
        ),
        supports_check_mode=True,
    )
    if module.params["wait_timeout"] <= 0 or module.params["wait_sleep"] <= 0:
        module.fail_json(msg="wait_timeout and wait_sleep must be positive")
    result = probe_until_healthy(module.params)
    result.update(changed=False, kms_api_versions=API_NAMES[module.params["kms_api_version"]])
    if not result["healthy"]:
        after = " after %ds" % module.params["wait_timeout"] if module.params["wait"] else ""
        module.fail_json(msg="the KMS plugin is not healthy%s: %s" % (after, result["message"]), **result)
    module.exit_json(msg=result["message"], **result)


if __name__ == "__main__":
    main()
