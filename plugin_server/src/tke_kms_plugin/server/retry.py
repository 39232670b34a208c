"""Run one logical Tencent call: admission (QPS pacer, in-flight cap), bounded jittered retries, and a
per-attempt timeout derived from the caller's remaining deadline.

The SDK's own StandardRetryer is not used: it sleeps 1, 2, 4 s between attempts (longer than kube-apiserver's
whole 3 s deadline) and sleeps again after the last failure.
"""

from __future__ import annotations

import asyncio
import logging
import random
import time
from collections.abc import Callable
from concurrent.futures import Executor
from typing import TypeVar

from .errors import KmsError, deadline_exceeded, is_timeout
from .limiter import InflightCap, RatePacer
from .metrics import Metrics

log = logging.getLogger(__name__)
T = TypeVar("T")

MIN_ATTEMPT = 0.05  # do not start an attempt with less time than this left
REPLY_MARGIN = 0.02  # an attempt times out this long before the deadline, so the answer still arrives
BACKOFF_BASE = 0.05
BACKOFF_CAP = 0.8


def backoff_delay(attempt: int) -> float:
    """Full jitter: uniform in [0, min(cap, base * 2**(attempt-1))]."""
    return random.uniform(0, min(BACKOFF_CAP, BACKOFF_BASE * 2 ** (attempt - 1)))  # noqa: S311


class CallRunner:
    def __init__(
        self,
        executor: Executor,
        metrics: Metrics,
        *,
        qps: float,
        max_inflight: int,
        max_attempts: int,
        default_budget: float,
    ) -> None:
        self.executor = executor
        self.metrics = metrics
        self.qps = qps
        self.pacers: dict[str, RatePacer] = {}  # Tencent's quota is per API: one pacer per action
        self.inflight = InflightCap(max_inflight)
        self.max_attempts = max(1, max_attempts)
        self.default_budget = default_budget

    async def run(self, action: str, call: Callable[[float], T], deadline: float | None, uid: str) -> T:
        """call(timeout_seconds) runs on a worker thread and raises KmsError. Returns its result or raises
        the last KmsError (DEADLINE_EXCEEDED when time ran out)."""
        end = deadline if deadline is not None else time.monotonic() + self.default_budget
        attempt = 0
        while True:
            attempt += 1
            try:
                return await self._attempt(action, call, end)
            except KmsError as error:
                if is_timeout(error) and end - time.monotonic() < MIN_ATTEMPT:
                    error = deadline_exceeded(f"Tencent KMS {action} did not answer before the deadline")
                final = not error.retryable or attempt >= self.max_attempts
                delay = 0.0 if final else backoff_delay(attempt)
                final = final or time.monotonic() + delay + MIN_ATTEMPT > end
                # One WARNING per failed call; the attempts that were retried only at DEBUG.
                log.log(
                    logging.WARNING if final else logging.DEBUG,
                    "Tencent KMS call failed" if final else "Tencent KMS attempt failed; retrying",
                    extra={
                        "fields": {
                            "uid": uid,
                            "action": action,
                            "attempt": attempt,
                            "grpc_code": error.code.name,
                            "tencent_code": error.tencent_code,
                            "request_id": error.request_id,
                            "error": error.message,
                        }
                    },
                )
                if final:
                    raise error from None
                self.metrics.retries.labels(action).inc()
                await asyncio.sleep(delay)

    async def _attempt(self, action: str, call: Callable[[float], T], end: float) -> T:
        if end - time.monotonic() < MIN_ATTEMPT:
            raise deadline_exceeded("deadline too close to call Tencent KMS")
        pacer = self.pacers.get(action)
        if pacer is None:
            pacer = self.pacers[action] = RatePacer(self.qps)
        try:
            waited = await pacer.wait(end - MIN_ATTEMPT)
        except KmsError:
            self.metrics.limiter_rejections.labels("qps").inc()
            raise
        self.metrics.limiter_wait.observe(waited)
        try:
            await self.inflight.acquire(end - MIN_ATTEMPT - time.monotonic())
        except KmsError:
            self.metrics.limiter_rejections.labels("inflight").inc()
            raise
        self.metrics.tencent_inflight.inc()
        future = asyncio.get_running_loop().run_in_executor(
            self.executor, call, max(end - time.monotonic() - REPLY_MARGIN, MIN_ATTEMPT / 2)
        )
        future.add_done_callback(self._release)
        try:
            # shield: if the caller goes away the thread runs on to its own timeout, then frees the slot.
            return await asyncio.wait_for(asyncio.shield(future), timeout=max(end - time.monotonic(), 0))
        except TimeoutError:
            raise deadline_exceeded() from None

    def _release(self, future: asyncio.Future) -> None:
        self.metrics.tencent_inflight.dec()
        self.inflight.release()
        if not future.cancelled():
            future.exception()  # retrieved here: an attempt abandoned at its deadline must not warn later
