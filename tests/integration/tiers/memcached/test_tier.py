"""The memcached tier against real servers: keys checked in bytes (no injection), TTLs over 30 days, oversized
values refused, per-request deadlines that discard the connection, the add/gets/cas lease protocol, versioned
sets, generations for ``clear``, rendezvous placement and batched reads.

Tests that could damage a shared server if tierstore were wrong (``flush_all`` injection) or that read server
counters run against a memcached this test starts on a free port (and stops, by its PID).
"""

from __future__ import annotations

import asyncio
import os
import socket
import subprocess
import time
import uuid
from collections.abc import AsyncIterator, Iterator
from typing import Any

import aiomcache
import pytest

import tierstore
from tierstore import ConfigError, Lease, MemoryStore
from tierstore.config import tier_config
from tierstore.testing.proxy import FaultProxy
from tierstore.tiers.memcached import MemcachedTier, MemcachedTierConfig, memcached_key
from tierstore.tiers.memcached.protocol import exptime

from _models import Blob
from _servers import MEMCACHED_URL, endpoints, require

pytestmark = pytest.mark.memcached


def _prefix() -> str:
    return f"t{uuid.uuid4().hex[:12]}"


async def _tier(base: str = MEMCACHED_URL, prefix: str | None = None, **params: Any) -> MemcachedTier:
    require(base, "memcached")
    query = "&".join([f"prefix={prefix or _prefix()}", *(f"{k}={v}" for k, v in params.items())])
    tier = tier_config(f"{base}?{query}").build()
    assert isinstance(tier, MemcachedTier)
    await tier.open()
    return tier


def _free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return int(s.getsockname()[1])


class OwnMemcached:
    """A memcached this test started (and stops, by PID)."""

    def __init__(self, port: int | None = None) -> None:
        self.port = port or _free_port()
        argv = ["memcached", "-l", "127.0.0.1", "-p", str(self.port), "-U", "0", "-m", "64", "-I", "1m"]
        if os.geteuid() == 0:
            argv += ["-u", "root"]  # memcached refuses to run as root without -u
        self.proc = subprocess.Popen(argv, stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL)
        deadline = time.monotonic() + 10
        while True:
            try:
                socket.create_connection(("127.0.0.1", self.port), timeout=0.2).close()
                return
            except OSError:
                if self.proc.poll() is not None or time.monotonic() > deadline:
                    self.stop()
                    pytest.fail("could not start memcached")
                time.sleep(0.05)

    @property
    def url(self) -> str:
        return f"memcached://127.0.0.1:{self.port}"

    def stop(self) -> None:
        if self.proc.poll() is None:
            self.proc.terminate()
            try:
                self.proc.wait(5)
            except subprocess.TimeoutExpired:
                self.proc.kill()
                self.proc.wait(5)


@pytest.fixture
def own() -> Iterator[OwnMemcached]:
    server = OwnMemcached()
    try:
        yield server
    finally:
        server.stop()


@pytest.fixture
async def own_raw(own: OwnMemcached) -> AsyncIterator[aiomcache.Client]:
    client = aiomcache.Client("127.0.0.1", own.port)
    try:
        yield client
    finally:
        await client.close()


# -- pure rules --------------------------------------------------------------------------------------------


def test_config_from_url() -> None:
    cfg = MemcachedTierConfig.from_url(
        "memcached://m1:11211,m2?prefix=svc&timeout=20ms&pool_size=2&lease=3s&tombstone=4s&max_value=512KiB"
    )
    assert cfg.hosts == (("m1", 11211), ("m2", 11211)) and cfg.prefix == "svc" and cfg.timeout == 0.02
    assert (cfg.pool_size, cfg.lease, cfg.tombstone, cfg.max_value) == (2, 3.0, 4.0, 512 * 1024)
    for bad in ("memcached://h?lease=1s", "memcached://u:pw@h", "memcached://h?x=1", "memcached://h?prefix=a%20b",
                "memcached://h?max_value=100"):
        with pytest.raises(ConfigError):
            tier_config(bad)


@pytest.mark.parametrize(
    "key",
    [
        "a\r\nflush_all",
        "a flush_all",
        "tab\there",
        "nul\x00",
        "del\x7f",
        "é" * 125,  # 250 characters, 250 bytes of UTF-8 + namespace: too long in bytes
        "x" * 251,
        "#looks-hashed",
        "\u0085next-line",
    ],
)
def test_memcached_keys_are_safe_bytes(key: str) -> None:
    mk = memcached_key(b"ns:g1:", key)
    assert len(mk) <= 250
    assert all(0x21 <= b <= 0x7E for b in mk), mk
    assert mk.startswith(b"ns:g1:#")  # hashed
    assert memcached_key(b"ns:g1:", key) == mk  # stable


def test_plain_keys_are_kept_and_limits_are_counted_in_bytes() -> None:
    assert memcached_key(b"ns:", "{orders:c1}:o1") == b"ns:{orders:c1}:o1"
    assert memcached_key(b"n:", "k" * 248) == b"n:" + b"k" * 248  # exactly 250 bytes: kept
    assert memcached_key(b"n:", "k" * 249).startswith(b"n:#")  # 251 bytes: hashed
    assert memcached_key(b"n:", "é" * 100).startswith(b"n:#")  # 100 characters but 200 non-ASCII bytes


def test_ttls_over_thirty_days_become_absolute_times() -> None:
    assert exptime(0.2) == 1
    assert exptime(60) == 60
    assert exptime(30 * 86400) == 30 * 86400
    now = time.time()
    absolute = exptime(31 * 86400)
    assert now + 31 * 86400 - 2 <= absolute <= time.time() + 31 * 86400 + 2


# -- against a server ------------------------------------------------------------------------------------------


async def test_key_injection_never_reaches_the_server(own: OwnMemcached, own_raw: aiomcache.Client) -> None:
    await own_raw.set(b"sentinel", b"still-here")
    tier = await _tier(own.url)
    try:
        evil = ["a\r\nflush_all", "b\r\nflush_all\r\n", "c flush_all", "d\nflush_all"]
        leases = await tier.get_many(evil)
        assert all(isinstance(lz, Lease) and lz.token is not None for lz in leases)
        await tier.fill_many([(k, k.encode(), lz) for k, lz in zip(evil, leases, strict=True)
                              if isinstance(lz, Lease)], 60)
        assert await tier.get_many(evil) == [k.encode() for k in evil]
        await tier.invalidate_many(evil)
        await tier.set_many([(k, b"w", 1) for k in evil], 60)
        assert await own_raw.get(b"sentinel") == b"still-here"  # no flush_all ever ran
        assert tier.stats.hashed_keys > 0 and tier.stats.errors == 0
    finally:
        await tier.aclose()


async def test_long_and_multibyte_keys_round_trip() -> None:
    tier = await _tier()
    try:
        keys = ["{t:1}:" + "k" * 245, "{t:1}:" + "é" * 125, "{t:1}:" + "日本" * 50, "{t:1}:" + "k" * 5000]
        leases = await tier.get_many(keys)
        assert all(isinstance(lz, Lease) and lz.token is not None for lz in leases)
        await tier.fill_many([(k, str(i).encode(), lz) for i, (k, lz) in enumerate(zip(keys, leases, strict=True))
                              if isinstance(lz, Lease)], 60)
        assert await tier.get_many(keys) == [b"0", b"1", b"2", b"3"]
        assert tier.stats.errors == 0
    finally:
        await tier.aclose()


async def test_ttl_over_thirty_days_is_readable(own: OwnMemcached, own_raw: aiomcache.Client) -> None:
    # The rule is real: sent raw, 30 days + 1 s is an absolute time in 1970, so the item is expired at once.
    await own_raw.set(b"raw", b"v", exptime=30 * 86400 + 1)
    assert await own_raw.get(b"raw") is None
    tier = await _tier(own.url)
    try:
        (lease,) = await tier.get_many(["{t:1}:long"])
        assert isinstance(lease, Lease)
        await tier.fill_many([("{t:1}:long", b"v", lease)], 31 * 86400)
        assert await tier.get_many(["{t:1}:long"]) == [b"v"]
        await tier.set_many([("{t:1}:wt", b"w", 1)], 45 * 86400)
        assert await tier.get_many(["{t:1}:wt"]) == [b"w"]
    finally:
        await tier.aclose()


async def test_oversized_values_are_refused_before_sending(own: OwnMemcached, own_raw: aiomcache.Client) -> None:
    tier = await _tier(own.url)
    try:
        big, fits = b"x" * (1024 * 1024 + 1), b"y" * (1024 * 1024 - 600)
        leases = await tier.get_many(["{t:1}:big", "{t:1}:fits"])
        before = int((await own_raw.stats())[b"bytes_read"] or 0)
        await tier.fill_many([("{t:1}:big", big, leases[0]), ("{t:1}:fits", fits, leases[1])], 60)  # type: ignore[list-item]
        sent = int((await own_raw.stats())[b"bytes_read"] or 0) - before
        assert len(fits) < sent < len(fits) + 64 * 1024  # the big one never went on the wire
        assert tier.stats.oversized == 1 and tier.stats.errors == 0
        got = await tier.get_many(["{t:1}:big", "{t:1}:fits"])
        assert isinstance(got[0], Lease) and got[0].token is not None  # lease given up: next reader may try
        assert got[1] == fits
        await tier.set_many([("{t:1}:wt", big, 1)], 60)
        assert tier.stats.oversized == 2 and tier.stats.errors == 0
    finally:
        await tier.aclose()


async def test_oversized_entities_are_served_from_the_store() -> None:
    require(MEMCACHED_URL, "memcached")
    store = MemoryStore()
    async with tierstore.connect(store, [f"{MEMCACHED_URL}?prefix={_prefix()}"]) as db:
        blobs = db.repository(Blob)
        await blobs.put(Blob(1, b"z" * (2 * 1024 * 1024)))
        for _ in range(3):
            got = await blobs.get(1)
            assert got is not None and len(got.data) == 2 * 1024 * 1024
        tier = db.cache.tiers[0]
        assert tier.stats.oversized >= 1 and tier.stats.errors == 0 and tier.stats.lease_waits == 0


async def test_a_timed_out_request_never_desynchronises_the_connection() -> None:
    require(MEMCACHED_URL, "memcached")
    host, port = endpoints(MEMCACHED_URL)[0]
    async with FaultProxy(host, port) as proxy:
        tier = await _tier(f"memcached://127.0.0.1:{proxy.port}", pool_size=1, timeout="100ms",
                           breaker_failures=100)
        try:
            keys = ["{t:1}:a", "{t:1}:b"]
            leases = await tier.get_many(keys)
            await tier.fill_many([(k, k.encode(), lz) for k, lz in zip(keys, leases, strict=True)
                                  if isinstance(lz, Lease)], 60)
            proxy.set_delay(0.3)
            (slow,) = await tier.get_many(["{t:1}:a"])  # the deadline passes; the reply is still coming
            assert isinstance(slow, Lease) and slow.token is None and tier.stats.errors == 1
            proxy.reset()
            # With a single pooled connection, reusing it would read the late reply for "a" as "b"'s.
            assert await tier.get_many(["{t:1}:b"]) == [b"{t:1}:b"]
            await asyncio.sleep(0.35)
            assert await tier.get_many(["{t:1}:b", "{t:1}:a"]) == [b"{t:1}:b", b"{t:1}:a"]
        finally:
            await tier.aclose()


async def test_lease_protocol() -> None:
    tier = await _tier()
    try:
        (first,) = await tier.get_many(["{t:1}:a"])
        assert isinstance(first, Lease) and first.token is not None
        assert await tier.get_many(["{t:1}:a"]) == [None]  # another reader holds the lease
        await tier.fill_many([("{t:1}:a", b"v1", first)], 60)
        assert await tier.get_many(["{t:1}:a"]) == [b"v1"]
        await tier.invalidate_many(["{t:1}:a"])
        await tier.fill_many([("{t:1}:a", b"stale", first)], 60)
        assert tier.stats.fills_dropped == 1
        (second,) = await tier.get_many(["{t:1}:a"])  # the tombstone is cas'ed into a new lease
        assert isinstance(second, Lease)
        await tier.invalidate_many(["{t:1}:a"])
        await tier.fill_many([("{t:1}:a", b"stale", second)], 60)
        assert tier.stats.fills_dropped == 2
        (third,) = await tier.get_many(["{t:1}:a"])
        assert isinstance(third, Lease)
        await tier.fill_many([("{t:1}:a", b"", third)], 60)  # nothing to cache: release
        (fourth,) = await tier.get_many(["{t:1}:a"])
        assert isinstance(fourth, Lease)
    finally:
        await tier.aclose()


async def test_versioned_set() -> None:
    tier = await _tier()
    try:
        k = "{t:1}:v"
        await tier.set_many([(k, b"two", 2)], 60)
        await tier.set_many([(k, b"one", 1)], 60)
        assert await tier.get_many([k]) == [b"two"]
        await tier.set_many([(k, b"three", 3)], 60)
        assert await tier.get_many([k]) == [b"three"]
        await tier.invalidate_many([k])
        await tier.set_many([(k, b"late", 4)], 60)  # a tombstone refuses sets for its lifetime
        (after,) = await tier.get_many([k])
        assert isinstance(after, Lease)
        await tier.set_many([(k, b"written", 5)], 60)  # a write replaces the reader's lease
        await tier.fill_many([(k, b"read-before", after)], 60)
        assert await tier.get_many([k]) == [b"written"]
    finally:
        await tier.aclose()


async def test_clear_moves_every_process_to_a_new_generation() -> None:
    prefix = _prefix()
    a, b, other = await _tier(prefix=prefix), await _tier(prefix=prefix), await _tier()
    try:
        for tier in (a, other):
            (lz,) = await tier.get_many(["{t:1}:k"])
            assert isinstance(lz, Lease)
            await tier.fill_many([("{t:1}:k", b"v", lz)], 60)
        assert await b.get_many(["{t:1}:k"]) == [b"v"]
        await a.clear()
        (miss,) = await b.get_many(["{t:1}:k"])  # b learns the new generation in the same request
        assert isinstance(miss, Lease) and miss.token is not None
        assert b.stats.generation_changes >= 1
        assert await other.get_many(["{t:1}:k"]) == [b"v"]  # another namespace on the same servers
    finally:
        for tier in (a, b, other):
            await tier.aclose()


async def test_partitions_live_on_one_node_and_batches_are_one_request_per_node() -> None:
    tier = await _tier()
    nodes = tier._nodes
    if len(nodes) < 2:
        pytest.skip("needs two memcached nodes")
    clients = [aiomcache.Client(n.addr.split(":")[0], int(n.addr.split(":")[1])) for n in nodes]
    try:
        keys = [f"{{orders:c{p}}}:{i}" for p in range(20) for i in range(3)]
        leases = await tier.get_many(keys)
        await tier.fill_many([(k, b"v", lz) for k, lz in zip(keys, leases, strict=True)
                              if isinstance(lz, Lease)], 60)
        where: dict[str, set[int]] = {}
        for k in keys:
            for j, (node, client) in enumerate(zip(nodes, clients, strict=True)):
                if await client.get(memcached_key(node.namespace(), k)) is not None:
                    where.setdefault(k.split("}")[0], set()).add(j)
        assert all(len(v) == 1 for v in where.values()) and len(where) == 20
        assert {j for v in where.values() for j in v} == {0, 1}
        before = tier.stats.round_trips
        assert await tier.get_many(keys) == [b"v"] * len(keys)
        assert tier.stats.round_trips - before == 2
    finally:
        for c in clients:
            await c.close()
        await tier.aclose()
