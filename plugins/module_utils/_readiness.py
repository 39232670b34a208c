# Copyright (c) tke.kms contributors
# Apache License 2.0 (see https://www.apache.org/licenses/LICENSE-2.0)
"""What a master's own kube-apiserver says about itself: its readiness checks, its process start time, and
whether the encryption configuration it runs with needs a KMS health check.

PRIVATE to the collection. Runs on masters: standard library and PyYAML only.
"""

from __future__ import annotations

import re
import typing as t

from ansible_collections.tke.kms.plugins.module_utils import _encryption_config as ec
from ansible_collections.tke.kms.plugins.module_utils._https import Endpoint, HttpsError
from ansible_collections.tke.kms.plugins.module_utils._manifest import ApiserverManifest

CHECK_LINE = re.compile(r"^\[([+-])\]([^ ]+) ")
START_TIME = re.compile(rb"^process_start_time_seconds\s+(\S+)", re.MULTILINE)


def readiness(endpoint: Endpoint, path: str) -> t.Tuple[int, t.Dict[str, bool]]:
    """(HTTP status, check name -> passing) of the verbose readiness endpoint."""
    status, body = endpoint.request("GET", path + "?verbose")
    checks = {}
    for line in body.decode("utf-8", "replace").splitlines():
        match = CHECK_LINE.match(line)
        if match:
            checks[match.group(2)] = match.group(1) == "+"
    return status, checks


def kms_checks(checks: t.Dict[str, bool]) -> t.Dict[str, bool]:
    """The KMS checks among the readiness checks (kms-provider-N, or kms-providers)."""
    return {name: ok for name, ok in checks.items() if name.startswith("kms-provider")}


def metrics(endpoint: Endpoint) -> bytes:
    """The apiserver's /metrics text; HttpsError unless it answers 200."""
    status, body = endpoint.request("GET", "/metrics", accept="text/plain")
    if status != 200:
        raise HttpsError("GET /metrics: HTTP %d (the credentials need get on the /metrics URL)" % status)
    return body


def process_start_time(body: bytes) -> float:
    """The apiserver process's start time, from its /metrics text."""
    match = START_TIME.search(body)
    if not match:
        raise HttpsError("GET /metrics has no process_start_time_seconds")
    return float(match.group(1))


def runs_kms(manifest: ApiserverManifest) -> bool:
    """Whether the encryption configuration the manifest names has a KMS provider."""
    path = manifest.encryption_config_host_path()
    return bool(path) and bool(ec.kms_providers(ec.read_config(t.cast(str, path))))
