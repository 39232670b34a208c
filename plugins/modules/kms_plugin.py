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
  kms_endpoint:
    description:
      - KMS endpoint the plugin calls (C(--kms-endpoint)), for example a VPC endpoint
        C(kms.internal.tencentcloudapi.com), or V(http://HOST:PORT) for an emulator. Not set - the public
        C(kms.tencentcloudapi.com).
      - It is the masters' endpoint, independent of the one the controller uses for the key (the C(endpoint)
        option of module C(tke.kms.kms_key), E(TENCENTCLOUD_KMS_ENDPOINT)), which is not read here.
    type: str
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
    type: int
    default: 300
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
    kms_endpoint: kms.internal.tencentcloudapi.com

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

import json
import os
import socket
import stat
import tempfile
import typing as t

from ansible.module_utils.basic import AnsibleModule
from ansible_collections.tke.kms.plugins.module_utils._k8s import (
    K8S_IMPORT_ERROR,
    KubeError,
    KubeResources,
    k8s_auth_argument_spec,
    missing_client_message,
    narrow_kubeconfig_masking,
    strip_volatile,
)
from ansible_collections.tke.kms.plugins.module_utils._k8s_waiter import (
    daemonset_rollout,
    pod_problems,
    wait_until,
)
from ansible_collections.tke.kms.plugins.module_utils._plugin_pod import (
    APP_LABEL,
    daemonset,
    metrics_host_port,
    redact_credentials,
    static_pod,
)

try:
    import yaml
except ImportError:  # the manifest is then written as JSON, which the kubelet reads as well
    yaml = None
    PARSE_ERRORS: t.Tuple[t.Type[Exception], ...] = (ValueError,)
else:
    PARSE_ERRORS = (ValueError, yaml.YAMLError)

MANIFEST_HEADER = "# Managed by tke.kms.kms_plugin: changes made here are overwritten.\n"
STATIC_POD_PULL_SECRETS = (
    "image_pull_secrets cannot be used with deploy_as=static_pod: the kubelet cannot read Secrets from the "
    "API for a static pod; give the masters' container runtime the registry credentials, or pull the image "
    "onto the masters beforehand"
)
ENV_WARNING = (
    "credentials_source=env puts the SecretKey into the pod spec, readable by anyone allowed to read "
    "DaemonSets or pods in %s; prefer credentials_source=file or cvm_role"
)


def argument_spec() -> t.Dict[str, t.Any]:
    spec = k8s_auth_argument_spec()
    spec.update(
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
        kms_endpoint=dict(type="str"),
        metrics_address=dict(type="str", default="127.0.0.1:9876"),
        qps=dict(type="float"),
        decrypt_cache_size=dict(type="int"),
        verbosity=dict(type="int"),
        extra_args=dict(type="list", elements="str"),
        resources=dict(type="dict"),
        node_selector=dict(type="dict"),
        extra_tolerations=dict(type="list", elements="dict"),
        static_pod_path=dict(type="path", default="/etc/kubernetes/manifests/tke-kms-plugin.yaml"),
        wait=dict(type="bool", default=False),
        wait_timeout=dict(type="int", default=300),
    )
    return spec


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
    if params["deploy_as"] == "static_pod" and params["image_pull_secrets"]:
        problems.append(STATIC_POD_PULL_SECRETS)
    return problems


class DaemonSetDeployment:
    def __init__(self, module: AnsibleModule) -> None:
        self.module = module
        self.params = module.params
        self.api = KubeResources(self.params)

    def run(self) -> t.Dict[str, t.Any]:
        namespace, name = self.params["namespace"], self.params["name"]
        existing = self.api.get_daemonset(namespace, name)
        if self.params["state"] == "absent":
            result: t.Dict[str, t.Any] = dict(changed=existing is not None, resource={})
            if existing is not None and not self.module.check_mode:
                self.api.delete_daemonset(namespace, name)
            after: t.Dict[str, t.Any] = {}
        else:
            desired = daemonset(self.params)
            preview = self.api.apply_daemonset(desired, dry_run=True)
            changed = existing is None or strip_volatile(existing) != strip_volatile(preview)
            applied = self.api.apply_daemonset(desired) if changed and not self.module.check_mode else preview
            result = dict(changed=changed, resource=redact_credentials(applied))
            after = applied
        if self.module._diff:
            result["diff"] = dict(
                before=redact_credentials(strip_volatile(existing)),
                after=redact_credentials(strip_volatile(after)),
            )
        if self.params["wait"] and not self.module.check_mode:
            check = self.rollout_done if self.params["state"] == "present" else self.removal_done
            result["rollout"] = self.wait(check)
        return result

    def rollout_done(self) -> t.Tuple[bool, str]:
        return daemonset_rollout(self.api.get_daemonset(self.params["namespace"], self.params["name"]))

    def removal_done(self) -> t.Tuple[bool, str]:
        if self.api.get_daemonset(self.params["namespace"], self.params["name"]) is not None:
            return False, "the DaemonSet still exists"
        pods = self.api.list_pods(self.params["namespace"], "%s=%s" % (APP_LABEL, self.params["name"]))
        if pods:
            return False, "%d plugin pods still exist" % len(pods)
        return True, "the DaemonSet and its pods are gone"

    def wait(self, check: t.Callable[[], t.Tuple[bool, str]]) -> t.Dict[str, t.Any]:
        done, message, waited = wait_until(check, self.params["wait_timeout"])
        rollout = dict(done=done, message=message, waited=round(waited, 1))
        if not done:
            pods = self.api.list_pods(self.params["namespace"], "%s=%s" % (APP_LABEL, self.params["name"]))
            problems = pod_problems(pods)
            self.module.fail_json(
                msg="DaemonSet %s/%s: not done after %ds: %s%s"
                % (
                    self.params["namespace"],
                    self.params["name"],
                    self.params["wait_timeout"],
                    message,
                    "; " + "; ".join(problems) if problems else "",
                ),
                rollout=dict(rollout, pods=problems),
                changed=True,
            )
        return rollout


def socket_identity(path: str) -> t.Optional[t.Tuple[int, int]]:
    try:
        st = os.stat(path)
    except OSError:
        return None
    return (st.st_ino, st.st_mtime_ns) if stat.S_ISSOCK(st.st_mode) else None


def socket_accepts(path: str) -> bool:
    client = socket.socket(socket.AF_UNIX, socket.SOCK_STREAM)
    client.settimeout(2)
    try:
        client.connect(path)
    except OSError:
        return False
    finally:
        client.close()
    return True


class StaticPodDeployment:
    def __init__(self, module: AnsibleModule) -> None:
        self.module = module
        self.params = module.params
        self.path = self.params["static_pod_path"]

    def read_current(self) -> t.Tuple[t.Optional[str], t.Any]:
        try:
            with open(self.path, encoding="utf-8") as handle:
                text = handle.read()
        except FileNotFoundError:
            return None, None
        try:
            return text, (yaml.safe_load(text) if yaml else json.loads(text))
        except PARSE_ERRORS:  # an unreadable manifest is simply replaced
            return text, None

    def render(self, manifest: t.Dict[str, t.Any]) -> str:
        if yaml:
            return MANIFEST_HEADER + yaml.safe_dump(manifest, default_flow_style=False, sort_keys=False)
        return json.dumps(manifest, indent=2) + "\n"

    def write(self, text: str) -> None:
        """Atomic replace through a dot file: the kubelet ignores dot files in its manifest directory."""
        directory = os.path.dirname(self.path)
        os.makedirs(directory, mode=0o700, exist_ok=True)
        fd, temp_path = tempfile.mkstemp(prefix=".tke-kms-plugin.", dir=directory)
        try:
            with os.fdopen(fd, "w", encoding="utf-8") as handle:
                handle.write(text)
            os.chmod(temp_path, 0o600)
            os.replace(temp_path, self.path)
        except BaseException:
            if os.path.exists(temp_path):
                os.unlink(temp_path)
            raise

    def run(self) -> t.Dict[str, t.Any]:
        current_text, current = self.read_current()
        socket_path = self.params["unix_socket"]
        socket_before = socket_identity(socket_path)
        if self.params["state"] == "absent":
            changed = current_text is not None
            new_text = ""
            resource: t.Dict[str, t.Any] = {}
            if changed and not self.module.check_mode:
                os.unlink(self.path)
        else:
            manifest = static_pod(self.params)
            new_text = self.render(manifest)
            changed = current != manifest
            if changed and not self.module.check_mode:
                self.write(new_text)
            resource = redact_credentials(manifest)
        result: t.Dict[str, t.Any] = dict(changed=changed, resource=resource, manifest_path=self.path)
        if self.module._diff:
            result["diff"] = dict(
                before=self.redact_text(current_text or ""),
                after=self.redact_text(new_text),
                before_header=self.path,
                after_header=self.path,
            )
        if self.params["wait"] and not self.module.check_mode:
            if self.params["state"] == "absent":
                check = self.stopped
            else:
                check = self.serving(socket_before if changed else None)
            done, message, waited = wait_until(check, self.params["wait_timeout"], interval=1.0)
            result["rollout"] = dict(done=done, message=message, waited=round(waited, 1))
            if not done:
                self.module.fail_json(
                    msg="static pod %s: %s after %ds" % (self.path, message, self.params["wait_timeout"]),
                    **result,
                )
        return result

    def redact_text(self, text: str) -> str:
        """Diff text without env credentials, also old ones (not among this run's no_log values)."""
        if not text or (self.params["credentials_source"] != "env" and "SECRET_KEY" not in text):
            return text
        try:
            parsed = yaml.safe_load(text) if yaml else json.loads(text)
            return self.render(redact_credentials(parsed))
        except (*PARSE_ERRORS, AttributeError):
            return "(content hidden: it may hold credentials)"

    def serving(self, old_socket: t.Optional[t.Tuple[int, int]]) -> t.Callable[[], t.Tuple[bool, str]]:
        """A plugin accepts connections on the socket; after a change, a new one (new socket file)."""
        path = self.params["unix_socket"]

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
        path = self.params["unix_socket"]
        if socket_identity(path) is not None and socket_accepts(path):
            return False, "a plugin still accepts connections on %s" % path
        return True, "no plugin serves %s any more" % path


def main() -> None:
    module = AnsibleModule(
        argument_spec=argument_spec(),
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
    if module.params["deploy_as"] == "daemonset" and K8S_IMPORT_ERROR:
        module.fail_json(msg=missing_client_message(), exception=K8S_IMPORT_ERROR)
    deployment = StaticPodDeployment if module.params["deploy_as"] == "static_pod" else DaemonSetDeployment
    try:
        module.exit_json(**deployment(module).run())
    except KubeError as exc:
        module.fail_json(msg=str(exc), error=exc.as_result())
    except OSError as exc:
        module.fail_json(msg="static pod manifest %s: %s" % (module.params["static_pod_path"], exc))


if __name__ == "__main__":
    main()
