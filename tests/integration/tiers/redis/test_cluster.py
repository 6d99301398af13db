"""Where keys live (tiers/redis/cluster.py): a Redis Cluster's slots (one partition per slot, one pipeline of MGETs
per node, MOVED refreshes the map and moves owed invalidations) and rendezvous over standalone nodes.
"""

from __future__ import annotations

import pytest
import redis.asyncio as redis
from redis.crc import key_slot

from tierstore.backends import Lease

from _servers import REDIS_CLUSTER_URL, REDIS_URL, endpoints
from _tiers import OwnRedis, redis_tier

pytestmark = pytest.mark.redis


@pytest.mark.redis_cluster
async def test_cluster_partition_shares_a_slot_and_batches_per_node() -> None:
    tier = await redis_tier(REDIS_CLUSTER_URL)
    try:
        prefix = tier.config.prefix
        keys = [f"{{orders:c{p}}}:{i}" for p in range(12) for i in range(8)]
        for k in keys:
            assert key_slot(f"{prefix}:{k}".encode()) == key_slot(k.split("}")[0][1:].encode())
        leases = await tier.get_many(keys)
        assert all(isinstance(lz, Lease) for lz in leases)
        await tier.fill_many([(k, k.encode(), lz) for k, lz in zip(keys, leases, strict=True)
                              if isinstance(lz, Lease)], 60)
        before = tier.stats.round_trips
        assert await tier.get_many(keys) == [k.encode() for k in keys]
        nodes = {tier._topology.slots[key_slot(f"{prefix}:{k}".encode())] for k in keys}
        assert tier.stats.round_trips - before == len(nodes) <= 3  # one pipeline of MGETs per node
        await tier.invalidate_many(keys)
        assert all(isinstance(g, Lease) for g in await tier.get_many(keys))
    finally:
        await tier.aclose()


@pytest.mark.redis_cluster
async def test_cluster_moved_slots_refresh_the_topology_and_lose_no_invalidation() -> None:
    tier = await redis_tier(REDIS_CLUSTER_URL)
    try:
        k = "{orders:moved}:1"
        (lease,) = await tier.get_many([k])
        assert isinstance(lease, Lease)
        await tier.fill_many([(k, b"v1", lease)], 60)
        slot = key_slot(f"{tier.config.prefix}:{k}".encode())
        right = tier._topology.slots[slot]
        wrong = next(n for n in set(tier._topology.slots) if n is not None and n is not right)
        tier._topology.slots[slot] = wrong  # as if the slot had moved since the topology was read

        await tier.invalidate_many([k])  # MOVED: kept for replay, the topology marked stale
        assert tier.stats.errors >= 1 and wrong.guard.owes
        (after,) = await tier.get_many([k])  # topology refreshed, backlog moved to the owner and replayed
        assert after != b"v1"
        assert tier._topology.slots[slot] is right
        assert tier.stats.invalidations_replayed == 1 and not right.guard.owes and not wrong.guard.owes
    finally:
        await tier.aclose()


async def test_several_standalone_nodes_by_rendezvous(own_redis: OwnRedis) -> None:
    host, port = endpoints(REDIS_URL)[0]
    # Generous deadlines: this test is about placement, and a loaded CI machine must not turn it into a
    # timeout test (a timed-out node hands out void leases, and nothing would be filled there).
    tier = await redis_tier(f"redis://{host}:{port},127.0.0.1:{own_redis.port}/0", timeout="2s", connect_timeout="2s")
    other = redis.Redis(port=own_redis.port)
    try:
        keys = [f"{{orders:c{p}}}:{i}" for p in range(20) for i in range(3)]
        leases = await tier.get_many(keys)
        await tier.fill_many([(k, b"v", lz) for k, lz in zip(keys, leases, strict=True)
                              if isinstance(lz, Lease)], 60)
        on_other = {k for k in keys if await other.exists(f"{tier.config.prefix}:{k}")}
        assert 0 < len(on_other) < len(keys)  # both nodes hold some partitions
        for p in range(20):  # and each partition lives on one node
            mine = {f"{{orders:c{p}}}:{i}" in on_other for i in range(3)}
            assert len(mine) == 1
        assert await tier.get_many(keys) == [b"v"] * len(keys)
    finally:
        await other.aclose()
        await tier.aclose()
