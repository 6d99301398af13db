"""Invalidations a Redis node could not take, replayed later, reach the in-process tiers of every other
process — not only the Redis entry. Each Database has its own origin on the channel, as a process does.

The order of the checks is forced, not timed: the writer replays, then writes a marker key through the
healthy node; Redis runs the two PUBLISHes in that order, so once the reader has heard of the marker it has
heard of the replay too.
"""

from __future__ import annotations

import pytest

import tierstore
from tierstore import MemoryStore
from tierstore.testing.proxy import FaultProxy

from _models import Customer
from _servers import REDIS_URL, endpoints, require
from _tiers import eventually, random_prefix

pytestmark = pytest.mark.redis

FAST = "timeout=100ms&connect_timeout=100ms&breaker_failures=1&breaker_cooldown=50ms"


@pytest.mark.parametrize("owed", ["keys", "clear"])
async def test_a_replayed_invalidation_evicts_other_processes_l1(owed: str) -> None:
    require(REDIS_URL, "redis")
    host, port = endpoints(REDIS_URL)[0]
    store = MemoryStore()
    prefix = random_prefix()
    async with FaultProxy(host, port) as proxy:
        writer_urls = ["memory://", f"redis://127.0.0.1:{proxy.port}/0?prefix={prefix}&{FAST}"]
        reader_urls = ["memory://", f"redis://{host}:{port}/0?prefix={prefix}&{FAST}"]
        async with tierstore.connect(store, writer_urls) as a, tierstore.connect(store, reader_urls) as b:
            ra, rb = a.repository(Customer), b.repository(Customer)
            await ra.put(Customer("k", "v1"), check_version=False)
            await ra.put(Customer("marker", "m1"), check_version=False)
            l1 = b.cache.l1
            assert l1 is not None and b.cache.coherence is not None
            await rb.get("warm-up")  # subscribes (a subscription flushes L1 and voids its leases)
            assert (await rb.get("k")).name == "v1"  # type: ignore[union-attr]
            assert (await rb.get("marker")).name == "m1"  # type: ignore[union-attr]
            assert b.cache.coherence.connected and len(l1) == 2  # both in the reader's L1

            proxy.drop()  # the writer cannot reach Redis: its invalidation is kept for replay
            await proxy.cut()
            if owed == "clear":
                a.cache.tiers[-1]._topology.nodes[f"127.0.0.1:{proxy.port}"].guard.require_clear()  # type: ignore[attr-defined]
            await ra.put(Customer("k", "v2"), check_version=False)
            assert a.cache.undelivered() >= 1
            assert (await rb.get("k")).name == "v1"  # type: ignore[union-attr]  # the reader cannot know yet

            proxy.reset()

            async def replayed() -> bool:
                await ra.get("other")  # the writer reaches the node again and replays first
                return a.cache.undelivered() == 0

            await eventually(replayed)
            await ra.put(Customer("marker", "m2"), check_version=False)  # published after the replay's messages

            async def heard_marker() -> bool:
                got = await rb.get("marker")
                return got is not None and got.name == "m2"

            await eventually(heard_marker)
            got = await rb.get("k")
            assert got is not None and got.name == "v2", "the replay did not reach the reader's L1"
