"""The forced interleaving, with the write made around tierstore and the invalidation from the change log.

reader misses → reader reads the OLD row from the store and is paused → a foreign writer commits (boto3 /
plain SQL) → the invalidator reads the change from the log and invalidates → the reader resumes and fills.

The reader's lease was taken before its store read, and the change-log invalidation voids it, so the fill is
dropped: after each round, reads through tierstore — in the reader's process and in another one sharing the
tiers — must see the new row. ``ROUNDS`` rounds per store and tier set, 0 stale entries allowed. The control
runs the same interleaving with no invalidator and must find the stale entry (the check can fail).
"""

from __future__ import annotations

import asyncio
import os
import uuid
from collections.abc import AsyncIterator
from typing import Any

import pytest

import tierstore
from _cdc import CdcItem, ForeignWriter, drop_slot, make_source, server_url, store_url
from tierstore.cdc import Invalidator
from tierstore.config import tier_config

from _servers import MEMCACHED_URL, REDIS_URL, require

ROUNDS = int(os.environ.get("TIERSTORE_CDC_RACE_ROUNDS", "100"))
SIDE_BY_SIDE = 10  # rounds run at once, each on its own key, each with its own gate
STORES = [
    pytest.param("postgres", marks=pytest.mark.postgres),
    pytest.param("mysql", marks=pytest.mark.mysql),
    pytest.param("dynamodb", marks=pytest.mark.dynamodb),
]
TIERS = [
    pytest.param(("memory",), id="memory"),
    pytest.param(("redis",), id="redis", marks=pytest.mark.redis),
    pytest.param(("memcached",), id="memcached", marks=pytest.mark.memcached),
    pytest.param(("memory", "redis"), id="memory+redis", marks=pytest.mark.redis),
]


def _url(tier: str, prefix: str) -> str:
    base = {"redis": REDIS_URL, "memcached": MEMCACHED_URL}[tier]
    require(base, tier)
    return f"{base}{'&' if '?' in base else '?'}prefix={prefix}&timeout=1s"


class Gate:
    """Pauses the store reads of armed keys of one database after the row was read, until released."""

    def __init__(self, db: tierstore.Database) -> None:
        self.read_done: dict[Any, asyncio.Event] = {}
        self.release = asyncio.Event()
        store = db.store
        real_get = store.get

        async def gated_get(schema: Any, key: Any, *, consistent: bool = False) -> Any:
            item = await real_get(schema, key, consistent=consistent)
            done = self.read_done.get(key)
            if done is not None and not done.is_set():
                done.set()
                await self.release.wait()
            return item

        store.get = gated_get  # type: ignore[method-assign]  # instance attribute: only this store is gated

    def arm(self, keys: list[str]) -> None:
        self.read_done = {(k,): asyncio.Event() for k in keys}
        self.release = asyncio.Event()


class Setup:
    def __init__(self, store: str, tiers: tuple[str, ...]) -> None:
        self.store = store
        self.tiers = tiers
        self.prefix = f"race{uuid.uuid4().hex[:10]}"
        self.table_prefix = f"r{uuid.uuid4().hex[:8]}_" if store == "dynamodb" else ""
        self.slots: list[str] = []
        self.owned: list[Any] = []

    async def open(self) -> tuple[tierstore.Database, tierstore.Database | None, tierstore.Database]:
        """(reader, another process on the shared tiers or None, the invalidator's database)."""
        url = store_url(self.store, self.table_prefix)
        shared = [_url(t, self.prefix) for t in self.tiers if t != "memory"]
        reader_tiers: list[Any] = (["memory://?max_items=10000"] if "memory" in self.tiers else []) + shared
        reader = await tierstore.connect(url, reader_tiers).open()
        self.owned.append(reader)
        other = None
        if shared:
            other = await tierstore.connect(url, shared).open()
            self.owned.append(other)
            # A sidecar: its own Database on the shared tiers; the reader's memory tier hears Redis's channel.
            sidecar_tiers = [tier_config(u).build() for u in shared]
            inv_db = tierstore.connect("memory://", sidecar_tiers)
            self.owned.append(inv_db)
            self.owned.extend(sidecar_tiers)
        else:
            inv_db = reader  # only an in-process invalidator can reach an in-process tier
        await reader.create_tables(CdcItem)
        return reader, other, inv_db

    def source(self) -> Any:
        src = make_source(self.store, self.table_prefix)
        if self.store == "postgres":
            self.slots.append(src.slot)
        return src

    async def aclose(self) -> None:
        for obj in reversed(self.owned):
            await obj.aclose()
        for slot in self.slots:
            await drop_slot(slot)


@pytest.fixture
async def setup(request: pytest.FixtureRequest) -> AsyncIterator[Setup]:
    store, tiers = request.param
    require(server_url(store), store)
    s = Setup(store, tiers)
    try:
        yield s
    finally:
        await s.aclose()


async def _rounds(
    reader: tierstore.Database, others: list[tierstore.Database], gate: Gate, writer: ForeignWriter,
    keys: list[str], applied: dict[str, asyncio.Event] | None,
) -> int:
    """Forced interleavings on ``keys`` (one round per key, run side by side); returns the stale reads after."""
    repo = reader.repository(CdcItem)
    gate.arm(keys)
    tasks = [asyncio.create_task(repo.get(k)) for k in keys]
    # Every reader missed, took its leases and holds the old row.
    await asyncio.wait_for(asyncio.gather(*(e.wait() for e in gate.read_done.values())), 10)
    events = [applied.setdefault(k, asyncio.Event()) for k in keys] if applied is not None else []
    for k in keys:
        await writer.set_item(k, "new", 1)  # committed around tierstore
    if events:  # the change log's invalidations were delivered
        await asyncio.wait_for(asyncio.gather(*(e.wait() for e in events)), 15)
    gate.release.set()
    for got in await asyncio.wait_for(asyncio.gather(*tasks), 10):
        assert got is not None and got.name == "old"  # began before the write: allowed
    stale = 0
    for db in [reader, *others, reader]:
        for after in await asyncio.gather(*(db.repository(CdcItem).get(k) for k in keys)):
            if after is None or after.name != "new":
                stale += 1
    return stale


def _params() -> list[Any]:
    return [
        pytest.param((s.values[0], t.values[0]), id=f"{s.values[0]}-{t.id}", marks=[*s.marks, *t.marks])
        for s in STORES
        for t in TIERS
    ]


@pytest.mark.parametrize("setup", _params(), indirect=True)
async def test_change_log_invalidation_drops_the_paused_readers_fill(setup: Setup) -> None:
    reader, other, inv_db = await setup.open()
    gate = Gate(reader)
    keys = [f"r{i}-{uuid.uuid4().hex[:8]}" for i in range(ROUNDS)]
    await reader.repository(CdcItem).put_many([CdcItem(k, "old") for k in keys])
    applied: dict[str, asyncio.Event] = {}
    schema_key = {CdcItem.__tierstore_schema__.cache_key((k,)): k for k in keys}  # type: ignore[attr-defined]

    def on_applied(changes: Any) -> None:
        for change in changes:
            for key in change.keys:
                k = schema_key.get(change.schema.cache_key(key))
                if k is not None and k in applied:
                    applied[k].set()

    writer = await ForeignWriter(setup.store, setup.table_prefix).open()
    stale = 0
    try:
        async with Invalidator(inv_db, setup.source(), [CdcItem], on_applied=on_applied) as inv:
            for i in range(0, len(keys), SIDE_BY_SIDE):
                stale += await _rounds(reader, [other] if other else [], gate, writer, keys[i : i + SIDE_BY_SIDE],
                                       applied)
            assert inv.stats.undelivered == 0
    finally:
        await writer.aclose()
    assert stale == 0, f"{stale} stale reads after {ROUNDS} rounds"
    # Each round's fill was refused by the stale-fill guard, or (on a loaded machine) the tier failed open on
    # that round's lease or fill and stored nothing: either way no old row was cached, as `stale == 0` shows.
    dropped = sum(t.stats.fills_dropped for t in reader.cache.tiers)
    failed_open = sum(t.stats.errors + t.stats.lease_wait_timeouts for t in reader.cache.tiers)
    assert dropped + failed_open >= ROUNDS, (dropped, failed_open)


@pytest.mark.parametrize(
    "setup",
    [pytest.param(("postgres", ("memory", "redis")), id="postgres-memory+redis",
                  marks=[pytest.mark.postgres, pytest.mark.redis])],
    indirect=True,
)
async def test_control_without_the_change_log_the_fill_is_stale(setup: Setup) -> None:
    reader, other, _ = await setup.open()
    gate = Gate(reader)
    k = f"ctl-{uuid.uuid4().hex[:8]}"
    await reader.repository(CdcItem).put(CdcItem(k, "old"))
    writer = await ForeignWriter(setup.store, setup.table_prefix).open()
    try:
        stale = await _rounds(reader, [other] if other else [], gate, writer, [k], None)
    finally:
        await writer.aclose()
    assert stale == 3, "with no invalidation the old row must stay cached: the check would catch a lost one"
