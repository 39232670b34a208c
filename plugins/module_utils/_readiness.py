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
from ansible_collections.tke.kms.plugins.module_utils._kube_version import KubeVersion
from ansible_collections.tke.kms.plugins.module_utils._manifest import ApiserverManifest

CHECK_LINE = re.compile(r"^\[([+-])\]([^ ]+) ")
START_TIME = re.compile(rb"^process_start_time_seconds\s+(\S+)", re.MULTILINE)


def readiness(endpoint: Endpoint, path: str) -> t.Tuple[int, t.Dict[str, bool]]:
    """(HTTP status, check name -> passing) of the verbose readiness endpoint."""
    answer = endpoint.request("GET", path + "?verbose")
    checks = {}
    for line in answer.body.decode("utf-8", "replace").splitlines():
        match = CHECK_LINE.match(line)
        if match:
            checks[match.group(2)] = match.group(1) == "+"
    return answer.status, checks


def kms_checks(checks: t.Dict[str, bool]) -> t.Dict[str, bool]:
    """The KMS checks among the readiness checks (kms-provider-N, or kms-providers)."""
    return {name: ok for name, ok in checks.items() if name.startswith("kms-provider")}


def metrics(endpoint: Endpoint) -> bytes:
    """The apiserver's /metrics text; HttpsError unless it answers 200."""
    answer = endpoint.request("GET", "/metrics", accept="text/plain")
    if answer.status != 200:
        raise HttpsError(
            "GET /metrics: HTTP %d (the credentials need get on the /metrics URL)" % answer.status
        )
    return answer.body


def process_start_time(body: bytes) -> float:
    """The apiserver process's start time, from its /metrics text."""
    match = START_TIME.search(body)
    if not match:
        raise HttpsError("GET /metrics has no process_start_time_seconds")
    return float(match.group(1))


def kms_health_check(manifest: ApiserverManifest, version: KubeVersion) -> bool:
    """Whether this apiserver's /readyz has kms-provider checks, for the configuration its manifest names."""
    path = manifest.encryption_config_host_path()
    return ec.has_kms_health_check(ec.read_config(path) if path else None, version)


def probe(
    endpoint: Endpoint,
    path: str,
    require_kms: bool,
    *,
    started_after: t.Optional[float] = None,
    previous_started_at: t.Optional[float] = None,
    report_start: bool = False,
) -> t.Dict[str, t.Any]:
    """Ready (and KMS check listed, if required; and a new process, if asked): healthy, with a one-line
    message either way. An apiserver that does not answer is a result too, not an error.

    A new process is one whose start time differs from `previous_started_at` (the start time it reported
    before the change: same clock, same rounding), else one that started after `started_after` (wall clock).
    The reported start time counts from the boot time in whole seconds, so it can read up to a second early:
    only `previous_started_at` recognises a restart that follows the change within a second."""
    result: t.Dict[str, t.Any] = dict(healthy=False, ready=False)
    where = endpoint.url
    try:
        status, checks = readiness(endpoint, path)
    except HttpsError as exc:
        result["message"] = "%s: not answering (%s)" % (where, exc)
        return result
    kms = kms_checks(checks)
    result.update(ready=status == 200, checks=checks, kms_checks=kms)
    failing = sorted(name for name, ok in checks.items() if not ok)
    if status != 200:
        result["message"] = "%s: not ready (HTTP %d%s)" % (
            where,
            status,
            ", failing: " + ", ".join(failing) if failing else "",
        )
        return result
    if require_kms and not kms:
        result["message"] = "%s: ready but has no KMS health check; is the encryption config loaded?" % where
        return result
    notes = ["ready"] + ["%s ok" % name for name in sorted(kms)]
    must_restart = started_after is not None or previous_started_at is not None
    if must_restart or report_start:
        try:
            result["started_at"] = process_start_time(metrics(endpoint))
        except HttpsError as exc:
            if must_restart:
                result["message"] = "%s: ready, but the start time is unknown: %s" % (where, exc)
                return result
    if must_restart:
        started = result["started_at"]
        since = t.cast(float, previous_started_at if previous_started_at is not None else started_after)
        result["restarted"] = started > since
        if not result["restarted"]:
            result["message"] = "%s: still the process from before the change (started %.0fs earlier)" % (
                where,
                since - started,
            )
            return result
        notes.append("started %.0fs after the change" % (started - since))
    result.update(healthy=True, message="%s: %s" % (where, ", ".join(notes)))
    return result
