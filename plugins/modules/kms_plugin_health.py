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
  - An unhealthy plugin is a result (RV(healthy=false) with RV(message)), not a failure, so that a task can
    wait for it with C(until).
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
extends_documentation_fragment:
  - tke.kms.attributes
  - tke.kms.attributes.INFO_MODULE
seealso:
  - module: tke.kms.kms_plugin
author:
  - tke.kms maintainers (@tke-kms)
"""

EXAMPLES = r"""
- name: Wait until the plugin answers on this master's socket
  tke.kms.kms_plugin_health:
    kms_api_version: v2
  register: plugin_health
  until: plugin_health.healthy
  retries: 30
  delay: 2
"""

RETURN = r"""
healthy:
  description: Whether every requested API answered as kube-apiserver expects.
  returned: always
  type: bool
message:
  description: What was found, for example why the plugin is not healthy.
  returned: always
  type: str
  sample: "/var/run/tke-kms-plugin/server.sock: v1beta1 Version ok (tke-kms-plugin 0.1.0); v2 Status ok"
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

from ansible.module_utils.basic import AnsibleModule
from ansible_collections.tke.kms.plugins.module_utils._grpc_probe import (
    ProbeError,
    kms_v1_version,
    kms_v2_status,
)


def check_v1(socket: str, timeout: float, result: t.Dict[str, t.Any]) -> str:
    try:
        answer = kms_v1_version(socket, timeout)
    except ProbeError as exc:
        return "v1beta1 Version failed: %s" % exc
    result["v1"] = answer
    if answer["version"] != "v1beta1":
        return "v1beta1 Version answered version %r, kube-apiserver needs 'v1beta1'" % answer["version"]
    return ""


def check_v2(socket: str, timeout: float, result: t.Dict[str, t.Any]) -> str:
    try:
        answer = kms_v2_status(socket, timeout)
    except ProbeError as exc:
        return "v2 Status failed: %s" % exc
    result["v2"] = answer
    if answer["version"] not in ("v2", "v2beta1"):
        return "v2 Status answered version %r, kube-apiserver needs 'v2'" % answer["version"]
    if answer["healthz"] != "ok":
        return "v2 Status answered healthz %r (the plugin cannot use its KMS key)" % answer["healthz"]
    if not answer["key_id"]:
        return "v2 Status answered no key_id"
    return ""


def main() -> None:
    module = AnsibleModule(
        argument_spec=dict(
            socket=dict(type="path", default="/var/run/tke-kms-plugin/server.sock"),
            kms_api_version=dict(type="str", choices=["v1", "v2", "both"], default="both"),
            timeout=dict(type="float", default=5),
        ),
        supports_check_mode=True,
    )
    socket, timeout = module.params["socket"], module.params["timeout"]
    wanted = module.params["kms_api_version"]
    result: t.Dict[str, t.Any] = dict(changed=False)
    problems = []
    summary = []
    if wanted in ("v1", "both"):
        problem = check_v1(socket, timeout, result)
        problems.append(problem)
        if not problem:
            summary.append(
                "v1beta1 Version ok (%s %s)" % (result["v1"]["runtime_name"], result["v1"]["runtime_version"])
            )
    if wanted in ("v2", "both"):
        problem = check_v2(socket, timeout, result)
        problems.append(problem)
        if not problem:
            summary.append("v2 Status ok (key %s)" % result["v2"]["key_id"])
    problems = [p for p in problems if p]
    result["healthy"] = not problems
    result["message"] = "%s: %s" % (socket, "; ".join(problems or summary))
    # msg as well: when a retried task gives up, Ansible shows the last result's msg
    module.exit_json(msg=result["message"], **result)


if __name__ == "__main__":
    main()
