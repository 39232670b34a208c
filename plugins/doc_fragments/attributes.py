# Copyright (c) tke.kms contributors
# Apache License 2.0 (see https://www.apache.org/licenses/LICENSE-2.0)
"""Module attributes (check mode, diff mode, action groups) shared by the modules of tke.kms."""

from __future__ import annotations


class ModuleDocFragment:
    DOCUMENTATION = r"""
options: {}
attributes:
  check_mode:
    description: Can run in check mode and return changed status prediction without modifying target.
  diff_mode:
    description: Will return details on what has changed (or possibly needs changing in check_mode), when in
      diff mode.
"""

    MUTATING = r"""
options: {}
attributes:
  check_mode:
    support: full
  diff_mode:
    support: full
"""

    INFO_MODULE = r"""
options: {}
attributes:
  check_mode:
    support: full
    details: This module only reads, so it runs unchanged in check mode.
  diff_mode:
    support: N/A
    details: This module does not change anything.
"""

    TENCENTCLOUD_GROUP = r"""
options: {}
attributes:
  action_group:
    description: Use C(group/tke.kms.tencentcloud) in C(module_defaults) to set the Tencent Cloud options
      once.
    support: full
    membership:
      - tke.kms.tencentcloud
"""

    K8S_GROUP = r"""
options: {}
attributes:
  action_group:
    description: Use C(group/tke.kms.k8s) in C(module_defaults) to set the Kubernetes connection options once.
    support: full
    membership:
      - tke.kms.k8s
"""
