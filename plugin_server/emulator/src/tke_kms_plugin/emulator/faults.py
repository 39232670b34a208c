"""Fault injection and call counting, keyed by action name ("*" = every action without its own rule)."""

from __future__ import annotations

import math
import random
import threading
import time
from collections import Counter
from dataclasses import asdict, dataclass
from typing import Any

ANY_ACTION = "*"


@dataclass(frozen=True, slots=True)
class Latency:
    fixed_ms: float
    random_ms: float


@dataclass(frozen=True, slots=True)
class InjectedError:
    code: str
    rate: float
    message: str
    http_status: int | None  # set: answer this HTTP status (the SDK reports ServerNetworkError)


class TokenBucket:
    """At most `qps` calls per second on average, with bursts of up to one second's worth."""

    def __init__(self, qps: float) -> None:
        self.qps = qps
        self.capacity = max(qps, 1.0)
        self.tokens = self.capacity
        self.updated = time.monotonic()

    def take(self) -> bool:
        now = time.monotonic()
        self.tokens = min(self.capacity, self.tokens + (now - self.updated) * self.qps)
        self.updated = now
        if self.tokens >= 1.0:
            self.tokens -= 1.0
            return True
        return False


def _check_action(action: str) -> str:
    if not isinstance(action, str) or not action:
        raise ValueError("action must be an action name such as 'Decrypt', or '*'")
    return action


def _check_non_negative(name: str, value: float) -> float:
    if isinstance(value, bool) or not isinstance(value, int | float) or not math.isfinite(value) or value < 0:
        raise ValueError(f"{name} must be a non-negative number, got {value!r}")
    return float(value)


class Faults:
    def __init__(self) -> None:
        self._lock = threading.Lock()
        self._random = random.Random()  # noqa: S311 - fault timing, not secrets
        self._latency: dict[str, Latency] = {}
        self._errors: dict[str, InjectedError] = {}
        self._throttles: dict[str, float] = {}
        self._buckets: dict[str, TokenBucket] = {}
        self._counts: Counter[str] = Counter()

    # -- configuration ---------------------------------------------------------------------------------

    def set_latency(self, action: str = ANY_ACTION, fixed_ms: float = 0, random_ms: float = 0) -> None:
        """Delay every reply to `action` by fixed_ms plus a uniform 0..random_ms; zeros remove the rule."""
        latency = Latency(
            _check_non_negative("fixed_ms", fixed_ms), _check_non_negative("random_ms", random_ms)
        )
        with self._lock:
            if latency.fixed_ms or latency.random_ms:
                self._latency[_check_action(action)] = latency
            else:
                self._latency.pop(_check_action(action), None)

    def set_error(
        self,
        action: str,
        code: str,
        rate: float = 1.0,
        message: str | None = None,
        http_status: int | None = None,
    ) -> None:
        """Answer this fraction of calls to `action` with error `code` instead of running them."""
        if not isinstance(code, str) or not code:
            raise ValueError("code must be a Tencent error code such as 'InternalError'")
        if _check_non_negative("rate", rate) > 1:
            raise ValueError(f"rate must be between 0 and 1, got {rate!r}")
        if http_status is not None and (
            isinstance(http_status, bool) or not isinstance(http_status, int) or not 400 <= http_status <= 599
        ):
            raise ValueError(f"http_status must be an HTTP error status 400-599, got {http_status!r}")
        error = InjectedError(code, float(rate), message or f"Injected fault: {code}.", http_status)
        with self._lock:
            self._errors[_check_action(action)] = error

    def set_throttle(self, action: str, qps: float | None) -> None:
        """Answer RequestLimitExceeded above `qps` calls per second to `action` (each action counted on its
        own, also for "*"); None or 0 removes the limit."""
        _check_action(action)
        with self._lock:
            if qps:
                self._throttles[action] = _check_non_negative("qps", qps)
            else:
                self._throttles.pop(action, None)
            self._buckets.clear()

    def reset(self) -> None:
        with self._lock:
            self._latency.clear()
            self._errors.clear()
            self._throttles.clear()
            self._buckets.clear()

    def reset_counts(self) -> None:
        with self._lock:
            self._counts.clear()

    def describe(self) -> dict[str, Any]:
        with self._lock:
            return {
                "latency": {action: asdict(rule) for action, rule in self._latency.items()},
                "errors": {action: asdict(rule) for action, rule in self._errors.items()},
                "throttles": dict(self._throttles),
            }

    # -- per request -----------------------------------------------------------------------------------

    def count(self, action: str) -> None:
        with self._lock:
            self._counts[action] += 1

    def call_counts(self) -> dict[str, int]:
        with self._lock:
            return dict(self._counts)

    def delay_seconds(self, action: str) -> float:
        with self._lock:
            rule = self._latency.get(action) or self._latency.get(ANY_ACTION)
            if rule is None:
                return 0.0
            return (rule.fixed_ms + self._random.uniform(0, rule.random_ms)) / 1000

    def throttled(self, action: str) -> bool:
        with self._lock:
            qps = self._throttles.get(action) or self._throttles.get(ANY_ACTION)
            if qps is None:
                return False
            bucket = self._buckets.get(action)
            if bucket is None:
                bucket = self._buckets[action] = TokenBucket(qps)
            return not bucket.take()

    def injected_error(self, action: str) -> InjectedError | None:
        with self._lock:
            error = self._errors.get(action) or self._errors.get(ANY_ACTION)
            if error is None or self._random.random() >= error.rate:
                return None
            return error
