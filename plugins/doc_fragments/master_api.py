# Copyright (c) tke.kms contributors
# Apache License 2.0 (see https://www.apache.org/licenses/LICENSE-2.0)
"""How modules running on a master reach a kube-apiserver, by default the master's own
(module_utils/_master_api.py). Names and environment variables are those of kubernetes.core."""

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
  host:
    description:
      - URL of the kube-apiserver to call, for example V(https://10.0.0.11:6443).
      - If not set, the environment variable E(K8S_AUTH_HOST); else the server of the kubeconfig, when one is
        given (O(kubeconfig) or E(K8S_AUTH_KUBECONFIG)); else this master's own apiserver, read
        from the manifest - so that the task talks to the apiserver on this master and not to a load balancer.
      - The old name O(url) is deprecated and will be removed in 1.0.0.
    type: str
    aliases: [url]
  kubeconfig:
    description:
      - Path to a kubeconfig file on the master. Its credentials (client certificate or token) and CA are
        used, and its server unless O(host) is set. If not set, the environment variable
        E(K8S_AUTH_KUBECONFIG).
      - If neither is set, the credentials and CA of C(/etc/kubernetes/admin.conf) (kubeadm's) are used when
        that file exists, with this master's own apiserver (the server in C(admin.conf), often a load
        balancer, is not used).
      - A kubeconfig that does not exist is passed over (see the notes for the fallback).
    type: path
  context:
    description:
      - The context of the kubeconfig to use. If not set, the environment variable E(K8S_AUTH_CONTEXT), else
        the kubeconfig's current context.
    type: str
  api_key:
    description:
      - Bearer token to authenticate with, instead of the kubeconfig's credentials. If not set, the
        environment variable E(K8S_AUTH_API_KEY).
    type: str
  validate_certs:
    description:
      - Whether to verify the apiserver's TLS certificate. If not set, the environment variable
        E(K8S_AUTH_VERIFY_SSL), else V(true) unless the kubeconfig sets C(insecure-skip-tls-verify).
    type: bool
    aliases: [verify_ssl]
  ca_cert:
    description:
      - CA of the apiserver's serving certificate. If not set, the environment variable
        E(K8S_AUTH_SSL_CA_CERT), else the kubeconfig's, else C(--client-ca-file) of the manifest.
      - The old name O(ca_file) is deprecated and will be removed in 1.0.0.
    type: path
    aliases: [ssl_ca_cert, ca_file]
  client_cert:
    description:
      - Client certificate for the apiserver, instead of the kubeconfig's. If not set, the environment
        variable E(K8S_AUTH_CERT_FILE).
    type: path
    aliases: [cert_file]
  client_key:
    description: Key of O(client_cert). If not set, the environment variable E(K8S_AUTH_KEY_FILE).
    type: path
    aliases: [key_file]
  api_timeout:
    description:
      - Seconds to wait for one answer of the apiserver (the M(tke.kms.kms_plugin) family waits 30 for a call
        to the cluster; a master's own apiserver answers at once or is not ready).
    type: int
    default: 10
notes:
  - Credentials, in this order - O(client_cert), O(api_key), the kubeconfig (O(kubeconfig), else
    C(/etc/kubernetes/admin.conf)), and without any of them the apiserver's own kubelet client certificate
    from the manifest; kubeadm makes it a cluster admin (group C(system:masters), or C(kubeadm:cluster-admins)
    from 1.29).
"""
