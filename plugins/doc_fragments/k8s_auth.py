# Copyright (c) tke.kms contributors
# Apache License 2.0 (see https://www.apache.org/licenses/LICENSE-2.0)
"""Kubernetes connection options, with the names and environment variables kubernetes.core uses."""

from __future__ import annotations


class ModuleDocFragment:
    DOCUMENTATION = r"""
options:
  kubeconfig:
    description:
      - Path to a kubeconfig file, or the kubeconfig itself as a dictionary.
      - If not set, the environment variable E(K8S_AUTH_KUBECONFIG) is used. Without it and without O(host),
        the in-cluster service account is used when running in a pod, else E(KUBECONFIG) or C(~/.kube/config).
      - The option is C(no_log) - given as a dictionary it holds tokens and keys. It is never logged, and the
        strings of its C(users) entries are masked wherever they would appear in the module's output.
      - A kubeconfig file that is not valid YAML is reported by line and column only (the line may hold a
        token).
    type: raw
  context:
    description:
      - The kubeconfig context to use. If not set, the environment variable E(K8S_AUTH_CONTEXT) is used, else
        the
        current context of the kubeconfig.
    type: str
  host:
    description:
      - URL of the Kubernetes API server, for example V(https://10.0.0.10:6443). It overrides the kubeconfig's
        server.
      - If not set, the environment variable E(K8S_AUTH_HOST) is used.
    type: str
  api_key:
    description:
      - Bearer token to authenticate with. If not set, the environment variable E(K8S_AUTH_API_KEY) is used.
    type: str
  validate_certs:
    description:
      - Whether to verify the API server's TLS certificate.
      - If not set, the environment variable E(K8S_AUTH_VERIFY_SSL) is used, else the kubeconfig's setting
        (verify).
    type: bool
    aliases: [verify_ssl]
  ca_cert:
    description:
      - Path to the CA certificate that signed the API server's certificate.
      - If not set, the environment variable E(K8S_AUTH_SSL_CA_CERT) is used.
    type: path
    aliases: [ssl_ca_cert]
  client_cert:
    description:
      - Path to a client certificate to authenticate with.
      - If not set, the environment variable E(K8S_AUTH_CERT_FILE) is used.
    type: path
    aliases: [cert_file]
  client_key:
    description:
      - Path to the key of O(client_cert). If not set, the environment variable E(K8S_AUTH_KEY_FILE) is used.
    type: path
    aliases: [key_file]
  proxy:
    description:
      - HTTP proxy URL for the connection to the API server. If not set, the environment variable
        E(K8S_AUTH_PROXY)
        is used.
    type: str
  api_timeout:
    description:
      - Seconds to wait for one answer of the API server.
    type: int
    default: 30
notes:
  - Basic authentication (username and password) is not offered; kube-apiserver removed it in Kubernetes 1.19.
requirements:
  - kubernetes >= 24.2.0 (the Python client)
"""
