# Copyright (c) tke.kms contributors
# Apache License 2.0 (see https://www.apache.org/licenses/LICENSE-2.0)
"""How modules running on a master read the apiserver's data from etcd (module_utils/_etcd.py)."""

from __future__ import annotations


class ModuleDocFragment:
    DOCUMENTATION = r"""
options:
  etcd_endpoints:
    description: etcd client URLs (default C(--etcd-servers) of the apiserver manifest O(manifest_path)).
    type: list
    elements: str
  etcd_ca_cert:
    description:
      - CA of the etcd servers (default C(--etcd-cafile)).
      - The old name O(etcd_ca_file) is deprecated and will be removed in 1.0.0.
    type: path
    aliases: [etcd_ca_file]
  etcd_client_cert:
    description:
      - etcd client certificate (default C(--etcd-certfile), the apiserver's own).
      - The old name O(etcd_cert_file) is deprecated and will be removed in 1.0.0.
    type: path
    aliases: [etcd_cert_file]
  etcd_client_key:
    description:
      - Key of the etcd client certificate (default C(--etcd-keyfile)).
      - The old name O(etcd_key_file) is deprecated and will be removed in 1.0.0.
    type: path
    aliases: [etcd_key_file]
  etcd_prefix:
    description: Key prefix of the apiserver's data (default C(--etcd-prefix), else V(/registry)).
    type: str
  etcd_timeout:
    description:
      - Seconds to wait for each etcd answer.
      - The old name O(timeout) is deprecated and will be removed in 1.0.0.
    type: int
    default: 30
    aliases: [timeout]
notes:
  - etcd is read through its v3 JSON gateway (C(/v3/kv/range); C(/v3beta) and C(/v3alpha) for etcd 3.3 and
    3.2), so the master needs no etcdctl. Values are read page by page from one etcd revision.
"""
