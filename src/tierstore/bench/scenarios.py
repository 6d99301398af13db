"""The built-in scenarios. Each does the same work on every system that can run it.

The names (``get``, ``get_many_100``, ``get_concurrent_64``, ``put``, ``update``, ``query_page``, ``join_100``,
``join_many_20``, ``zipf_read``, ``herd_100``) are part of the JSON contract of ``tierstore bench --json``. A new
workload is a :class:`~tierstore.bench.api.Scenario` subclass added to :func:`builtin_scenarios`.
"""

from __future__ import annotations

import asyncio
from collections.abc import Sequence
from typing import Any

from tierstore.bench.api import (
    CACHE,
    CONCURRENT,
    GET,
    GET_MANY,
    JOIN,
    JOIN_MANY,
    L1,
    PUT,
    QUERY,
    UPDATE,
    Cell,
    Driver,
    GetFn,
    Op,
    RunContext,
    Scenario,
)
from tierstore.bench.data import (
    JOIN_PAGE,
    MANY_PARENTS,
    BenchAccount,
    BenchItem,
    BenchOrder,
    BenchVisit,
    Dataset,
    lru_hit_ratio,
)

__all__ = [
    "Get",
    "GetConcurrent64",
    "GetMany100",
    "Herd100",
    "Join100",
    "JoinMany20",
    "Put",
    "QueryPage",
    "Update",
    "ZipfRead",
    "builtin_scenarios",
    "check_join",
    "check_join_many",
    "join_pairs",
    "many_pairs",
]

PAGE_SIZE = 50
HERD = 100


async def _read_each(get: GetFn, keys: Sequence[tuple[str, str]]) -> None:
    """One read of every key a cached scenario reads, so the first timed op meets a warm cache however short
    the warm-up (a cold read costs milliseconds on a server store: 16 of them can outlast a 25 ms warm-up)."""
    for pk, sk in keys:
        await get(pk, sk)


class Get(Scenario):
    name = "get"
    needs = frozenset({GET})
    cached = True
    description = "get() of 16 hot keys in turn, cache warm"

    async def begin(self, driver: Driver, ctx: RunContext) -> None:
        await _read_each(driver.getter(), ctx.data.hot)

    def prepare(self, driver: Driver, data: Dataset) -> Op:
        get = driver.getter()
        pks = [k[0] for k in data.hot]
        sks = [k[1] for k in data.hot]
        n = len(pks)
        return lambda i: get(pks[i % n], sks[i % n])


class GetMany100(Scenario):
    name = "get_many_100"
    needs = frozenset({GET_MANY})
    cached = True
    description = "get_many() of the same 100 keys spread over every partition, cache warm"

    async def begin(self, driver: Driver, ctx: RunContext) -> None:
        await driver.batch_getter()(ctx.data.many)

    def prepare(self, driver: Driver, data: Dataset) -> Op:
        get_many = driver.batch_getter()
        keys = list(data.many)
        return lambda i: get_many(keys)


class GetConcurrent64(Scenario):
    name = "get_concurrent_64"
    needs = frozenset({GET, CONCURRENT})
    cached = True
    concurrency = 64
    description = "64 tasks each doing get() over a warm set of 128 keys (distinct keys in flight)"

    async def begin(self, driver: Driver, ctx: RunContext) -> None:
        await _read_each(driver.concurrent_getter(), ctx.data.warm)

    def prepare(self, driver: Driver, data: Dataset) -> Op:
        get = driver.concurrent_getter()
        pks = [k[0] for k in data.warm]
        sks = [k[1] for k in data.warm]
        n = len(pks)
        return lambda i: get(pks[i % n], sks[i % n])


class Put(Scenario):
    name = "put"
    needs = frozenset({PUT})
    description = "put() (upsert) of 100 items of a write partition in turn"

    def prepare(self, driver: Driver, data: Dataset) -> Op:
        put = driver.putter()
        items = list(data.writes)
        n = len(items)
        return lambda i: put(items[i % n])


class Update(Scenario):
    name = "update"
    needs = frozenset({UPDATE, PUT})
    description = "update(): +1 to a counter field of 100 items of a write partition in turn (no read first)"

    async def begin(self, driver: Driver, ctx: RunContext) -> None:
        put = driver.putter()
        for item in ctx.data.writes:
            await put(item)

    def prepare(self, driver: Driver, data: Dataset) -> Op:
        update = driver.updater()
        keys = [(i.pk, i.sk) for i in data.writes]
        n = len(keys)
        return lambda i: update(keys[i % n][0], keys[i % n][1], 1)


class QueryPage(Scenario):
    name = "query_page"
    needs = frozenset({QUERY})
    description = f"first page of {PAGE_SIZE} items of one partition (of 100), partitions in turn"

    def prepare(self, driver: Driver, data: Dataset) -> Op:
        page = driver.pager()
        pks = data.partition_keys
        n = len(pks)
        return lambda i: page(pks[i % n], PAGE_SIZE)


class ZipfRead(Scenario):
    """Zipf-distributed get() over the whole key space, which is larger than the in-process tier.

    The tier starts cold; its hit ratio over the timed reads is reported with that of a plain LRU of the same
    capacity run over the very same key sequence.
    """

    name = "zipf_read"
    needs = frozenset({GET, L1})
    description = "get() of Zipf(s=1) keys over all items; L1 holds a tenth of them"

    async def begin(self, driver: Driver, ctx: RunContext) -> None:
        await driver.clear_cache()

    def prepare(self, driver: Driver, data: Dataset) -> Op:
        get = driver.getter()
        pks = [k[0] for k in data.keys]
        sks = [k[1] for k in data.keys]
        seq = data.zipf
        n = len(seq)
        return lambda i: get(pks[seq[i % n]], sks[seq[i % n]])

    def finish(self, driver: Driver, cell: Cell, ctx: RunContext) -> dict[str, Any]:
        hits = cell.counters.get("l1_hits", 0)
        misses = cell.counters.get("l1_misses", 0)
        total = hits + misses
        return {
            "hit_ratio": round(hits / total, 4) if total else None,
            "lru_hit_ratio": round(lru_hit_ratio(ctx.data.zipf, ctx.data.l1_capacity, cell.spans), 4),
            "l1_capacity": ctx.data.l1_capacity,
            "key_space": len(ctx.data.items),
        }


class Herd100(Scenario):
    """A hot key is invalidated, then 100 tasks read it at once: store reads per herd should be 1."""

    name = "herd_100"
    needs = frozenset({GET, CACHE})
    round_trips = ("store",)
    description = f"invalidate a hot key, then {HERD} concurrent get() of it; round trips = store reads"

    def prepare(self, driver: Driver, data: Dataset) -> Op:
        get = driver.concurrent_getter()
        invalidate = driver.invalidate
        hot = list(data.hot)
        n = len(hot)

        async def herd(i: int) -> None:
            pk, sk = hot[i % n]
            await invalidate(pk, sk)
            await asyncio.gather(*(get(pk, sk) for _ in range(HERD)))

        return herd


def join_pairs(result: Any) -> list[tuple[BenchOrder, BenchItem | None]]:
    """``(order, customer)`` pairs of a join result: a tierstore ``Page`` of orders with ``customer`` loaded,
    or the pairs a hand-written floor returns."""
    items = getattr(result, "items", None)
    if items is not None:
        return [(o, o.customer) for o in items]
    return list(result)


class Join100(Scenario):
    """A page of 100 orders of one partition joined to their customers (``Ref``), order partitions in turn.

    tierstore: ``repo.query(p, limit=100).join(BenchOrder.customer)``. Floors: the same query, then either one
    batched read of the distinct customers (``-join-batch``) or one read per order (``-join-n+1``). Before
    timing, the first and the last partition's joins are checked against the data set on every system.
    """

    name = "join_100"
    needs = frozenset({JOIN})
    description = f"query page of {JOIN_PAGE} orders + their customers (Ref), order partitions in turn"

    async def begin(self, driver: Driver, ctx: RunContext) -> None:
        join = driver.joiner()
        data = ctx.data
        expected: dict[str, list[BenchOrder]] = {}
        for order in data.orders:
            expected.setdefault(order.pk, []).append(order)
        pks = data.order_partition_keys
        for pk in dict.fromkeys(pks[:1] + pks[-1:]):
            check_join(join_pairs(await join(pk, JOIN_PAGE)), expected[pk], data)

    def prepare(self, driver: Driver, data: Dataset) -> Op:
        join = driver.joiner()
        pks = data.order_partition_keys
        if not pks:
            raise ValueError("the data set has no order partitions")
        n = len(pks)
        return lambda i: join(pks[i % n], JOIN_PAGE)


def check_join(
    pairs: Sequence[tuple[BenchOrder, BenchItem | None]], orders: Sequence[BenchOrder], data: Dataset
) -> None:
    """Raise ``AssertionError`` unless ``pairs`` are ``orders`` in order, each with its own customer."""
    got = [(o.pk, o.sk) for o, _ in pairs]
    want = [(o.pk, o.sk) for o in orders]
    if got != want:
        raise AssertionError(f"join returned orders {got[:3]}… of {len(got)}, expected {want[:3]}… of {len(want)}")
    for order, customer in pairs:
        key = (order.customer_pk, order.customer_sk)
        if customer is None or customer != data.item(key):
            raise AssertionError(f"order {order.pk}/{order.sk}: customer {key} is {customer!r}")


def many_pairs(result: Any) -> list[tuple[BenchAccount, list[BenchVisit]]]:
    """``(account, visits)`` pairs of a ``join_many_20`` result: accounts with ``visits`` loaded, or the pairs a
    hand-written floor returns."""
    if result and isinstance(result[0], BenchAccount):
        return [(a, a.visits) for a in result]
    return list(result)


class JoinMany20(Scenario):
    """The visits of 20 accounts (``Many``, one-to-many), account groups in turn: one batched read.

    tierstore: ``repo.load(accounts, BenchAccount.visits)``. Floors (``raw:<client>-join-many``): one
    ``SELECT … WHERE account_id IN (…)`` grouped by hand, or dict lookups for memory. Accounts have 0 to 20
    visits. Before timing, every group is checked against the data set.
    """

    name = "join_many_20"
    needs = frozenset({JOIN_MANY})
    description = f"the children of {MANY_PARENTS} parents (Many: visits of accounts), groups in turn"

    async def begin(self, driver: Driver, ctx: RunContext) -> None:
        join = driver.many_joiner()
        for group in ctx.data.many_groups:
            check_join_many(many_pairs(await join(group)), group, ctx.data)

    def prepare(self, driver: Driver, data: Dataset) -> Op:
        join = driver.many_joiner()
        groups = data.many_groups
        n = len(groups)
        return lambda i: join(groups[i % n])


def check_join_many(
    pairs: Sequence[tuple[BenchAccount, list[BenchVisit]]], accounts: Sequence[BenchAccount], data: Dataset
) -> None:
    """Raise ``AssertionError`` unless ``pairs`` are ``accounts`` in order, each with its visits in order."""
    if [a.id for a, _ in pairs] != [a.id for a in accounts]:
        raise AssertionError(f"join_many returned accounts {[a.id for a, _ in pairs][:3]}…")
    for account, visits in pairs:
        if list(visits) != data.visits_of(account.id):
            raise AssertionError(f"account {account.id}: {len(visits)} visits, not its own")


def builtin_scenarios() -> list[Scenario]:
    """Every built-in scenario, in the order they run and appear in the table."""
    return [
        Get(), GetMany100(), GetConcurrent64(), Put(), Update(), QueryPage(), Join100(), JoinMany20(), ZipfRead(),
        Herd100(),
    ]
