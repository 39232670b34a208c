# Copyright (c) tke.kms contributors
# Apache License 2.0 (see https://www.apache.org/licenses/LICENSE-2.0)
"""Retry with capped exponential backoff and full jitter, shared by the cloud clients of this collection.

PRIVATE to the collection.
"""

from __future__ import annotations

import random
import time
import typing as t

DEFAULT_BASE_DELAY = 1.0
DEFAULT_MAX_DELAY = 20.0

T = t.TypeVar("T")


def backoff_delays(
    retries: int,
    base: float = DEFAULT_BASE_DELAY,
    cap: float = DEFAULT_MAX_DELAY,
    rand: t.Callable[[], float] = random.random,
) -> t.List[float]:
    """Delays before each retry: full jitter over base * 2**n, capped, so throttled clients spread out."""
    return [rand() * min(cap, base * (2**attempt)) for attempt in range(retries)]


def call_with_retries(
    call: t.Callable[[], T],
    is_retryable: t.Callable[[Exception], bool],
    delays: t.Sequence[float],
    sleep: t.Callable[[float], None] = time.sleep,
    on_retry: t.Optional[t.Callable[[Exception, int], None]] = None,
) -> T:
    """Run call(); when it raises a retryable error, sleep the next delay and try again.

    The last error is re-raised as-is once the delays are used up, and a non-retryable error immediately,
    so callers report the real cause. Unlike the SDK's StandardRetryer it does not sleep after the last try.
    """
    for attempt, delay in enumerate(delays, start=1):
        try:
            return call()
        except Exception as exc:
            if not is_retryable(exc):
                raise
            if on_retry is not None:
                on_retry(exc, attempt)
            sleep(delay)
    return call()
