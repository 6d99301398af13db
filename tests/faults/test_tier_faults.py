"""Fail-open under faults, on real servers: through the TCP fault proxy (hung, refusing, cut, slow) and by
stopping servers mid-run (SIGSTOP/SIGCONT, kill and restart) — Redis, a Redis Cluster node, memcached.

Each scenario runs one writer and several readers against the repository while the fault is on, then heals
it and checks: 0 failed operations, 0 stale reads (no read returns a value older than the newest write
acknowledged before the read began — during the fault and after), hits again after recovery, and the
invalidations that could not be delivered were replayed.

Servers that a test stops are its own (started on free ports, stopped by PID); the shared ones are only
ever reached through a proxy.
"""

from __future__ import annotations

import asyncio
import os
import random
import signal
import socket
import subprocess
import tempfile
import time
import uuid
from collections.abc import AsyncIterator, Awaitable, Callable, Iterator
from dataclasses import dataclass, field
from typing import Any

import pytest

import tierstore
from tierstore import MemoryStore
from tierstore.testing.proxy import FaultProxy

from _models import Customer
from _servers import MEMCACHED_URL, REDIS_URL, endpoints, require

pytestmark = pytest.mark.faults

FAST = "timeout=50ms&connect_timeout=50ms&breaker_failures=3&breaker_cooldown=200ms&ping=100ms"


def _free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return int(s.getsockname()[1])


def _wait_port(port: int, proc: subprocess.Popen[bytes], what: str) -> None:
    deadline = time.monotonic() + 10
    while True:
        try:
            socket.create_connection(("127.0.0.1", port), timeout=0.2).close()
            return
        except OSError:
            if proc.poll() is not None or time.monotonic() > deadline:
                pytest.fail(f"could not start {what} on port {port}")
            time.sleep(0.05)


class Process:
    """A server process this test started: stop (SIGSTOP), resume (SIGCONT), kill and restart it by PID."""

    def __init__(self, argv: list[str], port: int, what: str) -> None:
        self.argv, self.port, self.what = argv, port, what
        self.proc: subprocess.Popen[bytes] | None = None
        self.start()

    def start(self) -> None:
        self.proc = subprocess.Popen(self.argv, stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL)
        _wait_port(self.port, self.proc, self.what)

    def pause(self) -> None:
        assert self.proc is not None
        os.kill(self.proc.pid, signal.SIGSTOP)

    def resume(self) -> None:
        assert self.proc is not None
        os.kill(self.proc.pid, signal.SIGCONT)

    def kill(self) -> None:
        proc, self.proc = self.proc, None
        if proc is not None and proc.poll() is None:
            os.kill(proc.pid, signal.SIGCONT)
            proc.kill()
            proc.wait(5)

    def restart(self) -> None:
        self.kill()
        self.start()


def redis_process(*extra: str, port: int | None = None) -> Process:
    port = port or _free_port()
    argv = ["redis-server", "--bind", "127.0.0.1", "--port", str(port), "--save", "", "--appendonly", "no", *extra]
    return Process(argv, port, "redis-server")


def memcached_process(port: int | None = None) -> Process:
    port = port or _free_port()
    argv = ["memcached", "-l", "127.0.0.1", "-p", str(port), "-U", "0", "-m", "64"]
    if os.geteuid() == 0:
        argv += ["-u", "root"]
    return Process(argv, port, "memcached")


# -- the workload and its checks -----------------------------------------------------------------------------


@dataclass
class Outcome:
    ops: int = 0
    failed: list[BaseException] = field(default_factory=list)
    stale: list[str] = field(default_factory=list)
    reads_during_fault: int = 0


async def run_with_fault(
    db: tierstore.Database,
    inject: Callable[[], Awaitable[None]],
    heal: Callable[[], Awaitable[None]],
    *,
    fault_for: float = 0.8,
    settle: float = 0.5,
    n_keys: int = 6,
) -> Outcome:
    """Writer + readers through ``db`` while ``inject()``..``heal()``; then check recovery. Returns counts."""
    repo = db.repository(Customer)
    rng = random.Random(7)
    keys = [f"k{i}" for i in range(n_keys)]
    acked: dict[str, int] = {}
    for k in keys:
        await repo.put(Customer(k, "0"))
        acked[k] = 0
    out = Outcome()
    stop = asyncio.Event()
    faulty = False

    def check(k: str, floor: int, got: Customer | None) -> None:
        out.ops += 1
        if faulty:
            out.reads_during_fault += 1
        if got is None or int(got.name) < floor:
            out.stale.append(f"{k}: read {got.name if got else None}, newest acknowledged before it {floor}")

    async def writer() -> None:
        n = 0
        while not stop.is_set():
            k = rng.choice(keys)
            n += 1
            try:
                await repo.put(Customer(k, str(n)), check_version=False)  # one writer: last write wins
                acked[k] = n
                out.ops += 1
            except Exception as exc:
                out.failed.append(exc)
            await asyncio.sleep(0.005)

    async def reader(batch: bool) -> None:
        while not stop.is_set():
            try:
                if batch:
                    ks = rng.sample(keys, 3)
                    floors = [acked[k] for k in ks]
                    for k, floor, got in zip(ks, floors, await repo.get_many(ks), strict=True):
                        check(k, floor, got)
                else:
                    k = rng.choice(keys)
                    floor = acked[k]
                    check(k, floor, await repo.get(k))
            except Exception as exc:
                out.failed.append(exc)
            await asyncio.sleep(0.002)

    tasks = [asyncio.create_task(writer())]
    tasks += [asyncio.create_task(reader(batch=i % 2 == 1)) for i in range(4)]
    try:
        await asyncio.sleep(0.2)
        await inject()
        faulty = True
        await asyncio.sleep(fault_for)
        faulty = False
        await heal()
        await asyncio.sleep(settle)
    finally:
        stop.set()
        await asyncio.gather(*tasks)
    # After recovery: every key reads its newest acknowledged value, and the shared tier serves hits again.
    shared = db.cache.tiers[-1]
    for k in keys:
        got = await repo.get(k)
        check(k, acked[k], got)
    hits = shared.stats.hits
    # Recovery is bounded, not instant: connections cut by the heal fail once more and may reopen the breaker
    # for its cooldown. Read for up to 3 s until the shared tier serves hits again.
    deadline = time.monotonic() + 3.0
    while True:
        for _ in range(3):
            for k in keys:
                await repo.get_many([k])
        recovered = shared.stats.hits > hits or (db.cache.l1 is not None and db.cache.l1.stats.hits > 0)
        if recovered or time.monotonic() > deadline:
            break
        await asyncio.sleep(0.05)
    if db.cache.l1 is None:
        assert shared.stats.hits > hits, "no hits after recovery"
    else:
        assert shared.stats.hits > hits or db.cache.l1.stats.hits > 0, "no hits after recovery"
    # A breaker that the heal's cut connections reopened closes at the next read that reaches its node, but
    # reads of keys L1 holds stop there: probe with keys L1 does not hold, for up to 3 s.
    probe, until = 0, time.monotonic() + 3.0
    while any(s != "closed" for s in shared.stats.breakers.values()) and time.monotonic() < until:
        probe += 1
        await repo.get(f"probe{probe}")
        await asyncio.sleep(0.05)
    return out


def assert_clean(out: Outcome) -> None:
    assert not out.failed, f"{len(out.failed)} failed operations, first: {out.failed[0]!r}"
    assert not out.stale, f"{len(out.stale)} stale reads, first: {out.stale[0]}"
    assert out.ops > 50 and out.reads_during_fault > 0


def _stats(db: tierstore.Database) -> dict[str, Any]:
    return db.cache.tiers[-1].stats.as_dict()


# -- through the proxy ------------------------------------------------------------------------------------

FAULTS = ["blackhole", "refuse", "cut", "slow"]


async def _apply(proxy: FaultProxy, fault: str) -> None:
    if fault == "blackhole":
        proxy.blackhole()
        await proxy.cut()  # open connections hang too (the blackhole applies to new ones at accept)
    elif fault == "refuse":
        proxy.drop()
        await proxy.cut()
    elif fault == "cut":
        for _ in range(4):
            await proxy.cut()
            await asyncio.sleep(0.15)
    elif fault == "slow":
        proxy.set_delay(0.2)  # four times the tier's deadline


async def _heal(proxy: FaultProxy) -> None:
    proxy.reset()
    await proxy.cut()  # connections that hung in the blackhole are useless now


@pytest.fixture
async def redis_proxy() -> AsyncIterator[FaultProxy]:
    require(REDIS_URL, "redis")
    host, port = endpoints(REDIS_URL)[0]
    async with FaultProxy(host, port) as proxy:
        yield proxy


@pytest.fixture
async def memcached_proxies() -> AsyncIterator[list[FaultProxy]]:
    require(MEMCACHED_URL, "memcached")
    proxies = [FaultProxy(h, p) for h, p in endpoints(MEMCACHED_URL)]
    for p in proxies:
        await p.start()
    try:
        yield proxies
    finally:
        for p in proxies:
            await p.aclose()


@pytest.mark.redis
@pytest.mark.parametrize("l1", [False, True], ids=["redis", "memory+redis"])
@pytest.mark.parametrize("fault", FAULTS)
async def test_redis_through_proxy(redis_proxy: FaultProxy, fault: str, l1: bool) -> None:
    url = f"redis://127.0.0.1:{redis_proxy.port}/0?prefix=f{uuid.uuid4().hex[:10]}&{FAST}"
    async with tierstore.connect(MemoryStore(), ["memory://", url] if l1 else [url]) as db:
        out = await run_with_fault(db, lambda: _apply(redis_proxy, fault), lambda: _heal(redis_proxy))
        assert_clean(out)
        stats = _stats(db)
        if fault in ("blackhole", "refuse", "slow"):  # a cut may meet no request in flight: then nothing fails
            assert stats["errors"], stats
            assert stats["breaker_opens"] >= 1, stats
            assert stats["invalidations_replayed"], stats
        assert stats["breakers"] == {f"127.0.0.1:{redis_proxy.port}": "closed"}


@pytest.mark.memcached
@pytest.mark.parametrize("l1", [False, True], ids=["memcached", "memory+memcached"])
@pytest.mark.parametrize("fault", FAULTS)
async def test_memcached_through_proxy(memcached_proxies: list[FaultProxy], fault: str, l1: bool) -> None:
    hosts = ",".join(f"127.0.0.1:{p.port}" for p in memcached_proxies)
    url = f"memcached://{hosts}?prefix=f{uuid.uuid4().hex[:10]}&timeout=50ms&connect_timeout=50ms" \
          "&breaker_failures=3&breaker_cooldown=200ms"
    victim = memcached_proxies[0]  # one node fails; the other keeps serving its partitions
    async with tierstore.connect(MemoryStore(), ["memory://", url] if l1 else [url]) as db:
        # Nodes are chosen by rendezvous hashing on random proxy ports: with 24 keys, the chance that none lives
        # on the victim (and the fault goes unseen) is 2^-24.
        out = await run_with_fault(db, lambda: _apply(victim, fault), lambda: _heal(victim), n_keys=24)
        assert_clean(out)
        stats = _stats(db)
        if fault in ("blackhole", "refuse", "slow"):  # a cut may meet no request in flight: then nothing fails
            assert stats["errors"], stats
            assert stats["breaker_opens"] >= 1, stats
        assert set(stats["breakers"].values()) == {"closed"}


# -- stopping servers ------------------------------------------------------------------------------------------


@pytest.fixture
def own_redis() -> Iterator[Process]:
    proc = redis_process()
    try:
        yield proc
    finally:
        proc.kill()


@pytest.fixture
def own_memcached() -> Iterator[Process]:
    proc = memcached_process()
    try:
        yield proc
    finally:
        proc.kill()


@pytest.mark.redis
@pytest.mark.parametrize("how", ["sigstop", "kill-restart"])
async def test_redis_server_stopped_mid_run(own_redis: Process, how: str) -> None:
    url = f"redis://127.0.0.1:{own_redis.port}/0?prefix=s{uuid.uuid4().hex[:10]}&{FAST}"

    async def inject() -> None:
        own_redis.pause() if how == "sigstop" else own_redis.kill()

    async def heal() -> None:
        own_redis.resume() if how == "sigstop" else await asyncio.to_thread(own_redis.start)

    async with tierstore.connect(MemoryStore(), ["memory://", url]) as db:
        out = await run_with_fault(db, inject, heal)
        assert_clean(out)
        assert _stats(db)["breaker_opens"] >= 1


@pytest.mark.memcached
@pytest.mark.parametrize("how", ["sigstop", "kill-restart"])
async def test_memcached_server_stopped_mid_run(own_memcached: Process, how: str) -> None:
    require(MEMCACHED_URL, "memcached")
    shared = ",".join(f"{h}:{p}" for h, p in endpoints(MEMCACHED_URL))
    url = f"memcached://{shared},127.0.0.1:{own_memcached.port}?prefix=s{uuid.uuid4().hex[:10]}" \
          "&timeout=50ms&connect_timeout=50ms&breaker_failures=3&breaker_cooldown=200ms"

    async def inject() -> None:
        own_memcached.pause() if how == "sigstop" else own_memcached.kill()

    async def heal() -> None:
        own_memcached.resume() if how == "sigstop" else await asyncio.to_thread(own_memcached.start)

    async with tierstore.connect(MemoryStore(), [url]) as db:
        # 32 keys over three nodes: the chance that none lives on the stopped one (and the fault goes unseen)
        # is (2/3)^32, about 2e-6.
        out = await run_with_fault(db, inject, heal, n_keys=32)
        assert_clean(out)
        assert _stats(db)["breaker_opens"] >= 1


def _cluster_port(taken: set[int]) -> int:
    """A free port whose cluster bus port (+10000) is free too, clear of the ports in ``taken``."""
    rng = random.Random()
    for _ in range(200):
        port = rng.randrange(20000, 40000)
        if {port, port + 10000, port - 10000} & taken:
            continue
        try:
            for p in (port, port + 10000):
                with socket.socket() as s:
                    s.bind(("127.0.0.1", p))
        except OSError:
            continue
        taken.update((port, port + 10000))
        return port
    pytest.fail("no free port pair for a cluster node")


@pytest.fixture
def own_cluster() -> Iterator[list[Process]]:
    with tempfile.TemporaryDirectory() as d:
        taken: set[int] = set()
        ports = [_cluster_port(taken) for _ in range(3)]
        nodes = [
            redis_process("--cluster-enabled", "yes", "--cluster-config-file", f"{d}/nodes-{p}.conf",
                          "--cluster-node-timeout", "5000", "--dir", d, port=p)
            for p in ports
        ]
        try:
            subprocess.run(
                ["redis-cli", "--cluster", "create", *[f"127.0.0.1:{p}" for p in ports], "--cluster-replicas", "0",
                 "--cluster-yes"],
                check=True, capture_output=True, timeout=30,
            )
            deadline = time.monotonic() + 15
            while True:
                info = subprocess.run(["redis-cli", "-p", str(ports[0]), "cluster", "info"], capture_output=True,
                                      text=True, timeout=5).stdout
                if "cluster_state:ok" in info:
                    break
                if time.monotonic() > deadline:
                    pytest.fail(f"own cluster not ok: {info}")
                time.sleep(0.1)
            yield nodes
        finally:
            for n in nodes:
                n.kill()


@pytest.mark.redis_cluster
async def test_redis_cluster_node_stopped_mid_run(own_cluster: list[Process]) -> None:
    seeds = ",".join(f"127.0.0.1:{n.port}" for n in own_cluster)
    url = f"redis+cluster://{seeds}?prefix=s{uuid.uuid4().hex[:10]}&{FAST}"
    victim = own_cluster[1]

    async def inject() -> None:
        victim.pause()

    async def heal() -> None:
        victim.resume()

    async with tierstore.connect(MemoryStore(), ["memory://", url]) as db:
        out = await run_with_fault(db, inject, heal, n_keys=12)
        assert_clean(out)
        stats = _stats(db)
        assert stats["breakers"][f"127.0.0.1:{victim.port}"] == "closed"
        assert stats["breaker_opens"] >= 1


# -- bounded backlog ------------------------------------------------------------------------------------------


async def _read_until_cleared(
    db: tierstore.Database, repo: Any, keys: list[str], expected: list[Any], *, expected_clears: int | None
) -> None:
    """Read ``keys`` until the tier has cleared its namespace (within 10 s); every read must see ``expected``.

    ``expected_clears``: the exact number of clears, or ``None`` for at least one (several nodes).
    """
    deadline = time.monotonic() + 10.0
    while True:
        assert await repo.get_many(keys) == expected
        clears = _stats(db)["namespace_clears"]
        if clears >= 1:
            break
        assert time.monotonic() < deadline, "the namespace was never cleared after the outage"
        await asyncio.sleep(0.05)
    assert await repo.get_many(keys) == expected
    if expected_clears is not None:
        assert _stats(db)["namespace_clears"] == expected_clears


@pytest.mark.redis
async def test_redis_backlog_overflow_clears_the_namespace(redis_proxy: FaultProxy) -> None:
    url = f"redis://127.0.0.1:{redis_proxy.port}/0?prefix=o{uuid.uuid4().hex[:10]}&{FAST}&max_pending=3"
    async with tierstore.connect(MemoryStore(), [url]) as db:
        repo = db.repository(Customer)
        keys = [f"k{i}" for i in range(8)]
        await repo.put_many([Customer(k, "old") for k in keys])
        await repo.get_many(keys)
        await _apply(redis_proxy, "refuse")
        for k in keys:  # eight undeliverable invalidations: more than max_pending
            await repo.put(Customer(k, "new", version=1))
        await _heal(redis_proxy)
        # After the breaker's cooldown the node is probed, cleared and read: wait for that (bounded), reading
        # all along — no read may ever see an old value.
        await _read_until_cleared(db, repo, keys, [Customer(k, "new", version=2) for k in keys], expected_clears=1)


@pytest.mark.memcached
async def test_memcached_backlog_overflow_moves_to_a_new_generation(memcached_proxies: list[FaultProxy]) -> None:
    hosts = ",".join(f"127.0.0.1:{p.port}" for p in memcached_proxies)
    url = f"memcached://{hosts}?prefix=o{uuid.uuid4().hex[:10]}&timeout=50ms&breaker_failures=3" \
          "&breaker_cooldown=200ms&max_pending=2"
    async with tierstore.connect(MemoryStore(), [url]) as db:
        repo = db.repository(Customer)
        keys = [f"k{i}" for i in range(16)]
        await repo.put_many([Customer(k, "old") for k in keys])
        await repo.get_many(keys)
        for p in memcached_proxies:
            await _apply(p, "refuse")
        for k in keys:
            await repo.put(Customer(k, "new", version=1))
        for p in memcached_proxies:
            await _heal(p)
        await _read_until_cleared(db, repo, keys, [Customer(k, "new", version=2) for k in keys], expected_clears=None)
