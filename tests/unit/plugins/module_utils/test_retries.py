from __future__ import annotations

import pytest
from ansible_collections.tke.kms.plugins.module_utils._retries import (
    backoff_delays,
    call_with_retries,
    retry_after_header,
    status_retry_after,
)


class Flaky:
    """Fails with the given errors in order, then returns "ok"."""

    def __init__(self, *errors: Exception) -> None:
        self.errors = list(errors)
        self.calls = 0

    def __call__(self) -> str:
        self.calls += 1
        if self.errors:
            raise self.errors.pop(0)
        return "ok"


def test_backoff_doubles_up_to_the_cap_with_full_jitter() -> None:
    assert backoff_delays(6, base=1.0, cap=10.0, rand=lambda: 1.0) == [1.0, 2.0, 4.0, 8.0, 10.0, 10.0]
    assert backoff_delays(3, base=1.0, cap=10.0, rand=lambda: 0.5) == [0.5, 1.0, 2.0]
    assert backoff_delays(0) == []


def test_retryable_errors_are_retried_until_success() -> None:
    slept: list[float] = []
    flaky = Flaky(TimeoutError("1"), TimeoutError("2"))
    result = call_with_retries(
        flaky, lambda e: isinstance(e, TimeoutError), [0.1, 0.2, 0.3], sleep=slept.append
    )
    assert result == "ok"
    assert flaky.calls == 3
    assert slept == [0.1, 0.2]


def test_the_last_error_is_raised_once_the_delays_are_used_up_without_a_final_sleep() -> None:
    slept: list[float] = []
    retried: list[int] = []
    flaky = Flaky(*(TimeoutError(str(n)) for n in range(5)))
    with pytest.raises(TimeoutError, match="2"):
        call_with_retries(
            flaky,
            lambda e: True,
            [0.1, 0.2],
            sleep=slept.append,
            on_retry=lambda error, attempt: retried.append(attempt),
        )
    assert flaky.calls == 3
    assert slept == [0.1, 0.2]
    assert retried == [1, 2]


def test_other_errors_are_raised_at_once() -> None:
    flaky = Flaky(ValueError("bad input"))
    with pytest.raises(ValueError, match="bad input"):
        call_with_retries(flaky, lambda e: isinstance(e, TimeoutError), [0.1], sleep=pytest.fail)
    assert flaky.calls == 1


class Throttled(Exception):
    def __init__(self, retry_after: float | None) -> None:
        super().__init__("throttled")
        self.retry_after = retry_after


def test_the_server_delay_replaces_the_backoff_and_is_capped() -> None:
    slept: list[float] = []
    flaky = Flaky(Throttled(3), Throttled(None), Throttled(600))
    result = call_with_retries(
        flaky,
        lambda e: isinstance(e, Throttled),
        [0.1, 0.2, 0.3],
        sleep=slept.append,
        server_delay=lambda e: e.retry_after,
        max_delay=10.0,
    )
    assert (result, slept) == ("ok", [3.0, 0.2, 10.0])


def test_a_non_retryable_error_is_raised_at_once_even_when_the_server_names_a_delay() -> None:
    flaky = Flaky(ValueError("bad input"))
    with pytest.raises(ValueError, match="bad input"):
        call_with_retries(flaky, lambda e: False, [0.1], sleep=pytest.fail, server_delay=lambda e: 1.0)
    assert flaky.calls == 1


@pytest.mark.parametrize(
    ("header", "seconds"),
    [
        ("5", 5.0),
        (" 0 ", 0.0),
        ("Thu, 01 Jan 1970 00:01:40 GMT", 40.0),  # an HTTP-date: 100 s after the epoch, "now" is 60
        ("Thu, 01 Jan 1970 00:00:10 GMT", 0.0),  # a date in the past: no wait
        ("soon", None),
        ("-1", None),
        ("", None),
        (None, None),
    ],
)
def test_retry_after_headers(header: str | None, seconds: float | None) -> None:
    assert retry_after_header(header, now=lambda: 60.0) == seconds


@pytest.mark.parametrize(
    ("http_status", "status", "seconds"),
    [
        (429, {"reason": "TooManyRequests", "details": {"retryAfterSeconds": 1}}, 1.0),
        (500, {"reason": "ServerTimeout", "details": {"retryAfterSeconds": 2}}, 2.0),
        (503, {"reason": "ServiceUnavailable", "details": {"retryAfterSeconds": 3}}, 3.0),
        (504, {"reason": "Timeout", "details": {"retryAfterSeconds": 4}}, 4.0),
        (409, {"reason": "Conflict", "details": {"retryAfterSeconds": 5}}, None),  # not one that carries it
        (429, {"reason": "TooManyRequests"}, None),
        (429, {"details": {"retryAfterSeconds": "1"}}, None),
        (429, {"details": {"retryAfterSeconds": True}}, None),
        (429, {}, None),
    ],
)
def test_retry_after_seconds_of_a_kubernetes_status(
    http_status: int, status: dict, seconds: float | None
) -> None:
    assert status_retry_after(http_status, status) == seconds
