"""The fail-open bookkeeping on its own (tiers/health.py): the breaker's states with a half-open probe, and
NodeGuard's backlog — bounded, collapsing into a clear, replayed, and never losing an invalidation that arrives
while a replay or a clear is under way."""

from __future__ import annotations

import asyncio
from types import SimpleNamespace

import pytest

from tierstore import ConfigError
from tierstore.tiers import health
from tierstore.tiers.health import Breaker, NodeGuard


class Clock:
    """The breaker's clock, moved by hand (only tiers/health.py sees it: the event loop keeps the real one)."""

    def __init__(self, monkeypatch: pytest.MonkeyPatch) -> None:
        self.now = 1000.0
        monkeypatch.setattr(health, "time", SimpleNamespace(monotonic=lambda: self.now))


def test_breaker_states(monkeypatch: pytest.MonkeyPatch) -> None:
    clock = Clock(monkeypatch)
    seen: list[str] = []
    b = Breaker(failures=3, cooldown=0.05, name="n1", on_change=lambda br: seen.append(br.state))
    assert b.allow() and b.state == "closed"
    b.failure()
    b.failure()
    b.success()  # failures must be consecutive
    b.failure()
    b.failure()
    assert b.state == "closed"
    b.failure()
    assert b.state == "open" and b.opens == 1
    assert not b.allow() and b.rejected == 1  # refused without I/O
    clock.now += 0.06
    assert b.allow() and b.state == "half_open"  # the probe
    assert not b.allow()  # one probe at a time
    b.failure()
    assert b.state == "open" and b.opens == 2
    clock.now += 0.06
    assert b.allow()
    b.success()
    assert b.state == "closed" and b.allow()
    assert seen == ["open", "half_open", "open", "half_open", "closed"]
    b.trip()
    assert b.state == "open"


def test_a_probe_that_never_answers_lets_another_through_after_a_cooldown(monkeypatch: pytest.MonkeyPatch) -> None:
    clock = Clock(monkeypatch)
    b = Breaker(failures=1, cooldown=1.0)
    b.failure()
    clock.now += 1.0
    assert b.allow() and b.state == "half_open"
    clock.now += 0.5
    assert not b.allow() and b.rejected == 1  # the probe is still out
    clock.now += 0.5
    assert b.allow()  # it has not answered in a cooldown: another call probes
    b.success()
    assert b.state == "closed"


def test_trip_opens_whatever_the_count(monkeypatch: pytest.MonkeyPatch) -> None:
    Clock(monkeypatch)
    b = Breaker(failures=5)
    b.trip()
    assert b.state == "open" and b.opens == 1 and not b.allow()
    b.trip()  # already open: not counted again
    assert b.opens == 1


def test_breaker_settings_are_checked() -> None:
    with pytest.raises(ConfigError):
        Breaker(failures=0)
    with pytest.raises(ConfigError):
        Breaker(cooldown=0)


def test_backlog_is_bounded_and_a_clear_under_way_cannot_lose_keys() -> None:
    h = NodeGuard("n1", Breaker(), max_pending=3)
    h.remember(["a", "b"])
    keys, ticket = h.backlog()
    assert keys == ["a", "b"] and ticket is None and h.owes
    h.remember(["c"])
    h.replayed(keys)
    assert h.pending == {"c"}
    h.remember(["d", "e", "f"])  # past max_pending: clear the node instead
    assert h.overflow and not h.pending
    keys, ticket = h.backlog()
    assert ticket is not None
    h.remember(["g"])  # failed while the clear ran: that clear may have missed it
    h.replayed(keys, ticket)
    assert h.overflow  # so another clear is owed
    keys, ticket = h.backlog()
    h.replayed(keys, ticket)
    assert not h.owes


def test_owes_is_kept_current() -> None:
    g = NodeGuard("n", None)
    g.remember([])
    assert not g.owes  # nothing was owed
    g.remember(["k"])
    assert g.owes
    g.replayed(["k"])
    assert not g.owes
    g.require_clear()
    assert g.owes and g.overflow
    keys, ticket = g.backlog()
    g.replayed(keys, ticket)
    assert not g.owes and not g.overflow


class Target:
    """What a guard replays into: records calls, can fail, can pause inside a call."""

    def __init__(self) -> None:
        self.calls: list[tuple[str, list[str]]] = []
        self.fail = False
        self.pause: asyncio.Event | None = None
        self.entered = asyncio.Event()

    async def _call(self, what: str, keys: list[str]) -> None:
        self.calls.append((what, keys))
        self.entered.set()
        if self.pause is not None:
            await self.pause.wait()
        if self.fail:
            raise ConnectionError("down")

    async def clear(self) -> None:
        await self._call("clear", [])

    async def invalidate(self, keys: list[str]) -> None:
        await self._call("invalidate", keys)


async def test_replay_delivers_the_backlog_in_order_and_closes_the_breaker(monkeypatch: pytest.MonkeyPatch) -> None:
    clock = Clock(monkeypatch)
    breaker = Breaker(failures=1, cooldown=1.0)
    g = NodeGuard("n", breaker)
    g.remember(["b", "a"])
    breaker.failure()
    clock.now += 1.0
    assert breaker.allow() and breaker.state == "half_open"
    target = Target()
    assert await g.replay(target.clear, target.invalidate) == (2, False)
    assert target.calls == [("invalidate", ["a", "b"])]
    assert not g.owes and breaker.state == "closed"

    g.require_clear()
    target.calls.clear()
    assert await g.replay(target.clear, target.invalidate) == (0, True)
    assert target.calls == [("clear", [])] and not g.owes


async def test_a_failed_replay_keeps_the_backlog() -> None:
    g = NodeGuard("n", None)
    g.remember(["a"])
    target = Target()
    target.fail = True
    with pytest.raises(ConnectionError):
        await g.replay(target.clear, target.invalidate)
    assert g.owes and g.pending == {"a"}
    target.fail = False
    await g.replay(target.clear, target.invalidate)
    assert not g.owes


async def test_keys_remembered_during_a_replay_stay_owed() -> None:
    g = NodeGuard("n", None)
    g.remember(["a"])
    target = Target()
    target.pause = asyncio.Event()
    replay = asyncio.create_task(g.replay(target.clear, target.invalidate))
    await target.entered.wait()
    g.remember(["b"])  # a write's invalidation failed while "a" was being replayed
    target.pause.set()
    await replay
    assert g.pending == {"b"} and g.owes


async def test_a_clear_that_raced_a_failed_invalidation_runs_again() -> None:
    g = NodeGuard("n", None, max_pending=1)
    g.remember(["a", "b"])  # overflow: a clear is owed
    target = Target()
    target.pause = asyncio.Event()
    replay = asyncio.create_task(g.replay(target.clear, target.invalidate))
    await target.entered.wait()
    g.remember(["c"])  # may have reached the node before the clear did: the clear must run again
    target.pause.set()
    assert await replay == (0, True)
    assert g.owes and g.overflow
    target.pause = None
    await g.replay(target.clear, target.invalidate)
    assert not g.owes
    assert target.calls == [("clear", []), ("clear", [])]


async def test_an_explicit_clear_settles_what_was_owed_before_it() -> None:
    g = NodeGuard("n", None)
    g.remember(["a"])
    target = Target()
    target.pause = asyncio.Event()
    clearing = asyncio.create_task(g.clear(target.clear))
    await target.entered.wait()
    g.remember(["b"])  # arrived while the clear ran: still owed
    target.pause.set()
    await clearing
    assert g.pending == {"b"} and not g.overflow


async def test_a_failed_explicit_clear_is_owed() -> None:
    g = NodeGuard("n", None)
    g.remember(["a"])
    target = Target()
    target.fail = True
    with pytest.raises(ConnectionError):
        await g.clear(target.clear)
    assert g.overflow and g.owes and not g.pending


def test_move_hands_keys_to_their_new_owner() -> None:
    old, new, full = NodeGuard("old", None), NodeGuard("new", None), NodeGuard("full", None, max_pending=1)
    old.remember(["a", "b", "c"])
    old.move(["a", "b"], new)
    assert old.pending == {"c"} and new.pending == {"a", "b"} and old.owes and new.owes
    old.move(["c"], full)
    assert not old.owes and full.pending == {"c"}
    full.remember(["d"])
    assert full.overflow  # the new owner's bound still holds
