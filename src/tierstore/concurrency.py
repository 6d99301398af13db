"""Running many awaitables at once, bounded, with no request left running after a failure."""

from __future__ import annotations

import asyncio
import inspect
from collections.abc import Awaitable, Sequence
from typing import TypeVar

__all__ = ["gather_all"]

T = TypeVar("T")


async def gather_all(coros: Sequence[Awaitable[T]], concurrency: int | None = None) -> list[T]:
    """Run ``coros`` concurrently (at most ``concurrency`` at once); results in order.

    Unlike bare ``asyncio.gather``, the first failure cancels the others before it propagates, so no
    request keeps running for a caller that has already seen the error.
    """
    if len(coros) == 1:
        return [await coros[0]]
    originals = coros
    if concurrency is not None and len(coros) > concurrency:
        sem = asyncio.Semaphore(concurrency)

        async def bounded(c: Awaitable[T]) -> T:
            async with sem:
                return await c

        coros = [bounded(c) for c in coros]
    tasks = [asyncio.ensure_future(c) for c in coros]
    try:
        return list(await asyncio.gather(*tasks))
    except BaseException:
        for t in tasks:
            t.cancel()
        for c in originals:  # queued behind the bound and never started: close them, nothing awaits them now
            if inspect.iscoroutine(c) and inspect.getcoroutinestate(c) == inspect.CORO_CREATED:
                c.close()
        raise
