"""Assemble and run one plugin: the gRPC server (KMS v1beta1 + v2 + grpc.health.v1) on the unix socket,
the background tasks (DescribeKey probes, credential refresh), and the HTTP probe/metrics listener.

Why grpc.aio and not the thread-pool server: the two measured the same for cheap calls here, but with a slow
backend a thread-pool server only has as many calls in progress as it has threads, and Status, Version,
health checks and decrypt-cache hits queue behind calls waiting on Tencent. On the event loop those answer
at once while the Tencent calls run on their own worker threads (docs/plugin.md has the numbers).
"""

from __future__ import annotations

import asyncio
import contextlib
import logging
import os
import random
import signal
import time
from collections.abc import Awaitable, Callable
from concurrent.futures import ThreadPoolExecutor

import grpc
from grpc_health.v1 import health_pb2
from grpc_health.v1.health import aio as grpc_health_aio

from ..protos import kms_v1beta1_pb2, kms_v2_pb2
from . import unix_socket
from .cache import DecryptCache
from .config import Config, split_host_port
from .credentials import CredentialError, CredentialManager, CredentialSource
from .health import HealthState, Snapshot
from .http_endpoints import ProbeServer
from .metrics import Metrics
from .retry import CallRunner
from .rpc import add_service
from .service import KmsService
from .servicer_v1 import KeyManagementServiceV1
from .servicer_v2 import KeyManagementServiceV2
from .tencent import TencentClient
from .tencent_service import TencentKmsService

log = logging.getLogger(__name__)
KMS_SERVICE_NAMES = ("v1beta1.KeyManagementService", "v2.KeyManagementService")
CREDENTIAL_CHECK_INTERVAL = 10.0  # how often a credentials file is checked for changes
RECHECK_GAP = 0.5  # at most two credential re-reads per second after Tencent rejected them
HEARTBEAT_INTERVAL = 1.0
HTTP_SERVICE = "tke-kms-plugin.http"  # grpc.health.v1 name of the HTTP listener: NOT_SERVING while unbound
HTTP_RETRY_FIRST = 1.0  # binding --metrics-address is retried after 1 s, then backing off up to 30 s
HTTP_RETRY_MAX = 30.0
# The largest request kube-apiserver sends is a v2 Decrypt: 1 KiB ciphertext + 1 KiB key_id + 32 KiB of
# annotations + a uid, about 35 KiB with framing (v1: a ciphertext under 8 KiB). 64 KiB never refuses one
# of those and keeps gRPC's 4 MiB default from buffering junk before the handler can refuse it.
MAX_RECEIVE_MESSAGE = 64 * 1024

Background = Callable[[], Awaitable[None]]


class PluginServer:
    """One plugin instance around any KmsService (Tencent in production, a no-op one in the benchmark)."""

    def __init__(
        self,
        config: Config,
        service: KmsService,
        health: HealthState,
        metrics: Metrics,
        background: list[Background] | None = None,
    ) -> None:
        self.config = config
        self.service = service
        self.health = health
        self.metrics = metrics
        self.background = background or []
        self.heartbeat = time.monotonic()
        self.probe_server: ProbeServer | None = None
        self._grpc: grpc.aio.Server | None = None
        self._grpc_health = grpc_health_aio.HealthServicer()
        self._tasks: list[asyncio.Task[None]] = []
        self._socket_stat: os.stat_result | None = None
        self._lock = unix_socket.SocketLock(config.unix_socket)
        self._http_failures = 0
        health.subscribe(self._on_health_change)

    async def start(self) -> None:
        """Take the socket (lock, stale check, bind, secure), then the HTTP listener and background tasks.
        Nothing is left behind when this fails: no socket, no lock, no server."""
        unix_socket.ensure_parent(self.config.unix_socket)
        self._lock.acquire()
        try:
            await self._start_grpc()
        except BaseException:
            await self._abandon_start()
            raise
        await self._grpc_health.set("", health_pb2.HealthCheckResponse.SERVING)
        await self._publish_kms_health()
        self._tasks = [asyncio.create_task(self._beat(), name="heartbeat")]
        if self.config.metrics_address and not await self._start_http_listener():
            self._tasks.append(asyncio.create_task(self._retry_http_listener(), name="http-listener"))
        self._tasks += [
            asyncio.create_task(self._guarded(job), name=f"background-{i}")
            for i, job in enumerate(self.background)
        ]

    async def _start_grpc(self) -> None:
        path = self.config.unix_socket
        unix_socket.clear_stale(path)
        server = grpc.aio.server(options=[("grpc.max_receive_message_length", MAX_RECEIVE_MESSAGE)])
        self._grpc = server
        v1_servicer = KeyManagementServiceV1(self.service, self.metrics)
        v2_servicer = KeyManagementServiceV2(self.service, self.metrics, self.config.v2_key_id)
        for descriptor, servicer in (
            (kms_v1beta1_pb2.DESCRIPTOR.services_by_name["KeyManagementService"], v1_servicer),
            (kms_v2_pb2.DESCRIPTOR.services_by_name["KeyManagementService"], v2_servicer),
            (health_pb2.DESCRIPTOR.services_by_name["Health"], self._grpc_health),
        ):
            add_service(server, descriptor, servicer, self.metrics)
        with unix_socket.restrictive_umask():
            server.add_insecure_port(f"unix:{path}")
            await server.start()
        self._socket_stat = os.lstat(path)
        unix_socket.secure(path, self.config.socket_group)

    async def _abandon_start(self) -> None:
        if self._grpc is not None:
            await self._grpc.stop(None)
            self._grpc = None
        unix_socket.remove_if_ours(self.config.unix_socket, self._socket_stat)
        self._lock.release()

    async def _start_http_listener(self) -> bool:
        """Bind --metrics-address. It is optional for kube-apiserver: a failure is reported (grpc health,
        metrics, one log line), never fatal."""
        host, port = split_host_port(self.config.metrics_address or "")
        try:
            probe_server = ProbeServer(host, port, self.metrics, self.health.snapshot, lambda: self.heartbeat)
        except OSError as exc:
            self.metrics.http_bind_failures.inc()
            if not self._http_failures:
                self.metrics.http_listener_up.set(0)
                await self._grpc_health.set(HTTP_SERVICE, health_pb2.HealthCheckResponse.NOT_SERVING)
                log.error(
                    "HTTP listener not started; the KMS socket serves without it, binding is retried",
                    extra={
                        "fields": {"address": self.config.metrics_address, "error": exc.strerror or str(exc)}
                    },
                )
            self._http_failures += 1
            return False
        probe_server.start()
        self.probe_server = probe_server
        self.metrics.http_listener_up.set(1)
        await self._grpc_health.set(HTTP_SERVICE, health_pb2.HealthCheckResponse.SERVING)
        if self._http_failures:
            log.info(
                "HTTP listener started",
                extra={"fields": {"address": probe_server.address, "failed_attempts": self._http_failures}},
            )
        return True

    async def _retry_http_listener(self) -> None:
        delay = HTTP_RETRY_FIRST
        while True:
            await asyncio.sleep(delay)
            if await self._start_http_listener():
                return
            delay = min(delay * 2, HTTP_RETRY_MAX)

    async def stop(self) -> None:
        """Stop accepting calls, let in-flight ones finish (bounded by shutdown_grace), clean up."""
        await self._grpc_health.enter_graceful_shutdown()
        if self._grpc is not None:
            await self._grpc.stop(grace=self.config.shutdown_grace)
        for task in self._tasks:
            task.cancel()
        await asyncio.gather(*self._tasks, return_exceptions=True)
        if self.probe_server is not None:
            self.probe_server.stop()
        unix_socket.remove_if_ours(self.config.unix_socket, self._socket_stat)
        self._lock.release()

    async def _beat(self) -> None:
        while True:
            self.heartbeat = time.monotonic()
            await asyncio.sleep(HEARTBEAT_INTERVAL)

    async def _guarded(self, job: Background) -> None:
        """A background job that fails is logged and restarted, never allowed to end the process."""
        while True:
            try:
                await job()
                return
            except asyncio.CancelledError:
                raise
            except Exception:
                log.exception("background task failed; restarting it")
                await asyncio.sleep(1.0)

    def _on_health_change(self, old: Snapshot, new: Snapshot) -> None:
        self.metrics.set_health(new)
        level = logging.INFO if new.ok else logging.WARNING
        log.log(
            level,
            "KMS health changed",
            extra={"fields": {"from": old.state.value, "to": new.state.value, "reason": new.reason}},
        )
        if self._grpc is not None:
            task = asyncio.get_running_loop().create_task(self._publish_kms_health())
            self._tasks.append(task)
            task.add_done_callback(self._tasks.remove)

    async def _publish_kms_health(self) -> None:
        """grpc.health.v1 for the KMS services follows the cached health (read now: changes may queue up)."""
        snapshot = self.health.snapshot()
        status = (
            health_pb2.HealthCheckResponse.SERVING
            if snapshot.ok
            else health_pb2.HealthCheckResponse.NOT_SERVING
        )
        for name in KMS_SERVICE_NAMES:
            await self._grpc_health.set(name, status)


async def keep_credentials_fresh(
    manager: CredentialManager,
    health: HealthState,
    metrics: Metrics,
    executor: ThreadPoolExecutor,
    recheck: asyncio.Event,
) -> None:
    """Fetch credentials before they expire, when their file changes, or (temporary ones) when Tencent
    rejected them (`recheck`); report failures and back off."""
    loop = asyncio.get_running_loop()
    failures = 0
    while True:
        rejected = recheck.is_set()
        recheck.clear()
        if manager.needs_refresh(time.time()) or (rejected and manager.source.remote):
            try:
                fresh = await loop.run_in_executor(executor, manager.refresh)
            except CredentialError as exc:
                failures += 1
                metrics.credential_refreshes.labels("failure").inc()
                reason = f"cannot refresh Tencent credentials ({manager.source.name}): {exc}"
                health.credentials_failing(reason, expired=manager.expired(time.time()))
                log.warning(
                    "credential refresh failed",
                    extra={"fields": {"source": manager.source.name, "error": str(exc), "attempt": failures}},
                )
                await asyncio.sleep(min(10.0, 0.5 * 2 ** min(failures, 5)) * random.uniform(0.5, 1.0))  # noqa: S311
                continue
            failures = 0
            metrics.credential_refreshes.labels("success").inc()
            metrics.credential_expiry.set(fresh.expires_at or 0)
            health.credentials_refreshed()
            log.info(
                "credentials loaded",
                extra={"fields": {"source": manager.source.name, "expires_at": fresh.expires_at}},
            )
        current = manager.current
        refresh_at = current.refresh_at() if current else None
        wait = CREDENTIAL_CHECK_INTERVAL
        if refresh_at is not None:
            wait = min(wait, refresh_at - time.time())
        with contextlib.suppress(TimeoutError):
            await asyncio.wait_for(recheck.wait(), timeout=max(wait, 0.05))
            await asyncio.sleep(RECHECK_GAP)  # rejections come in bursts: one re-read per burst


def build_tencent_plugin(config: Config, source: CredentialSource) -> PluginServer:
    """The production wiring. Local credentials (env, file) must already load: CredentialError otherwise."""
    metrics = Metrics()
    health = HealthState()
    manager = CredentialManager(source)
    if not source.remote:
        credentials = manager.refresh()
        metrics.credential_expiry.set(credentials.expires_at or 0)
    executor = ThreadPoolExecutor(max_workers=config.max_inflight + 2, thread_name_prefix="tencent-kms")
    client = TencentClient(manager, config.region, config.endpoint, metrics)
    runner = CallRunner(
        executor,
        metrics,
        qps=config.qps,
        max_inflight=config.max_inflight,
        max_attempts=config.max_attempts,
        default_budget=config.kms_timeout,
    )
    cache = DecryptCache(config.decrypt_cache_size, config.decrypt_cache_ttl)
    recheck_credentials = asyncio.Event()
    service = TencentKmsService(
        config.key_id,
        client=client,
        runner=runner,
        health=health,
        metrics=metrics,
        cache=cache,
        on_credentials_rejected=recheck_credentials.set,
    )

    async def probes() -> None:
        await service.run_probes(config.health_interval, config.health_retry_interval)

    async def credentials() -> None:
        await keep_credentials_fresh(manager, health, metrics, executor, recheck_credentials)

    return PluginServer(config, service, health, metrics, background=[credentials, probes])


async def serve_until_signalled(plugin: PluginServer) -> None:
    """Start, log the addresses, run until SIGTERM/SIGINT, then stop gracefully."""
    loop = asyncio.get_running_loop()
    stop = asyncio.Event()
    for signum in (signal.SIGTERM, signal.SIGINT):
        loop.add_signal_handler(signum, stop.set)
    await plugin.start()
    config = plugin.config
    log.info(
        "serving",
        extra={
            "fields": {
                "socket": config.unix_socket,
                "metrics_address": plugin.probe_server.address if plugin.probe_server else None,
                "region": config.region,
                "key_id": config.key_id,
                "kms_endpoint": str(config.endpoint),
                "pid": os.getpid(),
            }
        },
    )
    await stop.wait()
    log.info(
        "stopping: finishing in-flight calls", extra={"fields": {"grace_seconds": config.shutdown_grace}}
    )
    try:
        await plugin.stop()
    except Exception:
        log.exception("error while stopping")
    log.info("stopped")
