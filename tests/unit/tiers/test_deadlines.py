"""Round-trip deadlines on one timer (tiers/deadlines.py): an expired call raises TimeoutError where it waits, a
cancellation from elsewhere stays a CancelledError, a call that ended is never cancelled later, and calls one
after another share one timer instead of setting one each."""

from __future__ import annotations

import asyncio

import pytest

from tierstore.tiers.deadlines import Deadlines


async def _wait(deadlines: Deadlines, budget: float, wait: float) -> str:
    loop = asyncio.get_running_loop()
    call = deadlines.start(loop, loop.time() + budget)
    try:
        await asyncio.sleep(wait)
    except BaseException as exc:
        deadlines.end(call, exc if isinstance(exc, asyncio.CancelledError) else None)
        raise
    deadlines.end(call)
    return "done"


async def test_an_expired_call_raises_timeout_error() -> None:
    deadlines = Deadlines()
    loop = asyncio.get_running_loop()
    began = loop.time()
    with pytest.raises(TimeoutError):
        await _wait(deadlines, 0.02, 5)
    assert 0.015 <= loop.time() - began < 1
    assert len(deadlines) == 0
    assert asyncio.current_task().cancelling() == 0  # type: ignore[union-attr]


async def test_a_call_within_its_deadline_ends_normally_and_is_never_cancelled_later() -> None:
    deadlines = Deadlines()
    assert await _wait(deadlines, 0.02, 0) == "done"
    assert len(deadlines) == 0
    await asyncio.sleep(0.05)  # past the deadline of the call that ended: the timer fires and finds nothing
    assert asyncio.current_task().cancelling() == 0  # type: ignore[union-attr]


async def test_a_cancellation_from_elsewhere_stays_a_cancellation() -> None:
    deadlines = Deadlines()
    task = asyncio.create_task(_wait(deadlines, 5, 5))
    await asyncio.sleep(0.01)
    task.cancel()
    with pytest.raises(asyncio.CancelledError):
        await task
    assert len(deadlines) == 0


async def test_each_call_has_its_own_budget_on_the_shared_timer() -> None:
    deadlines = Deadlines()
    slow = asyncio.create_task(_wait(deadlines, 0.03, 5))
    await asyncio.sleep(0.02)
    late = asyncio.create_task(_wait(deadlines, 0.03, 0.02))  # due 10 ms after slow, done before
    quick = asyncio.create_task(_wait(deadlines, 0.005, 5))  # due first: the timer is set earlier for it
    with pytest.raises(TimeoutError):
        await quick
    assert not slow.done()
    with pytest.raises(TimeoutError):
        await slow
    assert await late == "done"
    assert len(deadlines) == 0


async def test_calls_one_after_another_share_one_timer(monkeypatch: pytest.MonkeyPatch) -> None:
    deadlines = Deadlines()
    loop = asyncio.get_running_loop()
    timers = 0
    call_at = loop.call_at

    def counting(*args: object, **kwargs: object) -> asyncio.TimerHandle:
        nonlocal timers
        timers += 1
        return call_at(*args, **kwargs)  # type: ignore[arg-type]

    monkeypatch.setattr(loop, "call_at", counting)
    for _ in range(100):
        assert await _wait(deadlines, 10, 0) == "done"
    assert timers == 1


async def test_moving_a_deadline_earlier_sets_the_timer_again() -> None:
    deadlines = Deadlines()
    loop = asyncio.get_running_loop()
    call = deadlines.start(loop, loop.time() + 10)
    deadlines.move(call, loop.time() + 0.01)
    began = loop.time()
    with pytest.raises(asyncio.CancelledError) as caught:
        await asyncio.sleep(5)
    assert loop.time() - began < 1
    with pytest.raises(TimeoutError):
        deadlines.end(call, caught.value)


def test_a_new_loop_starts_afresh() -> None:
    deadlines = Deadlines()
    for _ in range(2):  # the first loop's timer never fires once that loop is closed
        with pytest.raises(TimeoutError):
            asyncio.run(_wait(deadlines, 0.01, 5))


async def test_an_expired_call_that_turns_the_cancellation_into_another_error_leaves_the_task_uncancelled() -> None:
    # A client library may catch the CancelledError and raise its own error: the deadline's cancellation
    # request is withdrawn all the same (as asyncio.timeout() does), so a later timeout or TaskGroup in the same
    # task is not confused by a stale "cancelling" count.
    deadlines = Deadlines()
    loop = asyncio.get_running_loop()
    call = deadlines.start(loop, loop.time() + 0.01)
    try:
        try:
            await asyncio.sleep(5)
        except asyncio.CancelledError:
            raise ConnectionError("the library's own error") from None
    except ConnectionError:
        deadlines.end(call)
    assert call.expired
    assert asyncio.current_task().cancelling() == 0  # type: ignore[union-attr]
    async with asyncio.timeout(5):
        await asyncio.sleep(0)  # a later deadline in the same task works as usual
