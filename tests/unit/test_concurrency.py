"""``gather_all``: results in order, at most ``concurrency`` at once, and the first failure cancels the rest."""

from __future__ import annotations

import asyncio
import inspect
from collections.abc import Generator
from typing import Any

import pytest

from tierstore.concurrency import gather_all


async def test_results_keep_the_order_of_the_awaitables() -> None:
    async def value(v: int, delay: float) -> int:
        await asyncio.sleep(delay)
        return v

    # The first finishes last: order is the request's, not completion's.
    assert await gather_all([value(i, 0.01 * (5 - i)) for i in range(5)]) == [0, 1, 2, 3, 4]
    assert await gather_all([value(7, 0)]) == [7]
    assert await gather_all([]) == []


@pytest.mark.parametrize("limit", [1, 2, 5])
async def test_concurrency_is_bounded(limit: int) -> None:
    running = peak = 0

    async def job(i: int) -> int:
        nonlocal running, peak
        running += 1
        peak = max(peak, running)
        await asyncio.sleep(0.002)
        running -= 1
        return i

    assert await gather_all([job(i) for i in range(12)], concurrency=limit) == list(range(12))
    assert peak == limit


async def test_without_a_bound_everything_runs_at_once() -> None:
    started = 0
    gate = asyncio.Event()

    async def job() -> None:
        nonlocal started
        started += 1
        if started == 8:
            gate.set()
        await gate.wait()  # would hang if fewer than 8 ran at once

    await asyncio.wait_for(gather_all([job() for _ in range(8)]), timeout=5)


async def test_the_first_failure_cancels_the_others_before_it_propagates() -> None:
    cancelled: list[int] = []
    finished: list[int] = []

    async def slow(i: int) -> int:
        try:
            await asyncio.sleep(10)
        except asyncio.CancelledError:
            cancelled.append(i)
            raise
        finished.append(i)
        return i

    async def boom() -> int:
        await asyncio.sleep(0.001)
        raise ValueError("boom")

    with pytest.raises(ValueError, match="boom"):
        await gather_all([slow(0), boom(), slow(2)])
    await asyncio.sleep(0)  # let the cancellations be delivered
    assert sorted(cancelled) == [0, 2] and not finished


class Job:
    """An awaitable that creates its coroutine only when awaited (a queued job that never starts leaves
    nothing behind)."""

    def __init__(self, i: int, started: list[int], finished: list[int]) -> None:
        self.i, self.started, self.finished = i, started, finished

    def __await__(self) -> Generator[Any, None, int]:
        return self.run().__await__()

    async def run(self) -> int:
        self.started.append(self.i)
        if self.i == 1:
            raise RuntimeError("second fails")
        await asyncio.sleep(10)
        self.finished.append(self.i)
        return self.i


async def test_a_failure_under_a_bound_also_stops_the_queued_ones() -> None:
    started: list[int] = []
    finished: list[int] = []
    with pytest.raises(RuntimeError):
        await gather_all([Job(i, started, finished) for i in range(10)], concurrency=2)
    await asyncio.sleep(0.01)
    # The slot the failure freed may be taken before the cancellation lands; the rest never start.
    assert started[:2] == [0, 1] and len(started) <= 3 and not finished


async def test_coroutines_queued_behind_the_bound_are_closed_after_a_failure() -> None:
    async def job(i: int) -> int:
        if i == 1:
            raise RuntimeError("second fails")
        await asyncio.sleep(10)
        return i

    coros = [job(i) for i in range(10)]
    with pytest.raises(RuntimeError):
        await gather_all(coros, concurrency=2)
    await asyncio.sleep(0.01)  # the cancelled ones finish unwinding
    # None is left unstarted (which Python would report as "coroutine ... was never awaited").
    assert all(inspect.getcoroutinestate(c) == inspect.CORO_CLOSED for c in coros)
