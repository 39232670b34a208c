# Copyright (c) tke.kms contributors
# Apache License 2.0 (see https://www.apache.org/licenses/LICENSE-2.0)
"""The one retry policy of the collection: capped exponential backoff with full jitter, or the server's delay.

PRIVATE to the collection. Standard library only.

A caller says which errors are worth another try (is_retryable) and, optionally, how to read the delay a
server asked for from an error (server_delay: an HTTP Retry-After header, a Kubernetes Status'
details.retryAfterSeconds). That delay is used instead of the jittered one, capped at max_delay so a server
cannot stall a run for long; without one, the delays come from backoff_delays.
"""

from __future__ import annotations

import email.utils
import random
import time
import typing as t

DEFAULT_BASE_DELAY = 1.0
DEFAULT_MAX_DELAY = 20.0
# The statuses on which the apiserver puts details.retryAfterSeconds in its Status: TooManyRequests (429),
# ServerTimeout / InternalError (500), ServiceUnavailable (503) and Timeout (504) in k8s.io/apimachinery.
RETRY_AFTER_STATUSES = (429, 500, 503, 504)

T = t.TypeVar("T")


def backoff_delays(
    retries: int,
    base: float = DEFAULT_BASE_DELAY,
    cap: float = DEFAULT_MAX_DELAY,
    rand: t.Callable[[], float] = random.random,
) -> t.List[float]:
    """Delays before each retry: full jitter over base * 2**n, capped, so throttled clients spread out."""
    return [rand() * min(cap, base * (2**attempt)) for attempt in range(retries)]


def no_server_delay(_error: Exception) -> t.Optional[float]:
    return None


def call_with_retries(
    call: t.Callable[[], T],
    is_retryable: t.Callable[[Exception], bool],
    delays: t.Sequence[float],
    *,
    sleep: t.Callable[[float], None] = time.sleep,
    on_retry: t.Optional[t.Callable[[Exception, int], None]] = None,
    server_delay: t.Callable[[Exception], t.Optional[float]] = no_server_delay,
    max_delay: float = DEFAULT_MAX_DELAY,
) -> T:
    """Run call(); when it raises a retryable error, sleep and try again, once per entry of delays.

    The sleep is the server's delay for that error when server_delay finds one (capped at max_delay), the
    next of delays otherwise. The last error is re-raised as-is once the delays are used up, and a
    non-retryable error immediately, so callers report the real cause. No sleep after the last try.
    """
    for attempt, delay in enumerate(delays, start=1):
        try:
            return call()
        except Exception as exc:
            if not is_retryable(exc):
                raise
            if on_retry is not None:
                on_retry(exc, attempt)
            asked = server_delay(exc)
            sleep(min(max_delay, asked) if asked is not None else delay)
    return call()


def retry_after_header(value: t.Optional[str], now: t.Callable[[], float] = time.time) -> t.Optional[float]:
    """Seconds from an HTTP Retry-After header (delay-seconds or HTTP-date); None if absent or bad."""
    if not value:
        return None
    value = value.strip()
    if value.isdigit():
        return float(value)
    try:
        when = email.utils.parsedate_to_datetime(value)
    except (TypeError, ValueError, IndexError):
        return None
    if when is None or when.tzinfo is None:
        return None
    return max(0.0, when.timestamp() - now())


def status_retry_after(http_status: int, status: t.Optional[t.Dict[str, t.Any]]) -> t.Optional[float]:
    """Seconds from a Kubernetes Status' details.retryAfterSeconds, on the statuses that carry it."""
    if http_status not in RETRY_AFTER_STATUSES or not isinstance(status, dict):
        return None
    seconds = (status.get("details") or {}).get("retryAfterSeconds")
    if isinstance(seconds, bool) or not isinstance(seconds, (int, float)) or seconds < 0:
        return None
    return float(seconds)
