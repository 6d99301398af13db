"""The Redis tier against real servers: lease protocol, versioned sets, batching and coalescing, cluster slots,
ACL and TLS, scripts reloaded on NOSCRIPT, L1 coherence through the invalidation channel.

Tests that need a server configured in a particular way (ACL users, TLS, flushed script cache, a second
standalone node) start their own ``redis-server`` on a free port and stop it (by its PID) afterwards.
"""

from __future__ import annotations

import asyncio
import logging
import socket
import subprocess
import time
import uuid
from collections.abc import AsyncIterator, Iterator
from pathlib import Path
from typing import Any

import pytest
import redis.asyncio as redis
from redis.crc import key_slot

import tierstore
from tierstore import ConfigError, Lease, MemoryStore, MemoryTier
from tierstore.config import tier_config
from tierstore.testing.proxy import FaultProxy
from tierstore.tiers.redis import RedisTier, RedisTierConfig

from _models import Blob, Customer
from _servers import REDIS_CLUSTER_URL, REDIS_URL, endpoints, require

pytestmark = pytest.mark.redis


def _prefix() -> str:
    return f"t{uuid.uuid4().hex[:12]}"


def _url(base: str, prefix: str, **params: Any) -> str:
    query = "&".join([f"prefix={prefix}", *(f"{k}={v}" for k, v in params.items())])
    return f"{base}{'&' if '?' in base else '?'}{query}"


async def _tier(base: str = REDIS_URL, prefix: str | None = None, **params: Any) -> RedisTier:
    require(base, "redis")
    tier = tier_config(_url(base, prefix or _prefix(), **params)).build()
    assert isinstance(tier, RedisTier)
    await tier.open()
    return tier


@pytest.fixture
async def raw() -> AsyncIterator[redis.Redis]:
    require(REDIS_URL, "redis")
    host, port = endpoints(REDIS_URL)[0]
    client = redis.Redis(host=host, port=port)
    try:
        yield client
    finally:
        await client.aclose()


# -- servers of our own ----------------------------------------------------------------------------------


def _free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return int(s.getsockname()[1])


class OwnRedis:
    """A redis-server this test started (and stops, by PID)."""

    def __init__(self, *args: str, port: int | None = None, tls_dir: Path | None = None) -> None:
        self.port = port or _free_port()
        argv = ["redis-server", "--bind", "127.0.0.1", "--save", "", "--appendonly", "no"]
        if tls_dir is None:
            argv += ["--port", str(self.port)]
        else:
            argv += [
                "--port", "0", "--tls-port", str(self.port), "--tls-cert-file", str(tls_dir / "server.crt"),
                "--tls-key-file", str(tls_dir / "server.key"), "--tls-ca-cert-file", str(tls_dir / "ca.crt"),
                "--tls-auth-clients", "no",
            ]
        self.proc = subprocess.Popen([*argv, *args], stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL)
        deadline = time.monotonic() + 10
        while True:
            try:
                socket.create_connection(("127.0.0.1", self.port), timeout=0.2).close()
                return
            except OSError:
                if self.proc.poll() is not None or time.monotonic() > deadline:
                    self.stop()
                    pytest.fail(f"could not start redis-server {' '.join(args)}")
                time.sleep(0.05)

    def stop(self) -> None:
        if self.proc.poll() is None:
            self.proc.terminate()
            try:
                self.proc.wait(5)
            except subprocess.TimeoutExpired:
                self.proc.kill()
                self.proc.wait(5)


@pytest.fixture
def own_redis() -> Iterator[OwnRedis]:
    server = OwnRedis()
    try:
        yield server
    finally:
        server.stop()


# -- configuration ------------------------------------------------------------------------------------------


def test_config_from_url() -> None:
    cfg = RedisTierConfig.from_url(
        "rediss://app:p%40ss@cache.example:6380/2?prefix=svc&timeout=50ms&connect_timeout=1s&pool_size=4"
        "&lease=2s&tombstone=3s&breaker_failures=3&breaker_cooldown=500ms&max_value=64KiB&max_pending=100"
        "&coherence=false&ping=250ms&tls_verify=false"
    )
    assert cfg.hosts == (("cache.example", 6380),) and cfg.tls and not cfg.cluster and cfg.db == 2
    assert (cfg.username, cfg.password) == ("app", "p@ss")
    assert cfg.prefix == "svc" and cfg.timeout == 0.05 and cfg.connect_timeout == 1.0 and cfg.pool_size == 4
    assert (cfg.lease, cfg.tombstone, cfg.breaker_failures, cfg.breaker_cooldown) == (2.0, 3.0, 3, 0.5)
    assert cfg.max_value == 65536 and cfg.max_pending == 100 and not cfg.coherence and cfg.ping == 0.25
    assert not cfg.tls_verify
    assert "p@ss" not in repr(cfg) and "p%40ss" not in repr(cfg)
    assert "p@ss" not in repr(cfg.build())

    cluster = RedisTierConfig.from_url("redis+cluster://h1:7001,h2:7002,[::1]:7003")
    assert cluster.cluster and cluster.hosts == (("h1", 7001), ("h2", 7002), ("::1", 7003))
    assert RedisTierConfig.from_url("redis://h").hosts == (("h", 6379),)
    assert RedisTierConfig.from_url("redis://h1,h2:6380").hosts == (("h1", 6379), ("h2", 6380))


@pytest.mark.parametrize(
    "url",
    [
        "redis://h?nope=1",  # unknown parameter: a typo must not pass silently
        "redis://h?prefix=a b",
        "redis://h?prefix={tag}",  # braces would become the cluster hash tag
        "redis://h?timeout=0",
        "redis://h?pool_size=0",
        "redis://h:99999",
        "redis://h/notadb",
        "redis+cluster://h1:7001/3",  # a cluster has database 0 only
        "redis://secret:hunter2@h?bad=1",
    ],
)
def test_bad_urls_are_config_errors_without_secrets(url: str) -> None:
    with pytest.raises(ConfigError) as info:
        tier_config(url)
    assert "hunter2" not in str(info.value)


# -- the lease protocol ----------------------------------------------------------------------------------


async def test_lease_fill_and_invalidate(raw: redis.Redis) -> None:
    tier = await _tier()
    try:
        (first,) = await tier.get_many(["{t:1}:a"])
        assert isinstance(first, Lease) and first.token is not None
        assert await tier.get_many(["{t:1}:a"]) == [None]  # another reader holds the lease
        await tier.fill_many([("{t:1}:a", b"v1", first)], 60)
        assert await tier.get_many(["{t:1}:a"]) == [b"v1"]
        assert tier.stats.fills == 1

        await tier.invalidate_many(["{t:1}:a"])
        assert await raw.get(f"{tier.config.prefix}:{{t:1}}:a") == b"T"  # a tombstone, not a hole
        (second,) = await tier.get_many(["{t:1}:a"])
        assert isinstance(second, Lease)
        await tier.fill_many([("{t:1}:a", b"stale", first)], 60)  # an old lease: dropped
        assert tier.stats.fills_dropped == 1
        await tier.invalidate_many(["{t:1}:a"])
        await tier.fill_many([("{t:1}:a", b"stale", second)], 60)  # voided by the invalidation
        assert tier.stats.fills_dropped == 2
        (third,) = await tier.get_many(["{t:1}:a"])
        assert isinstance(third, Lease)
        await tier.fill_many([("{t:1}:a", b"v2", third)], 60)
        assert await tier.get_many(["{t:1}:a"]) == [b"v2"]
    finally:
        await tier.aclose()


async def test_empty_fill_releases_the_lease(raw: redis.Redis) -> None:
    tier = await _tier()
    try:
        (lease,) = await tier.get_many(["{t:1}:gone"])
        assert isinstance(lease, Lease)
        await tier.fill_many([("{t:1}:gone", b"", lease)], 60)
        assert await raw.exists(f"{tier.config.prefix}:{{t:1}}:gone") == 0
        (again,) = await tier.get_many(["{t:1}:gone"])
        assert isinstance(again, Lease)  # the next reader does not wait for a fill that will never come
    finally:
        await tier.aclose()


async def test_versioned_set_never_goes_back_and_respects_tombstones() -> None:
    tier = await _tier()
    try:
        k = "{t:1}:v"
        await tier.set_many([(k, b"two", 2)], 60)
        await tier.set_many([(k, b"one", 1)], 60)  # a slow writer's older version
        assert await tier.get_many([k]) == [b"two"]
        await tier.set_many([(k, b"three", 3)], 60)
        assert await tier.get_many([k]) == [b"three"]
        assert tier.stats.fills_dropped == 1

        await tier.invalidate_many([k])  # deleted: a late set must not resurrect it
        await tier.set_many([(k, b"four", 4)], 60)
        (after,) = await tier.get_many([k])
        assert isinstance(after, Lease)  # still deleted; this reader fills from the store

        (lease,) = await tier.get_many(["{t:1}:w"])
        assert isinstance(lease, Lease)
        await tier.set_many([("{t:1}:w", b"written", 1)], 60)  # a write voids the reader's lease
        await tier.fill_many([("{t:1}:w", b"read-before", lease)], 60)
        assert await tier.get_many(["{t:1}:w"]) == [b"written"]
    finally:
        await tier.aclose()


async def test_get_many_is_one_round_trip_and_one_mget() -> None:
    tier = await _tier()
    try:
        keys = [f"{{t:{i % 7}}}:{i}" for i in range(100)]
        leases = await tier.get_many(keys)
        await tier.fill_many([(k, b"v" + k.encode(), lz) for k, lz in zip(keys, leases, strict=True)
                              if isinstance(lz, Lease)], 60)
        before = tier.stats.round_trips
        got = await tier.get_many(keys)
        assert got == [b"v" + k.encode() for k in keys]
        assert tier.stats.round_trips - before == 1
    finally:
        await tier.aclose()


@pytest.mark.redis_cluster
async def test_cluster_partition_shares_a_slot_and_batches_per_node() -> None:
    tier = await _tier(REDIS_CLUSTER_URL)
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


async def test_concurrent_gets_are_coalesced() -> None:
    store = MemoryStore()
    prefix = _prefix()
    async with tierstore.connect(store, [_url(REDIS_URL, prefix)]) as db:
        repo = db.repository(Customer)
        await repo.put_many([Customer(f"c{i}", f"n{i}") for i in range(64)])
        await repo.get_many([f"c{i}" for i in range(64)])  # warm
        tier = db.cache.tiers[0]
        await repo.get("c0")  # something in flight makes the next tick's readers merge
        before = tier.stats.round_trips
        got = await asyncio.gather(*(repo.get(f"c{i}") for i in range(64)))
        assert [g.name if g else None for g in got] == [f"n{i}" for i in range(64)]
        spent = tier.stats.round_trips - before
        assert spent <= 3, spent  # the first reader's GET, then one MGET for the other 63
        assert tier.stats.coalesced_batches >= 1
        assert tier.stats.coalesced_max_keys >= 32
        assert store.stats.round_trips == 2  # put_many and the warming get_many


async def test_undecodable_entries_are_counted_and_replaced(raw: redis.Redis) -> None:
    store = MemoryStore()
    prefix = _prefix()
    async with tierstore.connect(store, [_url(REDIS_URL, prefix)]) as db:
        repo = db.repository(Customer)
        await repo.put(Customer("c1", "real"))
        await repo.put(Customer("c2", "real"))
        ck1 = tierstore.schema_of(Customer).cache_key(("c1",))
        ck2 = tierstore.schema_of(Customer).cache_key(("c2",))
        await raw.set(f"{prefix}:{ck1}", b"D" + b"0" * 16 + b"\xa7garbage")
        await raw.set(f"{prefix}:{ck2}", b"not ours at all")
        got = await repo.get_many(["c1", "c2"])
        assert [g.name if g else None for g in got] == ["real", "real"]
        tier = db.cache.tiers[0]
        assert tier.stats.undecodable == 2
        assert await raw.get(f"{prefix}:{ck1}") == b"T"  # deleted (tombstoned), not left to fail again
        assert [g.name if g else None for g in await repo.get_many(["c1", "c2"])] == ["real", "real"]
        assert tier.stats.undecodable == 2


async def test_oversized_values_are_not_cached(raw: redis.Redis) -> None:
    store = MemoryStore()
    prefix = _prefix()
    async with tierstore.connect(store, [_url(REDIS_URL, prefix, max_value="1KiB")]) as db:
        blobs = db.repository(Blob)
        await blobs.put(Blob(1, b"x" * 4096))
        await blobs.put(Blob(2, b"y" * 10))
        for _ in range(3):
            got = await blobs.get_many([1, 2])
            assert [len(b.data) if b else None for b in got] == [4096, 10]
        tier = db.cache.tiers[0]
        assert tier.stats.oversized >= 1
        big = tierstore.schema_of(Blob).cache_key((1,))
        assert await raw.get(f"{prefix}:{big}") is None  # no value, and no lease left behind
        assert tier.stats.lease_waits == 0


async def test_clear_drops_this_namespace_only(raw: redis.Redis) -> None:
    a, b = await _tier(), await _tier()
    try:
        for tier in (a, b):
            (lz,) = await tier.get_many(["{t:1}:k"])
            assert isinstance(lz, Lease)
            await tier.fill_many([("{t:1}:k", b"v", lz)], 60)
        await a.clear()
        assert isinstance((await a.get_many(["{t:1}:k"]))[0], Lease)
        assert await b.get_many(["{t:1}:k"]) == [b"v"]
    finally:
        await a.aclose()
        await b.aclose()


# -- servers configured for one test ----------------------------------------------------------------------


async def test_scripts_are_reloaded_after_script_flush(own_redis: OwnRedis) -> None:
    base = f"redis://127.0.0.1:{own_redis.port}/0"
    tier = await _tier(base)
    client = redis.Redis(port=own_redis.port)
    try:
        assert isinstance((await tier.get_many(["{t:1}:a"]))[0], Lease)
        await client.script_flush()
        (lease,) = await tier.get_many(["{t:1}:b"])  # NOSCRIPT -> SCRIPT LOAD -> EVALSHA again
        assert isinstance(lease, Lease)
        await client.script_flush()
        await tier.fill_many([("{t:1}:b", b"v", lease)], 60)
        assert await tier.get_many(["{t:1}:b"]) == [b"v"]
        assert tier.stats.errors == 0
    finally:
        await client.aclose()
        await tier.aclose()


async def test_acl_user_and_password(caplog: pytest.LogCaptureFixture) -> None:
    server = OwnRedis("--user", "default", "off", "--user", "svc", "on", ">s3cr3t-pw", "~*", "&*", "+@all")
    try:
        good = await _tier(f"redis://svc:s3cr3t-pw@127.0.0.1:{server.port}/0")
        (lease,) = await good.get_many(["{t:1}:a"])
        assert isinstance(lease, Lease)
        await good.fill_many([("{t:1}:a", b"v", lease)], 60)
        assert await good.get_many(["{t:1}:a"]) == [b"v"]
        await good.aclose()

        caplog.set_level(logging.DEBUG, logger="tierstore")
        bad = await _tier(f"redis://svc:wrong-pw-123@127.0.0.1:{server.port}/0")
        (miss,) = await bad.get_many(["{t:1}:a"])  # authentication fails: a miss, never an exception
        assert isinstance(miss, Lease) and miss.token is None  # ... and one that will not be filled
        await bad.invalidate_many(["{t:1}:a"])  # kept for replay, never raised
        assert bad.stats.errors >= 1
        assert "wrong-pw-123" not in caplog.text and "wrong-pw-123" not in repr(bad)
        await bad.aclose()
    finally:
        server.stop()


@pytest.fixture(scope="module")
def tls_dir(tmp_path_factory: pytest.TempPathFactory) -> Path:
    d = tmp_path_factory.mktemp("tls")

    def run(*args: str) -> None:
        subprocess.run(["openssl", *args], cwd=d, check=True, capture_output=True)

    run("req", "-x509", "-newkey", "rsa:2048", "-nodes", "-days", "2", "-subj", "/CN=tierstore-test-ca",
        "-keyout", "ca.key", "-out", "ca.crt")
    run("req", "-newkey", "rsa:2048", "-nodes", "-subj", "/CN=127.0.0.1", "-keyout", "server.key",
        "-out", "server.csr")
    (d / "ext.cnf").write_text("subjectAltName=IP:127.0.0.1\n")
    run("x509", "-req", "-in", "server.csr", "-CA", "ca.crt", "-CAkey", "ca.key", "-CAcreateserial",
        "-days", "2", "-out", "server.crt", "-extfile", "ext.cnf")
    return d


async def test_tls(tls_dir: Path) -> None:
    server = OwnRedis(tls_dir=tls_dir)
    try:
        tier = await _tier(f"rediss://127.0.0.1:{server.port}/0", tls_ca=str(tls_dir / "ca.crt"))
        (lease,) = await tier.get_many(["{t:1}:a"])
        assert isinstance(lease, Lease) and lease.token is not None
        await tier.fill_many([("{t:1}:a", b"v", lease)], 60)
        assert await tier.get_many(["{t:1}:a"]) == [b"v"]
        await tier.aclose()

        untrusted = await _tier(f"rediss://127.0.0.1:{server.port}/0")  # server cert not in the system CAs
        (miss,) = await untrusted.get_many(["{t:1}:a"])
        assert isinstance(miss, Lease) and miss.token is None and untrusted.stats.errors == 1
        await untrusted.aclose()
    finally:
        server.stop()


async def test_several_standalone_nodes_by_rendezvous(own_redis: OwnRedis) -> None:
    host, port = endpoints(REDIS_URL)[0]
    # Generous deadlines: this test is about placement, and a loaded CI machine must not turn it into a
    # timeout test (a timed-out node hands out void leases, and nothing would be filled there).
    tier = await _tier(f"redis://{host}:{port},127.0.0.1:{own_redis.port}/0", timeout="2s", connect_timeout="2s")
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


# -- L1 coherence ---------------------------------------------------------------------------------------------


async def _eventually(check: Any) -> None:
    """Poll ``check`` for up to ~3 s (a bound for the test, not a measured speed)."""
    for _ in range(300):
        if await check():
            return
        await asyncio.sleep(0.01)
    raise AssertionError("condition not reached in time")


@pytest.mark.parametrize(
    "base", [REDIS_URL, pytest.param(REDIS_CLUSTER_URL, marks=pytest.mark.redis_cluster)], ids=["redis", "cluster"]
)
async def test_l1_entries_are_evicted_by_other_processes_writes(base: str) -> None:
    require(base, "redis")
    store = MemoryStore()
    prefix = _prefix()
    urls = ["memory://", _url(base, prefix)]
    async with tierstore.connect(store, urls) as a, tierstore.connect(store, urls) as b:
        ra, rb = a.repository(Customer), b.repository(Customer)
        await ra.put(Customer("k", "v1"))
        assert (await ra.get("k")).name == "v1"  # type: ignore[union-attr]
        assert (await rb.get("k")).name == "v1"  # type: ignore[union-attr]
        l1 = a.cache.l1
        assert l1 is not None and len(l1) == 1 and a.cache.coherence is not None
        assert a.cache.coherence.connected
        before = store.stats.reads
        assert (await ra.get("k")).name == "v1"  # type: ignore[union-attr]
        assert store.stats.reads == before and l1.stats.hits >= 1  # an L1 hit
        await rb.put(Customer("k", "v2"))

        async def fresh() -> bool:
            got = await ra.get("k")
            return got is not None and got.name == "v2"

        await _eventually(fresh)
        assert l1.stats.coherence_evictions >= 1

        await ra.get("k")
        assert len(l1) == 1
        await b.cache.tiers[-1].clear()  # another process clears the namespace: every L1 is flushed

        async def flushed() -> bool:
            return len(l1) == 0

        await _eventually(flushed)
        assert l1.stats.coherence_flushes == 1


@pytest.mark.parametrize("fault", ["blackhole", "cut"])
async def test_l1_is_flushed_and_not_filled_while_the_channel_is_down(fault: str) -> None:
    require(REDIS_URL, "redis")
    host, port = endpoints(REDIS_URL)[0]
    store = MemoryStore()
    prefix = _prefix()
    async with FaultProxy(host, port) as proxy:
        urls = ["memory://", f"redis://127.0.0.1:{proxy.port}/0?prefix={prefix}&ping=100ms&timeout=100ms"]
        async with tierstore.connect(store, urls) as a:
            repo = a.repository(Customer)
            await repo.put(Customer("k", "v1"))
            await repo.get("k")
            coherence = a.cache.coherence
            l1 = a.cache.l1
            assert coherence is not None and l1 is not None and coherence.connected and len(l1) == 1

            if fault == "blackhole":
                proxy.blackhole()  # the channel hangs: only the PING can tell
            else:
                proxy.drop()  # connections are reset, and reconnecting fails for now
                await proxy.cut()

            async def dropped() -> bool:
                return not coherence.connected

            await _eventually(dropped)
            assert len(l1) == 0  # flushed at the drop
            await repo.get("k")
            assert len(l1) == 0  # and not filled while messages could be missed
            proxy.reset()
            await proxy.cut()  # drop the hung connections; everything reconnects

            async def back() -> bool:
                return coherence.connected

            await _eventually(back)
            await repo.get("k")
            assert len(l1) == 1
            assert l1.stats.coherence_drops >= 1 and l1.stats.coherence_subscribes >= 2


async def test_no_coherence_channel_when_disabled() -> None:
    async with tierstore.connect(MemoryStore(), ["memory://", _url(REDIS_URL, _prefix(), coherence="false")]) as db:
        assert db.cache.coherence is None
        repo = db.repository(Customer)
        await repo.put(Customer("k", "v"))
        await repo.get("k")
        assert isinstance(db.cache.tiers[0], MemoryTier) and len(db.cache.tiers[0]) == 1


@pytest.mark.redis_cluster
async def test_cluster_moved_slots_refresh_the_topology_and_lose_no_invalidation() -> None:
    tier = await _tier(REDIS_CLUSTER_URL)
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


async def test_a_channel_reset_is_a_drop_even_when_reconnecting_would_succeed() -> None:
    """No silent resubscribe: messages sent while the connection was down are lost, so L1 must be flushed."""
    require(REDIS_URL, "redis")
    host, port = endpoints(REDIS_URL)[0]
    async with FaultProxy(host, port) as proxy:
        urls = ["memory://", f"redis://127.0.0.1:{proxy.port}/0?prefix={_prefix()}&ping=100ms"]
        async with tierstore.connect(MemoryStore(), urls) as a:
            repo = a.repository(Customer)
            await repo.put(Customer("k", "v1"))
            await repo.get("k")
            l1 = a.cache.l1
            assert l1 is not None and len(l1) == 1
            await proxy.cut()  # every connection reset; new ones are accepted at once

            async def dropped_and_back() -> bool:
                return l1.stats.coherence_drops >= 1 and l1.stats.coherence_subscribes >= 2

            await _eventually(dropped_and_back)
            assert len(l1) == 0
