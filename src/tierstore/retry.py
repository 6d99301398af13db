"""Capped exponential backoff with full jitter, for every backend that retries.

``delay(n) = uniform(0, min(cap, base * 2**n))`` for the ``n``-th retry (0-based). Full jitter spreads clients
that failed together over the whole window. In AWS's simulation of 100 clients contending for one resource,
full jitter finished in about 795 calls and 4.9 s where exponential backoff without jitter took about 1,854
calls and 63 s: less than half the calls, a tenth of the time
(https://aws.amazon.com/blogs/architecture/exponential-backoff-and-jitter/).
"""

from __future__ import annotations

import asyncio
import random
from collections.abc import Awaitable, Callable
from dataclasses import dataclass
from typing import TypeVar

from tierstore.errors import ConfigError

__all__ = ["Backoff", "retry_async"]

T = TypeVar("T")


@dataclass(frozen=True, slots=True, kw_only=True)
class Backoff:
    """``attempts``: calls in total, the first included. ``base``/``cap``: seconds."""

    base: float = 0.025
    cap: float = 1.0
    attempts: int = 8

    def __post_init__(self) -> None:
        if self.base <= 0 or self.cap < self.base or self.attempts < 1:
            raise ConfigError("Backoff needs 0 < base <= cap and attempts >= 1")

    def bound(self, retry: int) -> float:
        """The upper bound of the delay before retry number ``retry`` (0-based)."""
        if retry >= 60:  # 2**60 * base is past any sane cap; avoid float overflow
            return self.cap
        return min(self.cap, self.base * float(2**retry))

    def delay(self, retry: int, rand: Callable[[], float] = random.random) -> float:
        """A delay drawn uniformly from ``[0, bound(retry)]`` (``rand`` returns a float in ``[0, 1)``)."""
        return float(rand()) * self.bound(retry)


async def retry_async(
    call: Callable[[], Awaitable[T]],
    *,
    retryable: Callable[[BaseException], bool],
    backoff: Backoff,
    sleep: Callable[[float], Awaitable[object]] = asyncio.sleep,
    on_retry: Callable[[BaseException, float], object] | None = None,
) -> T:
    """``await call()`` until it succeeds, raises something not ``retryable``, or the attempts run out
    (then the last error is raised)."""
    retry = 0
    while True:
        try:
            return await call()
        except Exception as exc:
            if retry + 1 >= backoff.attempts or not retryable(exc):
                raise
            pause = backoff.delay(retry)
            if on_retry is not None:
                on_retry(exc, pause)
            await sleep(pause)
            retry += 1
