#!/usr/bin/python
# Copyright (c) tke.kms contributors
# Apache License 2.0 (see https://www.apache.org/licenses/LICENSE-2.0)

from __future__ import annotations

DOCUMENTATION = r"""
module: encryption_status_report
short_description: Compare the encryption status of every master and render it as one table
version_added: 0.2.0
description:
  - Takes what M(tke.kms.encryption_status) returned on each master and returns a fixed-width table, a column
    per master, with every difference found - C(playbooks/status.yml) prints the table and fails on any
    difference.
  - Must read the same on every master - the Kubernetes version, the hash of the configuration on disk, the
    hash of the configuration the running apiserver uses, the provider order, the KMS API of each provider,
    and the object counts of each resource per storage.
  - Must hold on each master - the running apiserver uses the configuration on disk, it is ready with passing
    KMS checks, its plugins are healthy and report their KMS key healthy.
  - Every object of each counted resource is stored with the first (write) provider.
  - A master of O(masters) without a status (its task failed) is a difference too.
  - Read-only; runs anywhere (usually on the controller, C(delegate_to=localhost)). The table holds no
    secrets - hashes, provider names, key ids and counts.
options:
  statuses:
    description: Master name to the result of M(tke.kms.encryption_status) on it.
    type: dict
    required: true
  masters:
    description: Every master that should have a status (default, the keys of O(statuses)).
    type: list
    elements: str
extends_documentation_fragment:
  - tke.kms.attributes
  - tke.kms.attributes.INFO_MODULE
seealso:
  - module: tke.kms.encryption_status
author:
  - tke.kms maintainers (@tke-kms)
"""

EXAMPLES = r"""
- name: Compare the masters
  tke.kms.encryption_status_report:
    statuses: "{{ dict(ansible_play_hosts | zip(ansible_play_hosts | map('extract', hostvars, 'status'))) }}"
    masters: "{{ ansible_play_hosts_all }}"
  delegate_to: localhost
  run_once: true
  register: report
"""

RETURN = r"""
table:
  description: The table's lines; rows whose masters differ start with C(*).
  returned: always
  type: list
  elements: str
differences:
  description: Each difference in one line, naming the masters and the column.
  returned: always
  type: list
  elements: str
  sample: ["config on disk: master2 has sha256:9f1c0d2e4b7a; master1, master3 have sha256:1a2b3c4d5e6f"]
agree:
  description: Whether there is no difference.
  returned: always
  type: bool
verdict:
  description: V(all masters agree), or how many differences there are.
  returned: always
  type: str
"""

from ansible_collections.tke.kms.plugins.module_utils._module import TkeKmsModule
from ansible_collections.tke.kms.plugins.module_utils._status import report


def main() -> None:
    module = TkeKmsModule(
        dict(
            statuses=dict(type="dict", required=True),
            masters=dict(type="list", elements="str"),
        ),
        supports_check_mode=True,
    )
    statuses = module.params["statuses"]
    masters = module.params["masters"] or list(statuses)
    module.exit_json(changed=False, **report(statuses, masters))


if __name__ == "__main__":
    main()
