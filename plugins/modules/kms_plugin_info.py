#!/usr/bin/python
# Copyright (c) tke.kms contributors
# Apache License 2.0 (see https://www.apache.org/licenses/LICENSE-2.0)

from __future__ import annotations

DOCUMENTATION = r"""
module: kms_plugin_info
short_description: Tell which tke-kms-plugin is deployed, and with which KMS key
version_added: 0.2.0
description:
  - Reads, without changing anything, the plugin instance O(name) as O(deploy_as) runs it - the DaemonSet
    through the Kubernetes API, the static pod manifest or the systemd unit on the host the task runs on - and
    returns whether it exists, its command line and the KMS key id and socket on it.
  - A plugin instance is tied to its key (what its provider wrote can only be read with that key), so this is
    what to compare with the key a run resolved before a plugin is updated.
options:
  deploy_as:
    description:
      - How the plugin runs. V(daemonset) reads the DaemonSet (connection options below); V(static_pod) reads
        O(static_pod_path) and V(systemd) reads O(unit_path) on the host the task runs on.
    type: str
    choices: [daemonset, static_pod, systemd]
    default: daemonset
  name:
    description: Name of the DaemonSet (as module M(tke.kms.kms_plugin) names it).
    type: str
    default: tke-kms-plugin
  namespace:
    description: Namespace of the DaemonSet.
    type: str
    default: kube-system
  static_pod_path:
    description: File of the static pod manifest, for O(deploy_as=static_pod).
    type: path
    default: /etc/kubernetes/manifests/tke-kms-plugin.yaml
  unit_path:
    description: File of the systemd unit, for O(deploy_as=systemd).
    type: path
    default: /etc/systemd/system/tke-kms-plugin.service
extends_documentation_fragment:
  - tke.kms.k8s_auth
  - tke.kms.attributes
  - tke.kms.attributes.INFO_MODULE
  - tke.kms.attributes.K8S_GROUP
notes:
  - The connection options are used with O(deploy_as=daemonset) only.
seealso:
  - module: tke.kms.kms_plugin
  - module: tke.kms.kms_plugin_health
author:
  - tke.kms maintainers (@tke-kms)
"""

EXAMPLES = r"""
- name: Learn which key the deployed plugin DaemonSet uses
  tke.kms.kms_plugin_info:
    kubeconfig: /etc/kubernetes/admin.conf
  delegate_to: localhost
  run_once: true
  register: deployed_plugin

- name: Refuse to switch the plugin to another key
  ansible.builtin.assert:
    that: not deployed_plugin.exists or deployed_plugin.key_id == kms.key.KeyId

- name: Read the static pod of the plugin on this master
  tke.kms.kms_plugin_info:
    deploy_as: static_pod
    static_pod_path: /etc/kubernetes/manifests/tke-kms-plugin.yaml
"""

RETURN = r"""
exists:
  description: Whether the DaemonSet, the static pod manifest or the unit exists.
  returned: always
  type: bool
key_id:
  description: The KMS key id on the plugin's command line (C(--key-id)); empty when there is no plugin.
  returned: always
  type: str
  sample: 1a2b3c4d-0000-4000-8000-000000000000
unix_socket:
  description: The socket on the plugin's command line (C(--unix-socket)); empty when not given there.
  returned: always
  type: str
  sample: /var/run/tke-kms-plugin/server.sock
args:
  description: The plugin's command line (the container's command and args; the unit's ExecStart without the
    executable).
  returned: always
  type: list
  elements: str
resource:
  description:
    - The DaemonSet as the API server stores it, or the static pod manifest; credential values in C(env) are
      replaced by C(VALUE_REDACTED).
    - Empty when there is none, and with O(deploy_as=systemd).
  returned: always
  type: dict
path:
  description: The file read.
  returned: when O(deploy_as) is V(static_pod) or V(systemd)
  type: str
  sample: /etc/kubernetes/manifests/tke-kms-plugin.yaml
"""

import typing as t

from ansible_collections.tke.kms.plugins.module_utils._errors import TkeKmsError
from ansible_collections.tke.kms.plugins.module_utils._k8s import (
    KUBERNETES_CLIENT,
    k8s_auth_argument_spec,
    narrow_kubeconfig_masking,
)
from ansible_collections.tke.kms.plugins.module_utils._module import TkeKmsModule, merge_argument_specs
from ansible_collections.tke.kms.plugins.module_utils._plugin_deployed import (
    deployed_daemonset,
    deployed_static_pod,
    deployed_unit,
)


def argument_spec() -> t.Dict[str, t.Any]:
    return merge_argument_specs(
        k8s_auth_argument_spec(),
        dict(
            deploy_as=dict(type="str", choices=["daemonset", "static_pod", "systemd"], default="daemonset"),
            name=dict(type="str", default="tke-kms-plugin"),
            namespace=dict(type="str", default="kube-system"),
            static_pod_path=dict(type="path", default="/etc/kubernetes/manifests/tke-kms-plugin.yaml"),
            unit_path=dict(type="path", default="/etc/systemd/system/tke-kms-plugin.service"),
        ),
    )


def read_deployed(module: TkeKmsModule) -> t.Dict[str, t.Any]:
    params = module.params
    if params["deploy_as"] == "static_pod":
        return deployed_static_pod(params["static_pod_path"])
    if params["deploy_as"] == "systemd":
        return deployed_unit(params["unit_path"])
    module.require(KUBERNETES_CLIENT)
    return deployed_daemonset(params)


def main() -> None:
    module = TkeKmsModule(argument_spec(), supports_check_mode=True)
    narrow_kubeconfig_masking(module)
    try:
        module.exit_json(changed=False, **read_deployed(module))
    except (TkeKmsError, OSError) as exc:
        module.fail_from_exception(exc)


if __name__ == "__main__":
    main()
