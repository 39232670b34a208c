#!/usr/bin/python
# Copyright (c) tke.kms contributors
# Apache License 2.0 (see https://www.apache.org/licenses/LICENSE-2.0)

from __future__ import annotations

DOCUMENTATION = r"""
module: kms_plugin
short_description: Deploy the tke-kms-plugin on the Kubernetes masters
version_added: 0.1.0
description:
  - Deploys the C(tke-kms-plugin), the Kubernetes KMS plugin (v1beta1 and v2) backed by Tencent Cloud KMS,
    next to
    every kube-apiserver, either as a DaemonSet (O(deploy_as=daemonset), applied with server-side apply) or as
    a
    static pod manifest written on the master the task runs on (O(deploy_as=static_pod)). Both run the same
    pod.
  - The pod runs on the masters whichever role label they carry (C(node-role.kubernetes.io/control-plane) or
    C(node-role.kubernetes.io/master)), tolerates both master taints, uses the host network, priority class
    C(system-node-critical), a read-only root file system without capabilities, and serves on a unix socket in
    a
    host directory the kube-apiserver pod mounts.
  - Liveness runs the plugin's local C(health-check) (no KMS call); readiness asks the plugin's C(/readyz),
    which
    knows whether Tencent Cloud KMS answers.
options:
  state:
    description:
      - V(present) deploys or updates the plugin, V(absent) removes it.
      - Remove the plugin only once no API server is configured to use it, or the API servers cannot read
        Secrets.
    type: str
    choices: [present, absent]
    default: present
  deploy_as:
    description:
      - V(daemonset) applies a DaemonSet through the Kubernetes API (connection options below).
      - V(static_pod) writes the pod to O(static_pod_path) on the host the task runs on, for the kubelet to
        run. It
        needs no API server, so the plugin also starts when the API server cannot (a cold start of a cluster
        whose
        Secrets are encrypted). Run it on every master.
    type: str
    choices: [daemonset, static_pod]
    default: daemonset
  name:
    description: Name of the DaemonSet or static pod, and value of its C(app.kubernetes.io/name) label.
    type: str
    default: tke-kms-plugin
  namespace:
    description: Namespace of the DaemonSet or static pod.
    type: str
    default: kube-system
  image:
    description: Container image of the plugin. Required with O(state=present).
    type: str
  image_pull_policy:
    description:
      - When the kubelet pulls the image (C(imagePullPolicy) of the container), in both modes.
      - V(IfNotPresent) or V(Never) with an image pulled onto the masters beforehand lets the plugin start
        after a reboot without reaching the registry; V(Always) makes every restart of the plugin depend on
        the registry.
    type: str
    choices: [Always, IfNotPresent, Never]
    default: IfNotPresent
  image_pull_secrets:
    description:
      - Names of Secrets in O(namespace) the kubelet pulls the image with (C(imagePullSecrets) of the pod),
        for a private registry such as Tencent Container Registry. O(deploy_as=daemonset) only.
      - Refused with O(deploy_as=static_pod) - the kubelet cannot read Secrets from the API for a static pod
        (and its mirror pod may not reference them).
      - A pull Secret is itself a Secret - once Secrets are encrypted with this plugin, the kubelet cannot
        read it while no plugin answers (a cold start after the control plane restarted), so a plugin pod
        that still has to pull its image cannot start. Give the masters' container runtime the registry
        credentials (or pull the image onto the masters beforehand) so the plugin never depends on it.
    type: list
    elements: str
  plugin_binary:
    description: Path of the plugin executable in the image (command of the container and of the probes).
    type: str
    default: /tke-kms-plugin
  region:
    description: Tencent Cloud region of the KMS key (C(--region)). Required with O(state=present).
    type: str
  key_id:
    description: KeyId of the Tencent Cloud KMS key that encrypts the data keys (C(--key-id)). Required with
      O(state=present).
    type: str
  unix_socket:
    description:
      - Path of the plugin's unix socket on the master (C(--unix-socket)). Its directory is mounted from the
        host;
        the encryption configuration's C(endpoint) is C(unix://) followed by this path.
    type: path
    default: /var/run/tke-kms-plugin/server.sock
  credentials_source:
    description:
      - Where the plugin gets its Tencent Cloud credentials.
      - V(file) (default) mounts the directory of O(credentials_file) from the host, read-only. The file is
        INI with a
        C([default]) section holding C(secret_id), C(secret_key) and optionally C(token); it must be owned by
        root
        with mode C(0600). The plugin re-reads it when it changes.
      - V(cvm_role) uses the temporary credentials of the CAM role O(cvm_role) of the CVM instance (no secret
        on the
        master at all).
      - V(env) puts O(env_secret_id) and O(env_secret_key) into the pod spec as C(SECRET_ID) and
        C(SECRET_KEY), as
        the Go plugin's DaemonSet did. Anyone who can read the DaemonSet or pods in O(namespace) can read
        them; the
        module warns.
      - There is deliberately no Kubernetes Secret source. Once encryption at rest is on, the API server needs
        the
        plugin to decrypt Secrets, so a plugin that needs a Secret to start cannot start after a restart of
        the
        control plane.
    type: str
    choices: [file, cvm_role, env]
    default: file
  credentials_file:
    description: Path of the credentials file on the masters, for O(credentials_source=file).
    type: path
    default: /etc/tke-kms-plugin/credentials
  cvm_role:
    description: Name of the CAM role of the CVM instances, required for O(credentials_source=cvm_role).
    type: str
  env_secret_id:
    description: SecretId for O(credentials_source=env).
    type: str
  env_secret_key:
    description: SecretKey for O(credentials_source=env). Masked in the module's output and diffs.
    type: str
  endpoint:
    description:
      - KMS endpoint the plugin calls (C(--kms-endpoint)), for example a VPC endpoint
        C(kms.internal.tencentcloudapi.com), or V(http://HOST:PORT) for an emulator. Not set - the public
        C(kms.tencentcloudapi.com).
      - If not set, the environment variable E(TENCENTCLOUD_KMS_ENDPOINT) of the host the module runs on is
        used (the controller with O(deploy_as=daemonset) delegated to it). Give an empty string to keep the
        public endpoint whatever the environment says.
      - It is the masters' endpoint; the masters may reach KMS another way than the controller (the
        C(endpoint) option of module C(tke.kms.kms_key)).
      - The alias O(kms_endpoint) is deprecated and will be removed in version 1.0.0 of tke.kms.
    type: str
    aliases: [kms_endpoint]
  metrics_address:
    description:
      - C(HOST:PORT) where the plugin serves C(/livez), C(/readyz) and C(/metrics) (C(--metrics-address));
        keep it on
        loopback, the pod uses the host network. Readiness uses C(/readyz) there.
      - An empty string disables it; readiness then runs C(health-check) too.
    type: str
    default: 127.0.0.1:9876
  qps:
    description: Client-side limit of Tencent Cloud calls per second per API (C(--qps)); the plugin's default
      if not set.
    type: float
  decrypt_cache_size:
    description: Number of decrypted data keys the plugin caches (C(--decrypt-cache-size)); the plugin's
      default if not set.
    type: int
  verbosity:
    description: Log verbosity of the plugin (C(--v)).
    type: int
  extra_args:
    description: More command line arguments for the plugin, each as C(--flag=value).
    type: list
    elements: str
  resources:
    description:
      - Container resources. The default requests 50m CPU and 64Mi memory and limits memory to 256Mi (no CPU
        limit,
        so the plugin is never throttled while the API server waits for it).
    type: dict
  node_selector:
    description:
      - Node labels selecting where the DaemonSet runs, instead of the default node affinity for masters
        labelled
        C(node-role.kubernetes.io/control-plane) or C(node-role.kubernetes.io/master).
    type: dict
  extra_tolerations:
    description: Tolerations added to the two master taints the DaemonSet tolerates.
    type: list
    elements: dict
  static_pod_path:
    description: File of the static pod manifest, for O(deploy_as=static_pod). Written with mode C(0600).
    type: path
    default: /etc/kubernetes/manifests/tke-kms-plugin.yaml
  wait:
    description:
      - With O(deploy_as=daemonset), wait until the rollout is complete on every master (desired, updated,
        ready and
        available pods all equal, for the current generation), or until the DaemonSet and its pods are gone
        with
        O(state=absent). A DaemonSet that targets no node never completes.
      - With O(deploy_as=static_pod), wait until a new plugin accepts connections on O(unix_socket) on this
        host (or
        stops accepting them with O(state=absent)).
      - On timeout the module fails with the rollout status and the reason of every pod that is not ready.
    type: bool
    default: false
  wait_timeout:
    description: Seconds to wait for O(wait).
    type: float
    default: 300
  wait_sleep:
    description:
      - Seconds between two checks while waiting for O(wait).
      - Not set - 2 with O(deploy_as=daemonset), 1 with O(deploy_as=static_pod).
    type: float
extends_documentation_fragment:
  - tke.kms.k8s_auth
  - tke.kms.attributes
  - tke.kms.attributes.MUTATING
  - tke.kms.attributes.K8S_GROUP
notes:
  - The DaemonSet is applied with server-side apply (field manager C(tke.kms)), so fields set by others and
    not
    managed here are kept. Needs Kubernetes 1.18 or later.
  - The connection options are not used with O(deploy_as=static_pod).
author:
  - tke.kms maintainers (@tke-kms)
"""

EXAMPLES = r"""
- name: Deploy the plugin on every master and wait for it
  tke.kms.kms_plugin:
    image: registry.example.com/tke-kms-plugin:0.1.0
    region: ap-guangzhou
    key_id: "{{ kms.key.KeyId }}"
    credentials_file: /etc/tke-kms-plugin/credentials
    kubeconfig: /etc/kubernetes/admin.conf
    wait: true
    wait_timeout: 600

- name: Use the CAM role of the CVM masters and the VPC endpoint of KMS
  tke.kms.kms_plugin:
    image: registry.example.com/tke-kms-plugin:0.1.0
    region: ap-guangzhou
    key_id: "{{ kms.key.KeyId }}"
    credentials_source: cvm_role
    cvm_role: tke-kms-plugin
    endpoint: kms.internal.tencentcloudapi.com

- name: Pull the image from a private registry (TCR) with a pull Secret in kube-system
  tke.kms.kms_plugin:
    image: example.tencentcloudcr.com/infra/tke-kms-plugin:0.1.0
    image_pull_secrets: [tcr-pull]
    image_pull_policy: IfNotPresent  # a restarted plugin finds the image on the node, no Secret needed
    region: ap-guangzhou
    key_id: "{{ kms.key.KeyId }}"

- name: Run the plugin as a static pod on this master
  tke.kms.kms_plugin:
    deploy_as: static_pod
    image: registry.example.com/tke-kms-plugin:0.1.0
    region: ap-guangzhou
    key_id: "{{ kms.key.KeyId }}"
    wait: true

- name: Remove the DaemonSet once no API server uses the plugin any more
  tke.kms.kms_plugin:
    state: absent
    wait: true
"""

RETURN = r"""
resource:
  description:
    - The DaemonSet as the API server stores it after the change (server-side dry run in check mode), or the
      static
      pod manifest as written. Credential values in C(env) are replaced by C(VALUE_REDACTED).
    - Empty after O(state=absent).
  returned: always
  type: dict
  sample:
    apiVersion: apps/v1
    kind: DaemonSet
    metadata:
      name: tke-kms-plugin
      namespace: kube-system
rollout:
  description: What O(wait) found.
  returned: when O(wait=true) and not in check mode
  type: dict
  contains:
    done:
      description: Whether the wait succeeded.
      type: bool
    message:
      description: The last status seen, for example C(rolled out; 3 desired, 3 updated, 3 ready, 3
        available).
      type: str
    waited:
      description: Seconds waited.
      type: float
manifest_path:
  description: The static pod manifest file.
  returned: when O(deploy_as=static_pod)
  type: str
  sample: /etc/kubernetes/manifests/tke-kms-plugin.yaml
"""

import os
import typing as t

from ansible.module_utils.basic import env_fallback
from ansible_collections.tke.kms.plugins.module_utils._errors import TkeKmsError
from ansible_collections.tke.kms.plugins.module_utils._k8s import (
    KUBERNETES_CLIENT,
    k8s_auth_argument_spec,
    narrow_kubeconfig_masking,
)
from ansible_collections.tke.kms.plugins.module_utils._k8s_waiter import wait_argument_spec
from ansible_collections.tke.kms.plugins.module_utils._module import TkeKmsModule, merge_argument_specs
from ansible_collections.tke.kms.plugins.module_utils._plugin_daemonset import DaemonSetDeployment
from ansible_collections.tke.kms.plugins.module_utils._plugin_deploy import PluginWaitError
from ansible_collections.tke.kms.plugins.module_utils._plugin_pod import metrics_host_port
from ansible_collections.tke.kms.plugins.module_utils._plugin_static_pod import StaticPodDeployment

STATIC_POD_PULL_SECRETS = (
    "image_pull_secrets cannot be used with deploy_as=static_pod: the kubelet cannot read Secrets from the "
    "API for a static pod; give the masters' container runtime the registry credentials, or pull the image "
    "onto the masters beforehand"
)
ENV_WARNING = (
    "credentials_source=env puts the SecretKey into the pod spec, readable by anyone allowed to read "
    "DaemonSets or pods in %s; prefer credentials_source=file or cvm_role"
)


def plugin_argument_spec() -> t.Dict[str, t.Any]:
    return dict(
        state=dict(type="str", choices=["present", "absent"], default="present"),
        deploy_as=dict(type="str", choices=["daemonset", "static_pod"], default="daemonset"),
        name=dict(type="str", default="tke-kms-plugin"),
        namespace=dict(type="str", default="kube-system"),
        image=dict(type="str"),
        image_pull_policy=dict(
            type="str", choices=["Always", "IfNotPresent", "Never"], default="IfNotPresent"
        ),
        image_pull_secrets=dict(type="list", elements="str", no_log=False),
        plugin_binary=dict(type="str", default="/tke-kms-plugin"),
        region=dict(type="str"),
        key_id=dict(type="str"),
        unix_socket=dict(type="path", default="/var/run/tke-kms-plugin/server.sock"),
        credentials_source=dict(type="str", choices=["file", "cvm_role", "env"], default="file"),
        credentials_file=dict(type="path", default="/etc/tke-kms-plugin/credentials"),
        cvm_role=dict(type="str"),
        env_secret_id=dict(type="str", no_log=True),
        env_secret_key=dict(type="str", no_log=True),
        endpoint=dict(
            type="str",
            aliases=["kms_endpoint"],
            deprecated_aliases=[dict(name="kms_endpoint", version="1.0.0", collection_name="tke.kms")],
            fallback=(env_fallback, ["TENCENTCLOUD_KMS_ENDPOINT"]),
        ),
        metrics_address=dict(type="str", default="127.0.0.1:9876"),
        qps=dict(type="float"),
        decrypt_cache_size=dict(type="int"),
        verbosity=dict(type="int"),
        extra_args=dict(type="list", elements="str"),
        resources=dict(type="dict"),
        node_selector=dict(type="dict"),
        extra_tolerations=dict(type="list", elements="dict"),
        static_pod_path=dict(type="path", default="/etc/kubernetes/manifests/tke-kms-plugin.yaml"),
        **wait_argument_spec(timeout=300, sleep=None),
    )


def argument_spec() -> t.Dict[str, t.Any]:
    return merge_argument_specs(k8s_auth_argument_spec(), plugin_argument_spec())


def parameter_problems(params: t.Dict[str, t.Any]) -> t.List[str]:
    problems = []
    if params["state"] == "present" and params["metrics_address"]:
        try:
            metrics_host_port(params["metrics_address"])
        except ValueError as exc:
            problems.append(str(exc))
    for option in ("unix_socket", "credentials_file"):
        if not os.path.isabs(params[option]) or os.path.dirname(params[option]) in ("", "/"):
            problems.append("%s must be an absolute path of a file in a directory other than /" % option)
    if params["wait_timeout"] <= 0:
        problems.append("wait_timeout must be positive")
    if params["wait_sleep"] is not None and params["wait_sleep"] <= 0:
        problems.append("wait_sleep must be positive")
    if params["deploy_as"] == "static_pod" and params["image_pull_secrets"]:
        problems.append(STATIC_POD_PULL_SECRETS)
    return problems


def main() -> None:
    module = TkeKmsModule(
        argument_spec(),
        required_if=[
            ("state", "present", ("image", "region", "key_id")),
            ("credentials_source", "cvm_role", ("cvm_role",)),
            ("credentials_source", "env", ("env_secret_id", "env_secret_key")),
        ],
        supports_check_mode=True,
    )
    narrow_kubeconfig_masking(module)
    problems = parameter_problems(module.params)
    if problems:
        module.fail_json(msg="; ".join(problems))
    if module.params["state"] == "present" and module.params["credentials_source"] == "env":
        module.warn(ENV_WARNING % module.params["namespace"])
    if module.params["deploy_as"] == "daemonset":
        module.require(KUBERNETES_CLIENT)
    deployment = StaticPodDeployment if module.params["deploy_as"] == "static_pod" else DaemonSetDeployment
    try:
        module.exit_json(**deployment(module.params, module.check_mode, module._diff).run())
    except PluginWaitError as exc:
        module.fail_from_exception(exc, **exc.result)
    except (TkeKmsError, OSError) as exc:
        module.fail_from_exception(exc)


if __name__ == "__main__":
    main()
