# Copyright (c) tke.kms contributors
# Apache License 2.0 (see https://www.apache.org/licenses/LICENSE-2.0)
"""How modules running on a master reach that master's own kube-apiserver (module_utils/_master_api.py)."""

from __future__ import annotations


class ModuleDocFragment:
    DOCUMENTATION = r"""
options:
  manifest_path:
    description:
      - The kube-apiserver static-pod manifest of the master. Its flags give the defaults below - the endpoint
        (C(--bind-address) or C(--advertise-address), and C(--secure-port)), the CA (C(--client-ca-file)), and
        the fallback client certificate (C(--kubelet-client-certificate)).
    type: path
    default: /etc/kubernetes/manifests/kube-apiserver.yaml
  url:
    description:
      - URL of this master's kube-apiserver. The default is read from the manifest, so that the task talks to
        the apiserver on this master and not to a load balancer.
    type: str
  kubeconfig:
    description:
      - A kubeconfig on the master whose credentials (client certificate or token) are used; its server is
        ignored. Used when it exists and O(client_cert) is not set.
    type: path
    default: /etc/kubernetes/admin.conf
  client_cert:
    description: Client certificate for the apiserver, instead of the kubeconfig.
    type: path
  client_key:
    description: Key of O(client_cert).
    type: path
  ca_file:
    description: CA of the apiserver's serving certificate (default from the kubeconfig, else the manifest).
    type: path
  api_timeout:
    description: Seconds to wait for each answer.
    type: float
    default: 10
notes:
  - Without O(client_cert) and kubeconfig, the apiserver's own kubelet client certificate from the manifest is
    used; kubeadm makes it a cluster admin (group C(system:masters), or C(kubeadm:cluster-admins) from 1.29).
"""
