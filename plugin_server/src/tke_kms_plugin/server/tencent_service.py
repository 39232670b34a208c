"""KmsService backed by Tencent Cloud KMS.

Runs on the event loop; the SDK calls themselves run on worker threads through CallRunner. Adds to the
plain calls: the decrypt cache (with identical concurrent Decrypts joined into one Tencent call), the
health state fed by every outcome, and the background DescribeKey probe.

A joined Decrypt runs with the deadline of the caller that started it. When it fails for lack of time (its
deadline, or no limiter slot before it) a caller whose own deadline is later starts a new call with the time
it has left, so kube-apiserver's 3 s callers never inherit the failure of a shorter one.
"""

from __future__ import annotations

import asyncio
import logging
import math
import time
from collections.abc import Callable
from dataclasses import dataclass
from functools import partial

import grpc

from .cache import DecryptCache
from .errors import ErrorKind, KmsError, bad_input, deadline_exceeded
from .health import HealthState, Snapshot, State
from .metrics import Metrics
from .retry import MIN_ATTEMPT, CallRunner
from .service import DecryptResult, EncryptResult
from .tencent import DecryptAnswer, TencentClient

log = logging.getLogger(__name__)

MAX_PLAINTEXT = 4096  # Tencent Encrypt: raw data up to 4 KB
MAX_CIPHERTEXT = 8192  # generous bound for a CiphertextBlob of 4 KB of plaintext
PROBE_BUDGET = 5.0


def ascii_blob(ciphertext: bytes) -> str:
    """The CiphertextBlob string a ciphertext carries (v1: exactly what the Go plugin stored)."""
    if not ciphertext:
        raise bad_input("ciphertext is empty")
    if len(ciphertext) > MAX_CIPHERTEXT:
        raise bad_input(f"ciphertext is {len(ciphertext)} bytes; no Tencent CiphertextBlob is that long")
    if not all(0x21 <= byte <= 0x7E for byte in ciphertext):
        raise bad_input("ciphertext is not a Tencent KMS CiphertextBlob (printable ASCII expected)")
    return ciphertext.decode("ascii")


def check_plaintext(plaintext: bytes) -> None:
    if not plaintext:
        raise bad_input("plaintext is empty")
    if len(plaintext) > MAX_PLAINTEXT:
        raise bad_input(f"plaintext is {len(plaintext)} bytes; Tencent KMS encrypts at most {MAX_PLAINTEXT}")


@dataclass(frozen=True)
class _SharedDecrypt:
    """One Tencent Decrypt that every caller asking for the same ciphertext meanwhile waits for."""

    task: asyncio.Task[DecryptAnswer]
    deadline: float  # of the caller that started it (math.inf: none)


def _latest(deadline: float | None) -> float:
    return math.inf if deadline is None else deadline


class TencentKmsService:
    def __init__(
        self,
        key_id: str,
        *,
        client: TencentClient,
        runner: CallRunner,
        health: HealthState,
        metrics: Metrics,
        cache: DecryptCache,
        on_credentials_rejected: Callable[[], None] = lambda: None,
    ) -> None:
        self.key_id = key_id
        self.client = client
        self.runner = runner
        self.health = health
        self.metrics = metrics
        self.cache = cache
        self.on_credentials_rejected = on_credentials_rejected
        self.probe_requested = asyncio.Event()
        self._decrypts_in_flight: dict[bytes, _SharedDecrypt] = {}
        health.subscribe(self._on_health_change)

    def status(self) -> Snapshot:
        return self.health.snapshot()

    # --- encrypt ------------------------------------------------------------------------------------------

    async def encrypt(self, plaintext: bytes, *, uid: str, deadline: float | None) -> EncryptResult:
        check_plaintext(plaintext)
        try:
            answer = await self.runner.run(
                "Encrypt", partial(self.client.encrypt, self.key_id, plaintext), deadline, uid
            )
        except KmsError as error:
            self._traffic_failed(error, about_configured_key=True)
            raise
        self.health.key_usable()
        ciphertext = answer.ciphertext_blob.encode("ascii")
        # A restarted kube-apiserver will ask for this DEK back: have it ready.
        if self._cache_usable():
            self.cache.put(ciphertext, plaintext, answer.key_id)
            self.metrics.cache_entries.set(len(self.cache))
        log.debug("encrypted", extra={"fields": {"uid": uid, "request_id": answer.request_id}})
        return EncryptResult(ciphertext, answer.key_id)

    # --- decrypt ------------------------------------------------------------------------------------------

    async def decrypt(self, ciphertext: bytes, *, uid: str, deadline: float | None) -> DecryptResult:
        blob = ascii_blob(ciphertext)
        if self._cache_usable():
            cached = self.cache.get(ciphertext)
            if cached is not None:
                self.metrics.cache_lookups.labels("hit").inc()
                log.debug("decrypted from cache", extra={"fields": {"uid": uid}})
                return DecryptResult(cached.plaintext, cached.tencent_key_id)
        while True:
            shared = self._shared_decrypt(ciphertext, blob, deadline, uid)
            remaining = None if deadline is None else max(deadline - time.monotonic(), 0.0)
            try:
                answer = await asyncio.wait_for(asyncio.shield(shared.task), timeout=remaining)
            except TimeoutError:
                raise deadline_exceeded() from None
            except KmsError as error:
                if self._worth_retrying(error, shared, deadline):
                    continue
                raise
            log.debug("decrypted", extra={"fields": {"uid": uid, "request_id": answer.request_id}})
            return DecryptResult(answer.plaintext, answer.key_id)

    def _shared_decrypt(
        self, ciphertext: bytes, blob: str, deadline: float | None, uid: str
    ) -> _SharedDecrypt:
        """The Tencent Decrypt in flight for this ciphertext, or a new one bound to this caller's deadline."""
        shared = self._decrypts_in_flight.get(ciphertext)
        if shared is not None:
            self.metrics.cache_lookups.labels("joined").inc()
            return shared
        self.metrics.cache_lookups.labels("miss").inc()
        task = asyncio.create_task(self._decrypt_remote(ciphertext, blob, deadline, uid))
        shared = self._decrypts_in_flight[ciphertext] = _SharedDecrypt(task, _latest(deadline))
        task.add_done_callback(partial(self._forget_decrypt, ciphertext))
        return shared

    @staticmethod
    def _worth_retrying(error: KmsError, shared: _SharedDecrypt, deadline: float | None) -> bool:
        """A joined call ran out of its first caller's time (or was refused a slot before that deadline):
        a caller with a later deadline starts its own call instead of inheriting that failure."""
        if error.kind not in (ErrorKind.DEADLINE, ErrorKind.TRANSIENT):
            return False
        mine = _latest(deadline)
        return mine > shared.deadline and mine - time.monotonic() >= MIN_ATTEMPT

    def _forget_decrypt(self, ciphertext: bytes, task: asyncio.Task[DecryptAnswer]) -> None:
        shared = self._decrypts_in_flight.get(ciphertext)
        if shared is not None and shared.task is task:
            del self._decrypts_in_flight[ciphertext]
        if not task.cancelled():
            task.exception()  # retrieved here: when every caller gave up, nothing else reads it

    async def _decrypt_remote(
        self, ciphertext: bytes, blob: str, deadline: float | None, uid: str
    ) -> DecryptAnswer:
        """One Tencent Decrypt shared by every caller asking for the same ciphertext meanwhile."""
        try:
            answer = await self.runner.run("Decrypt", partial(self.client.decrypt, blob), deadline, uid)
        except KmsError as error:
            self._traffic_failed(error, about_configured_key=False)
            raise
        self.health.traffic_succeeded()
        if self._cache_usable():
            self.cache.put(ciphertext, answer.plaintext, answer.key_id)
            self.metrics.cache_entries.set(len(self.cache))
        return answer

    # --- health -------------------------------------------------------------------------------------------

    def _cache_usable(self) -> bool:
        return self.cache.enabled and self.health.snapshot().state is not State.FAILED

    def _traffic_failed(self, error: KmsError, *, about_configured_key: bool) -> None:
        if error.kind is ErrorKind.KEY_UNUSABLE:
            # A Decrypt answer does not say which key is unusable: drop the cache, let a probe judge.
            self._drop_cache("Tencent reported an unusable key")
            if about_configured_key:
                self.health.failure(error)
        elif error.kind is not ErrorKind.BAD_INPUT:
            self.health.failure(error)
        if error.kind is not ErrorKind.BAD_INPUT:
            self.probe_requested.set()
        if error.kind is ErrorKind.AUTH:
            self.on_credentials_rejected()

    def _on_health_change(self, old: Snapshot, new: Snapshot) -> None:
        if new.key_unusable:
            self._drop_cache(new.reason)

    def _drop_cache(self, reason: str) -> None:
        dropped = self.cache.clear()
        self.metrics.cache_entries.set(0)
        if dropped:
            self.metrics.cache_drops.inc()
            log.warning("decrypt cache dropped", extra={"fields": {"entries": dropped, "reason": reason}})

    async def probe(self) -> None:
        """DescribeKey: is the configured key Enabled for ENCRYPT_DECRYPT? Feeds the health state."""
        deadline = time.monotonic() + PROBE_BUDGET
        try:
            answer = await self.runner.run(
                "DescribeKey", partial(self.client.describe_key, self.key_id), deadline, "health-probe"
            )
        except KmsError as error:
            if error.kind is not ErrorKind.BAD_INPUT:
                self.health.failure(error)
            if error.kind is ErrorKind.AUTH:
                self.on_credentials_rejected()
            return
        if answer.key_state == "Enabled" and answer.key_usage == "ENCRYPT_DECRYPT":
            self.health.key_usable()
            return
        problem = (
            f"key {self.key_id} is {answer.key_state}"
            if answer.key_state != "Enabled"
            else f"key {self.key_id} has usage {answer.key_usage}, not ENCRYPT_DECRYPT"
        )
        self.health.failure(
            KmsError(
                grpc.StatusCode.FAILED_PRECONDITION,
                f"Tencent KMS DescribeKey: {problem}",
                ErrorKind.KEY_UNUSABLE,
                request_id=answer.request_id,
            )
        )

    async def run_probes(self, interval: float, retry_interval: float) -> None:
        """Probe now, then every `interval` while healthy and every `retry_interval` otherwise; a failed
        real call asks for an early probe (never more often than every `retry_interval`)."""
        while True:
            self.probe_requested.clear()
            started = time.monotonic()
            await self.probe()
            healthy = self.health.snapshot().ok
            wait = interval if healthy else retry_interval
            try:
                await asyncio.wait_for(self.probe_requested.wait(), timeout=wait)
            except TimeoutError:
                continue
            # Requested early: still keep at least retry_interval between probes.
            await asyncio.sleep(max(0.0, started + retry_interval - time.monotonic()))
