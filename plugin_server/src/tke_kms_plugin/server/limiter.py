"""Client-side admission for Tencent calls: a QPS pacer and an in-flight cap.

Both run on the event loop (no locks) and both give up early when the caller's deadline cannot be met,
so a burst from kube-apiserver turns into fast RESOURCE_EXHAUSTED answers for the excess instead of
RequestLimitExceeded from Tencent or a queue of calls that are already too late.
"""

from __future__ import annotations

import asyncio
import time
from collections.abc import Callable

import grpc

from .errors import ErrorKind, KmsError


def _limited(message: str) -> KmsError:
    return KmsError(grpc.StatusCode.RESOURCE_EXHAUSTED, message, ErrorKind.TRANSIENT)


class RatePacer:
    """Never more than `qps` calls in any one-second window, with a small burst allowance.

    GCRA (virtual scheduling): calls are spaced 1/rate apart on average, and may run up to `burst` slots
    ahead of that schedule. Any one-second window then holds at most rate + burst calls, so rate + burst =
    qps bounds every window whatever algorithm the server counts with (a token bucket, fixed or sliding
    windows). A burst of 5 % of qps lets a handful of simultaneous calls go at once instead of queueing
    3 ms apart, for 5 % of the sustained rate. Slots are reserved in arrival order.
    """

    BURST_SHARE = 0.05

    def __init__(self, qps: float, clock: Callable[[], float] = time.monotonic) -> None:
        self.burst = int(qps * self.BURST_SHARE) if qps > 0 else 0
        self.rate = qps - self.burst
        # A hair over 1/rate, so float rounding never fits one call too many into a window.
        self._interval = (1.0 + 1e-6) / self.rate if qps > 0 else 0.0
        self._tolerance = self.burst * self._interval
        self._clock = clock
        self._theoretical_arrival = 0.0

    @property
    def enabled(self) -> bool:
        return self._interval > 0

    def reserve(self, latest_start: float) -> float | None:
        """Reserve the next free slot; the delay until it, or None when it starts after latest_start."""
        if not self._interval:
            return 0.0
        now = self._clock()
        arrival = max(now, self._theoretical_arrival)
        slot = max(now, arrival - self._tolerance)
        if slot > latest_start:
            return None
        self._theoretical_arrival = arrival + self._interval
        return slot - now

    async def wait(self, latest_start: float) -> float:
        """Wait for a slot; return the seconds waited. Raises RESOURCE_EXHAUSTED when it would be too late."""
        delay = self.reserve(latest_start)
        if delay is None:
            raise _limited("client-side rate limit (--qps): no Tencent KMS slot before the deadline")
        if delay > 0:
            await asyncio.sleep(delay)
        return delay


class InflightCap:
    """At most `limit` Tencent calls running at once; a slot is held until the HTTP call really ends."""

    def __init__(self, limit: int) -> None:
        self._semaphore = asyncio.Semaphore(limit)
        self.limit = limit
        self.running = 0

    async def acquire(self, timeout: float) -> None:
        if self._semaphore.locked():
            try:
                await asyncio.wait_for(self._semaphore.acquire(), timeout=max(timeout, 0.0))
            except TimeoutError:
                raise _limited(f"{self.limit} Tencent KMS calls in flight (--max-inflight)") from None
        else:
            await self._semaphore.acquire()
        self.running += 1

    def release(self) -> None:
        self.running -= 1
        self._semaphore.release()
