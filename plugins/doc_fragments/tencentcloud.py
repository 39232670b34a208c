# Copyright (c) tke.kms contributors
# Apache License 2.0 (see https://www.apache.org/licenses/LICENSE-2.0)
"""Options shared by the Tencent Cloud KMS modules (module_utils/_tencentcloud.py builds the client)."""

from __future__ import annotations


class ModuleDocFragment:
    DOCUMENTATION = r"""
options:
  secret_id:
    description:
      - Tencent Cloud API SecretId.
      - If not set, the environment variable E(TENCENTCLOUD_SECRET_ID) is used, then E(SECRET_ID)
        (the name the Go tke-kms-plugin used).
      - Set it once for several tasks with C(module_defaults) and the action group
        C(group/tke.kms.tencentcloud).
    type: str
  secret_key:
    description:
      - Tencent Cloud API SecretKey.
      - If not set, the environment variable E(TENCENTCLOUD_SECRET_KEY) is used, then E(SECRET_KEY).
      - The value is never printed, Ansible masks it in all output.
    type: str
  security_token:
    description:
      - Session token of temporary credentials (STS or a CAM role), sent with O(secret_id) and O(secret_key).
      - If not set, the environment variable E(TENCENTCLOUD_SECURITY_TOKEN) is used.
    type: str
    aliases: [token]
  region:
    description:
      - Tencent Cloud region of the KMS keys, for example V(ap-guangzhou).
      - If not set, the environment variable E(TENCENTCLOUD_REGION) is used.
    type: str
    required: true
  endpoint:
    description:
      - KMS API host to call instead of the default C(kms.tencentcloudapi.com), as C(host[:port]) (HTTPS) or
        with an
        explicit V(http://) or V(https://) scheme.
      - Use it for a region-specific or VPC (internal) endpoint such as C(kms.internal.tencentcloudapi.com),
        or a local
        KMS emulator such as V(http://127.0.0.1:18765).
      - If not set, the environment variable E(TENCENTCLOUD_KMS_ENDPOINT) is used.
    type: str
  api_retries:
    description:
      - How many times a call is retried when Tencent Cloud throttles it (C(RequestLimitExceeded)), the
        network fails
        or the service reports a transient error.
      - Retries wait with exponential backoff and jitter (about 1, 2, 4, 8 seconds, at most 20 seconds each).
    type: int
    default: 5
notes:
  - The modules call the Tencent Cloud API from the host they run on, usually C(localhost).
  - Errors are reported with Tencent's error code, message and RequestId, and a hint on what to fix.
requirements:
  - tencentcloud-sdk-python-common >= 3.1.192
  - tencentcloud-sdk-python-kms >= 3.1.192
"""
