from __future__ import annotations

import pytest
from ansible_collections.tke.kms.plugins.module_utils._retries import backoff_delays, call_with_retries


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
