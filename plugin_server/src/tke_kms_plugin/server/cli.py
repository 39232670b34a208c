"""`tke-kms-plugin`: the command line, a drop-in for the Go plugin's.

    tke-kms-plugin --region=R --key-id=K [--unix-socket=PATH] [--v=N] [more flags, see --help]
    tke-kms-plugin --version
    tke-kms-plugin health-check [--unix-socket=PATH] [--deep] [--timeout=5s]

Exit status: 0 after a clean SIGTERM/SIGINT; 1 when the socket cannot be taken (another plugin holds it, a
path that is not a socket) or serving fails; 2 for bad flags (an unknown --socket-group too), a missing
--key-id or unusable credentials configuration. Every start-up error is one line on stderr, no traceback.
Imports stay light until the flags are valid, so errors and the health check answer quickly.
"""

from __future__ import annotations

import argparse
import logging
import os
import sys
from collections.abc import Sequence
from importlib.metadata import version

from .config import (
    DEFAULT_METRICS_ADDRESS,
    DEFAULT_REGION,
    DEFAULT_SOCKET,
    TENCENT_QPS_QUOTA,
    Config,
    ConfigError,
    CredentialConfig,
    Endpoint,
    endpoint_from_environment,
    parse_duration,
    split_host_port,
)
from .usage import EXIT_USAGE, UsageParser

EXIT_FAILURE = 1


def _duration(text: str) -> float:
    try:
        return parse_duration(text)
    except ConfigError as exc:
        raise argparse.ArgumentTypeError(str(exc)) from None


def _non_negative_int(text: str) -> int:
    try:
        value = int(text)
    except ValueError:
        raise argparse.ArgumentTypeError(f"invalid integer {text!r}") from None
    if value < 0:
        raise argparse.ArgumentTypeError(f"{text} must not be negative")
    return value


def _non_negative_float(text: str) -> float:
    try:
        value = float(text)
    except ValueError:
        raise argparse.ArgumentTypeError(f"invalid number {text!r}") from None
    if value < 0:
        raise argparse.ArgumentTypeError(f"{text} must not be negative")
    return value


def server_parser() -> argparse.ArgumentParser:
    p = UsageParser(
        prog="tke-kms-plugin",
        description="Kubernetes KMS plugin (v1beta1 and v2 on one unix socket) for Tencent Cloud KMS. "
        "Subcommand: `tke-kms-plugin health-check --help`.",
    )
    p.add_argument("--version", action="version", version=f"%(prog)s {version('tke-kms-plugin')}")
    p.add_argument(
        "--region",
        default=os.environ.get("TENCENTCLOUD_REGION", "").strip() or DEFAULT_REGION,
        help=f"Tencent Cloud region of the key (env TENCENTCLOUD_REGION; default {DEFAULT_REGION})",
    )
    p.add_argument("--key-id", default="", help="Tencent KMS KeyId of the key encrypting DEKs (required)")
    p.add_argument("--unix-socket", default=DEFAULT_SOCKET, help="socket to serve on (default %(default)s)")
    p.add_argument("--socket-group", help="group allowed on the socket (mode 0660 instead of 0600)")
    p.add_argument(
        "--v", "-v", type=_non_negative_int, default=0, dest="v", help="log verbosity; 4+ logs every call"
    )
    p.add_argument(
        "--kms-endpoint",
        default=endpoint_from_environment(os.environ),
        help="Tencent KMS endpoint: HOST, https://HOST or http://HOST:PORT (env TENCENTCLOUD_KMS_ENDPOINT, "
        "or TKE_KMS_ENDPOINT as earlier versions; default: the SDK's kms.tencentcloudapi.com)",
    )
    p.add_argument(
        "--credentials-file", help="INI file with [default] secret_id, secret_key[, token]; mode 0600"
    )
    p.add_argument("--cvm-role", help="use the temporary credentials of this CAM role of the CVM instance")
    p.add_argument("--cvm-metadata-url", help=argparse.SUPPRESS)  # tests: a local fake metadata service
    p.add_argument("--sts-endpoint", help=argparse.SUPPRESS)  # tests: a local fake STS for TKE OIDC
    p.add_argument(
        "--qps",
        type=_non_negative_float,
        default=TENCENT_QPS_QUOTA,
        help="client-side limit of Tencent calls per second per API (default %(default)s, Tencent's quota; "
        "divide by the number of plugins sharing the account; 0: no limit)",
    )
    p.add_argument(
        "--max-inflight", type=_non_negative_int, default=32, help="Tencent calls in flight (default 32)"
    )
    p.add_argument(
        "--max-attempts", type=_non_negative_int, default=4, help="attempts per call, within its deadline"
    )
    p.add_argument(
        "--kms-timeout",
        type=_duration,
        default=10.0,
        help="time budget of a call whose caller set no deadline (10s)",
    )
    p.add_argument(
        "--decrypt-cache-size",
        type=_non_negative_int,
        default=10_000,
        help="decrypted DEKs kept in memory; 0 disables",
    )
    p.add_argument(
        "--decrypt-cache-ttl",
        type=_duration,
        default=24 * 3600.0,
        help="lifetime of a cached DEK (24h); 0 disables",
    )
    p.add_argument(
        "--metrics-address",
        default=DEFAULT_METRICS_ADDRESS,
        help="HOST:PORT for /healthz /livez /readyz /metrics (default %(default)s; empty disables)",
    )
    p.add_argument(
        "--health-interval", type=_duration, default=60.0, help="DescribeKey probe period when healthy (60s)"
    )
    p.add_argument(
        "--health-retry-interval", type=_duration, default=5.0, help="probe period while unhealthy (5s)"
    )
    p.add_argument(
        "--shutdown-grace", type=_duration, default=5.0, help="time for in-flight calls at SIGTERM (5s)"
    )
    return p


def check_socket_group(group: str) -> None:
    """Before anything is created: a bad group must not leave a socket (or a traceback) behind."""
    from .unix_socket import group_id  # noqa: PLC0415

    try:
        group_id(group)
    except KeyError:
        raise ConfigError(f"--socket-group {group!r}: no such group") from None


def config_from_args(args: argparse.Namespace) -> Config:
    key_id = args.key_id.strip()
    if not key_id:
        raise ConfigError("--key-id is required: the Tencent KMS KeyId that encrypts the DEKs")
    if not args.region.strip():
        raise ConfigError("--region must not be empty")
    if args.max_inflight < 1:
        raise ConfigError("--max-inflight must be at least 1")
    if args.metrics_address:
        split_host_port(args.metrics_address)
    if args.socket_group:
        check_socket_group(args.socket_group)
    return Config(
        key_id=key_id,
        region=args.region.strip(),
        unix_socket=args.unix_socket,
        socket_group=args.socket_group,
        endpoint=Endpoint.parse(args.kms_endpoint),
        credentials=CredentialConfig(
            credentials_file=args.credentials_file,
            cvm_role=args.cvm_role,
            cvm_metadata_url=args.cvm_metadata_url,
            sts_endpoint=args.sts_endpoint,
        ),
        verbosity=args.v,
        qps=args.qps,
        max_inflight=args.max_inflight,
        max_attempts=max(args.max_attempts, 1),
        kms_timeout=args.kms_timeout,
        decrypt_cache_size=args.decrypt_cache_size,
        decrypt_cache_ttl=args.decrypt_cache_ttl,
        metrics_address=args.metrics_address or None,
        health_interval=max(args.health_interval, 0.05),
        health_retry_interval=max(args.health_retry_interval, 0.05),
        shutdown_grace=args.shutdown_grace,
    )


def run_server(argv: Sequence[str]) -> int:
    args = server_parser().parse_args(argv)
    try:
        config = config_from_args(args)
    except ConfigError as exc:
        print(f"tke-kms-plugin: error: {exc}", file=sys.stderr)
        return EXIT_USAGE

    import asyncio  # noqa: PLC0415  (heavy imports only once the flags are valid)

    from . import app, logs  # noqa: PLC0415
    from .credentials import CredentialError, resolve_source  # noqa: PLC0415
    from .unix_socket import SocketPathError  # noqa: PLC0415

    logs.setup(config.verbosity)
    log = logging.getLogger("tke_kms_plugin")
    try:
        source = resolve_source(config.credentials, os.environ)
        plugin = app.build_tencent_plugin(config, source)
    except (ConfigError, CredentialError) as exc:
        log.error("invalid configuration", extra={"fields": {"error": str(exc)}})
        print(f"tke-kms-plugin: error: {exc}", file=sys.stderr)
        return EXIT_USAGE
    log.info("credentials source", extra={"fields": {"source": source.name}})
    try:
        asyncio.run(app.serve_until_signalled(plugin))
    except (SocketPathError, OSError, RuntimeError) as exc:
        return _cannot_serve(log, str(exc))
    except Exception as exc:  # a bug: still one line, never a traceback on an operator's console
        return _cannot_serve(log, f"unexpected {type(exc).__name__}: {exc}")
    # Served and stopped cleanly. A worker thread may still sit in an HTTP call whose caller has gone (it
    # ends at its own timeout); the interpreter would wait for it, so leave now: shutdown stays bounded.
    logging.shutdown()
    os._exit(0)


def _cannot_serve(log: logging.Logger, error: str) -> int:
    log.error("cannot serve", extra={"fields": {"error": error}})
    print(f"tke-kms-plugin: error: {error}", file=sys.stderr)
    return EXIT_FAILURE


def main(argv: Sequence[str] | None = None) -> int:
    argv = list(sys.argv[1:] if argv is None else argv)
    if argv and argv[0] == "health-check":
        from .healthcheck import run_health_check  # noqa: PLC0415

        return run_health_check(argv[1:])
    return run_server(argv)


if __name__ == "__main__":
    sys.exit(main())
