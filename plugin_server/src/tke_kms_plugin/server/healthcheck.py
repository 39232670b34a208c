"""`tke-kms-plugin health-check`: is the plugin on this socket alive?

Default (liveness, what an exec probe should run): grpc.health.v1 says SERVING and v1beta1 Version answers.
It makes no Tencent call, so a KMS outage or a disabled key never gets the plugin restarted in a loop. An
HTTP listener that could not bind --metrics-address is mentioned in the summary but is not a failure: a
restart would not free the port, and kube-apiserver only needs the socket.
`--deep` adds a KMS v2 Encrypt + Decrypt round trip (two Tencent calls). Everything shares one --timeout.
Exit 0 healthy; 1 unhealthy, with one line on stderr saying why; 2 for bad flags.
"""

from __future__ import annotations

import argparse
import os
import stat
import sys
import time
import uuid
from collections.abc import Sequence
from typing import TYPE_CHECKING

from .config import DEFAULT_SOCKET, ConfigError, parse_duration
from .usage import UsageParser

if TYPE_CHECKING:
    import grpc

PROBE_PLAINTEXT = b"tke-kms-plugin health-check"
HTTP_SERVICE = "tke-kms-plugin.http"  # as app.HTTP_SERVICE (not imported: it would load grpc.aio and more)


class Unhealthy(Exception):
    pass


def _parser() -> argparse.ArgumentParser:
    p = UsageParser(prog="tke-kms-plugin health-check", description=__doc__.splitlines()[0])
    p.add_argument("--unix-socket", default=DEFAULT_SOCKET, help="plugin socket (default %(default)s)")
    p.add_argument(
        "--deep", action="store_true", help="also do a KMS v2 Encrypt/Decrypt round trip via Tencent"
    )
    p.add_argument("--timeout", default="5s", help="overall time limit (default %(default)s)")
    return p


def check(socket_path: str, *, deep: bool, timeout: float) -> str:
    """Raise Unhealthy with a one-line reason, or return a one-line summary."""
    try:
        if not stat.S_ISSOCK(os.stat(socket_path).st_mode):
            raise Unhealthy(f"{socket_path} is not a unix socket")
    except FileNotFoundError:
        raise Unhealthy(f"socket {socket_path} does not exist (plugin not running?)") from None
    except OSError as exc:
        raise Unhealthy(f"cannot stat {socket_path}: {exc.strerror}") from None

    import grpc  # noqa: PLC0415
    from grpc_health.v1 import health_pb2, health_pb2_grpc  # noqa: PLC0415

    from ..protos import kms_v1beta1_pb2, kms_v1beta1_pb2_grpc, kms_v2_pb2, kms_v2_pb2_grpc  # noqa: PLC0415

    deadline = time.monotonic() + timeout

    def remaining() -> float:
        left = deadline - time.monotonic()
        if left <= 0:
            raise Unhealthy(f"timed out after {timeout:g}s")
        return left

    with grpc.insecure_channel(f"unix:{socket_path}") as channel:
        try:
            health = health_pb2_grpc.HealthStub(channel).Check(
                health_pb2.HealthCheckRequest(service=""), timeout=remaining()
            )
            if health.status != health_pb2.HealthCheckResponse.SERVING:
                raise Unhealthy(
                    f"grpc health: {health_pb2.HealthCheckResponse.ServingStatus.Name(health.status)}"
                )
            version = kms_v1beta1_pb2_grpc.KeyManagementServiceStub(channel).Version(
                kms_v1beta1_pb2.VersionRequest(version="v1beta1"), timeout=remaining()
            )
            if version.version != "v1beta1":
                raise Unhealthy(f"v1beta1 Version answered version {version.version!r}")
            if not deep:
                summary = f"ok: {version.runtime_name} {version.runtime_version} serving on {socket_path}"
                return summary + _http_listener_note(channel, remaining())
            v2 = kms_v2_pb2_grpc.KeyManagementServiceStub(channel)
            uid = f"health-check-{uuid.uuid4()}"
            encrypted = v2.Encrypt(
                kms_v2_pb2.EncryptRequest(plaintext=PROBE_PLAINTEXT, uid=uid), timeout=remaining()
            )
            decrypted = v2.Decrypt(
                kms_v2_pb2.DecryptRequest(
                    ciphertext=encrypted.ciphertext,
                    uid=uid,
                    key_id=encrypted.key_id,
                    annotations=dict(encrypted.annotations),
                ),
                timeout=remaining(),
            )
            if decrypted.plaintext != PROBE_PLAINTEXT:
                raise Unhealthy("Encrypt/Decrypt round trip returned different data")
            return f"ok: Encrypt/Decrypt round trip with key_id {encrypted.key_id}"
        except grpc.RpcError as exc:
            code = exc.code()
            detail = " ".join((exc.details() or "").split())
            if code is grpc.StatusCode.DEADLINE_EXCEEDED:
                raise Unhealthy(f"timed out after {timeout:g}s ({detail})") from None
            raise Unhealthy(f"{code.name if code else 'UNKNOWN'}: {detail}") from None


def _http_listener_note(channel: grpc.Channel, timeout: float) -> str:
    """A warning when the plugin reports its HTTP listener unbound; "" otherwise (also when it is off)."""
    import grpc  # noqa: PLC0415
    from grpc_health.v1 import health_pb2, health_pb2_grpc  # noqa: PLC0415

    try:
        answer = health_pb2_grpc.HealthStub(channel).Check(
            health_pb2.HealthCheckRequest(service=HTTP_SERVICE), timeout=timeout
        )
    except grpc.RpcError:
        return ""
    if answer.status == health_pb2.HealthCheckResponse.NOT_SERVING:
        return "; warning: HTTP listener (--metrics-address) not serving, see the plugin's log"
    return ""


def run_health_check(argv: Sequence[str]) -> int:
    args = _parser().parse_args(argv)
    try:
        timeout = parse_duration(args.timeout)
    except ConfigError as exc:
        print(f"tke-kms-plugin health-check: error: {exc}", file=sys.stderr)
        return 2
    try:
        summary = check(args.unix_socket, deep=args.deep, timeout=timeout or 5.0)
    except Unhealthy as exc:
        print(f"unhealthy: {exc}", file=sys.stderr)
        return 1
    print(summary)
    return 0
