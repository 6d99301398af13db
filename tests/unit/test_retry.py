"""Capped exponential backoff with full jitter, and the retry loop built on it."""

from __future__ import annotations

import random

import pytest

from tierstore import ConfigError, StoreError, Throttled
from tierstore.retry import Backoff, retry_async


def test_bounds_double_from_base_up_to_the_cap() -> None:
    b = Backoff(base=0.025, cap=1.0, attempts=8)
    assert [b.bound(n) for n in range(8)] == [0.025, 0.05, 0.1, 0.2, 0.4, 0.8, 1.0, 1.0]
    assert b.bound(59) == 1.0 and b.bound(60) == 1.0 and b.bound(10_000) == 1.0  # no float overflow


def test_full_jitter_stays_within_zero_and_the_bound() -> None:
    b = Backoff(base=0.01, cap=0.5)
    rng = random.Random(7)
    for n in range(12):
        delays = [b.delay(n, rng.random) for _ in range(500)]
        assert all(0.0 <= d <= b.bound(n) for d in delays)
        assert max(delays) > 0.8 * b.bound(n) and min(delays) < 0.2 * b.bound(n)  # the whole window is used
    assert b.delay(3, lambda: 0.0) == 0.0
    assert b.delay(3, lambda: 0.5) == pytest.approx(0.5 * b.bound(3))


@pytest.mark.parametrize(
    "kwargs", [{"base": 0}, {"base": -1}, {"base": 2, "cap": 1}, {"attempts": 0}]
)
def test_bad_settings_are_config_errors(kwargs: dict[str, float]) -> None:
    with pytest.raises(ConfigError):
        Backoff(**kwargs)  # type: ignore[arg-type]


class Flaky:
    """Fails ``failures`` times with ``error``, then returns ``"ok"``; records the calls."""

    def __init__(self, failures: int, error: Exception) -> None:
        self.failures = failures
        self.error = error
        self.calls = 0

    async def __call__(self) -> str:
        self.calls += 1
        if self.calls <= self.failures:
            raise self.error
        return "ok"


def retryable(exc: BaseException) -> bool:
    return isinstance(exc, Throttled)


async def test_retries_until_success_with_the_drawn_pauses() -> None:
    call = Flaky(3, Throttled("slow down"))
    slept: list[float] = []
    retried: list[tuple[str, float]] = []

    async def sleep(seconds: float) -> None:
        slept.append(seconds)

    backoff = Backoff(base=0.01, cap=0.04, attempts=5)
    result = await retry_async(
        call, retryable=retryable, backoff=backoff, sleep=sleep,
        on_retry=lambda exc, pause: retried.append((str(exc), pause)),
    )
    assert result == "ok" and call.calls == 4
    assert len(slept) == 3 and [p for _, p in retried] == slept  # on_retry sees each pause before the sleep
    assert all(0 <= s <= backoff.bound(n) for n, s in enumerate(slept))
    assert [m for m, _ in retried] == ["slow down"] * 3


async def test_attempts_count_the_first_call_and_the_last_error_is_raised() -> None:
    call = Flaky(10, Throttled("still throttled"))

    async def sleep(seconds: float) -> None:
        pass

    with pytest.raises(Throttled, match="still throttled"):
        await retry_async(call, retryable=retryable, backoff=Backoff(attempts=3), sleep=sleep)
    assert call.calls == 3
    once = Flaky(10, Throttled("x"))
    with pytest.raises(Throttled):
        await retry_async(once, retryable=retryable, backoff=Backoff(attempts=1), sleep=sleep)
    assert once.calls == 1


async def test_errors_that_are_not_retryable_pass_through_at_once() -> None:
    call = Flaky(1, StoreError("broken"))
    retried: list[BaseException] = []

    async def sleep(seconds: float) -> None:
        raise AssertionError("must not sleep")

    with pytest.raises(StoreError, match="broken") as info:
        await retry_async(call, retryable=retryable, backoff=Backoff(), sleep=sleep,
                          on_retry=lambda exc, pause: retried.append(exc))
    assert info.value is call.error and call.calls == 1 and not retried


async def test_the_default_sleep_really_waits() -> None:
    call = Flaky(1, Throttled("x"))
    assert await retry_async(call, retryable=retryable, backoff=Backoff(base=0.001, cap=0.001)) == "ok"
    assert call.calls == 2
