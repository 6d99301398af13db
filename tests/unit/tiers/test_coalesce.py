"""Request coalescing (tiers/coalesce.py) over a recording tier: one tick's reads go out as one get_many while
another is in flight, each caller gets its own answers in its own order, a key asked twice gets one lease,
and a leader that fails or is cancelled strands no joiner."""

from __future__ import annotations

import asyncio
from collections.abc import Sequence

import pytest

from tierstore import MemoryTier
from tierstore.backends import Lease
from tierstore.tiers.coalesce import Coalescer, SharedFailure


class Recording(MemoryTier):
    """An in-memory tier that records each get_many and can hold it until ``go`` is set."""

    local = False

    def __init__(self) -> None:
        super().__init__()
        self.calls: list[list[str]] = []
        self.go = asyncio.Event()
        self.go.set()
        self.fail = False

    async def get_many(self, keys: Sequence[str]) -> list[bytes | Lease | None]:
        self.calls.append(list(keys))
        await self.go.wait()
        if self.fail:
            raise ConnectionError("down")
        return await super().get_many(keys)


async def test_nothing_in_flight_goes_out_at_once() -> None:
    tier = Recording()
    tier.store("a", b"A")
    c = Coalescer(tier)
    assert await c.get_many(["a"]) == [b"A"]
    assert tier.calls == [["a"]] and tier.stats.coalesced_batches == 0


async def test_one_ticks_reads_are_merged_while_another_is_in_flight() -> None:
    tier = Recording()
    for k in "abc":
        tier.store(k, k.upper().encode())
    c = Coalescer(tier)
    tier.go.clear()
    first = asyncio.create_task(c.get_many(["a"]))  # in flight
    await asyncio.sleep(0)
    joiners = [asyncio.create_task(c.get_many(ks)) for ks in (["b", "a"], ["c"], ["b"])]
    await asyncio.sleep(0)
    await asyncio.sleep(0)
    tier.go.set()
    assert await first == [b"A"]
    assert [await j for j in joiners] == [[b"B", b"A"], [b"C"], [b"B"]]  # each in its own order
    assert tier.calls == [["a"], ["b", "a", "c"]]  # one merged read, each key once
    s = tier.stats
    assert (s.coalesced_batches, s.coalesced_calls, s.coalesced_keys, s.coalesced_max_keys) == (1, 3, 3, 3)


async def test_a_key_asked_twice_gets_one_lease() -> None:
    tier = Recording()
    c = Coalescer(tier)
    tier.go.clear()
    first = asyncio.create_task(c.get_many(["x"]))
    await asyncio.sleep(0)
    joiners = [asyncio.create_task(c.get_many(["k"])) for _ in range(3)]
    await asyncio.sleep(0)
    await asyncio.sleep(0)
    tier.go.set()
    await first
    got = [(await j)[0] for j in joiners]
    assert sum(isinstance(g, Lease) for g in got) == 1  # one reader fills
    assert got.count(None) == 2  # the others wait for its fill


@pytest.mark.parametrize("how", ["fails", "cancelled"])
async def test_a_leader_that_fails_or_is_cancelled_strands_no_joiner(how: str) -> None:
    tier = Recording()
    c = Coalescer(tier)
    tier.go.clear()
    first = asyncio.create_task(c.get_many(["x"]))
    await asyncio.sleep(0)
    leader = asyncio.create_task(c.get_many(["a"]))  # the first of the tick leads the batch
    joiner = asyncio.create_task(c.get_many(["b"]))
    await asyncio.sleep(0)
    await asyncio.sleep(0)
    assert tier.calls == [["x"], ["a", "b"]]  # the merged read is out (and held)
    if how == "cancelled":
        leader.cancel()
    else:
        tier.fail = True
    tier.go.set()
    results = await asyncio.gather(first, leader, joiner, return_exceptions=True)
    assert isinstance(results[2], SharedFailure)  # the joiner fails on its own: a miss for its caller
    if how == "cancelled":
        assert isinstance(results[1], asyncio.CancelledError)
    else:
        assert isinstance(results[1], ConnectionError)
