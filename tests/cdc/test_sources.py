"""Each change log, on a real server, invalidates what a foreign write changed (DynamoDB Local's stream, a
PostgreSQL logical slot, the MariaDB row binlog; the writes go through boto3 / plain SQL, never tierstore).

Reads begin after the invalidation was delivered: in the invalidator's own process they must be fresh at
once; in another Database sharing the Redis tier (its in-process tier evicts through the channel) within a
short, asserted bound.
"""

from __future__ import annotations

import uuid
from collections.abc import AsyncIterator
from dataclasses import dataclass
from typing import Any

import pytest

import tierstore
from _cdc import (
    ENTITIES,
    Applied,
    CdcBlob,
    CdcEvent,
    CdcItem,
    CdcOrder,
    ForeignWriter,
    drop_slot,
    eventually,
    make_source,
    server_url,
    store_url,
)
from tierstore import CachePolicy, begins_with
from tierstore.cdc import FileCheckpoint, Invalidator, MemoryCheckpoint
from tierstore.policies.dax import DaxStylePolicy

from _servers import REDIS_URL, endpoints, require

STORE_PARAMS = [
    pytest.param("postgres", marks=[pytest.mark.postgres, pytest.mark.redis]),
    pytest.param("mysql", marks=[pytest.mark.mysql, pytest.mark.redis]),
    pytest.param("dynamodb", marks=[pytest.mark.dynamodb, pytest.mark.redis]),
]
CROSS_PROCESS_BOUND = 5.0  # seconds for another process's in-process tier to hear the channel


@dataclass
class Env:
    store: str
    prefix: str
    table_prefix: str
    a: tierstore.Database  # the invalidator's process (memory + redis)
    b: tierstore.Database  # another process (its own memory tier + the same redis)
    writer: ForeignWriter
    slots: list[str]

    def source(self, **kw: Any) -> Any:
        src = make_source(self.store, self.table_prefix, **kw)
        if self.store == "postgres":
            self.slots.append(src.slot)
        return src


def _tiers(prefix: str) -> list[str]:
    return ["memory://?max_items=10000", f"{REDIS_URL}{'&' if '?' in REDIS_URL else '?'}prefix={prefix}&timeout=1s"]


@pytest.fixture(params=STORE_PARAMS)
async def env(request: pytest.FixtureRequest) -> AsyncIterator[Env]:
    store: str = request.param
    require(server_url(store), store)
    require(REDIS_URL, "redis")
    prefix = f"cdc{uuid.uuid4().hex[:10]}"
    table_prefix = f"c{uuid.uuid4().hex[:8]}_" if store == "dynamodb" else ""
    url = store_url(store, table_prefix)
    a = await tierstore.connect(url, _tiers(prefix)).open()
    b = await tierstore.connect(url, _tiers(prefix)).open()
    await a.create_tables(*ENTITIES)
    writer = await ForeignWriter(store, table_prefix).open()
    e = Env(store, prefix, table_prefix, a, b, writer, [])
    try:
        yield e
    finally:
        await writer.aclose()
        await a.aclose()
        await b.aclose()
        for slot in e.slots:
            await drop_slot(slot)


def key() -> str:
    return f"k{uuid.uuid4().hex[:12]}"


async def fresh_in(db: tierstore.Database, entity: Any, k: Any, expect: Any, within: float = 0.0) -> bool:
    repo = db.repository(entity)

    async def check() -> bool:
        got = await repo.get(*k) if isinstance(k, tuple) else await repo.get(k)
        return bool(expect(got))

    return bool(await eventually(check, within)) if within else await check()


async def test_update_delete_insert_by_a_foreign_writer_are_invalidated(env: Env) -> None:
    applied = Applied()
    ra, rb = env.a.repository(CdcItem), env.b.repository(CdcItem)
    k1, k2 = key(), key()
    await ra.put(CdcItem(k1, "old"))
    for repo in (ra, rb, ra, rb):  # cached in both processes' memory tiers and in redis
        got = await repo.get(k1)
        assert got is not None and got.name == "old"
        assert await repo.get(k2) is None
    async with Invalidator(env.a, env.source(), [CdcItem], on_applied=applied):
        await env.writer.set_item(k1, "new", 1)
        await applied.wait_for(CdcItem, k1)
        assert await fresh_in(env.a, CdcItem, k1, lambda g: g is not None and g.name == "new")
        assert await fresh_in(env.b, CdcItem, k1, lambda g: g is not None and g.name == "new", CROSS_PROCESS_BOUND)

        applied.forget()
        await env.writer.delete_item(k1)
        await applied.wait_for(CdcItem, k1)
        assert await fresh_in(env.a, CdcItem, k1, lambda g: g is None)
        assert await fresh_in(env.b, CdcItem, k1, lambda g: g is None, CROSS_PROCESS_BOUND)

        applied.forget()
        await env.writer.insert_item(k2, "born")
        await applied.wait_for(CdcItem, k2)
        assert await fresh_in(env.a, CdcItem, k2, lambda g: g is not None and g.name == "born")
        assert await fresh_in(env.b, CdcItem, k2, lambda g: g is not None and g.name == "born", CROSS_PROCESS_BOUND)


async def test_composite_and_bytes_keys_map_back_to_the_cache_key(env: Env) -> None:
    applied = Applied()
    events, blobs = env.a.repository(CdcEvent), env.a.repository(CdcBlob)
    tenant = key()
    stream = "s,{x}:y\x00é"  # separators, braces, NUL and non-ASCII: escaped in cache keys, synthetic in DynamoDB
    if env.store != "dynamodb":
        stream = stream.replace("\x00", "")  # PostgreSQL text cannot hold NUL
    blob_id = b"\x00\xff" + uuid.uuid4().bytes
    await events.put(CdcEvent(tenant, stream, 7, "old"))
    await blobs.put(CdcBlob(blob_id, "old"))
    assert (await events.get((tenant, stream), 7)).body == "old"  # type: ignore[union-attr]
    assert (await blobs.get(blob_id)).label == "old"  # type: ignore[union-attr]
    async with Invalidator(env.a, env.source(), [CdcEvent, CdcBlob], on_applied=applied):
        if env.store == "dynamodb":
            from tierstore.backends import schema_of
            from tierstore.stores.dynamodb.codec import codec_for

            ev_key = codec_for(schema_of(CdcEvent)).key((tenant, stream, 7))
            bl_key = codec_for(schema_of(CdcBlob)).key((blob_id,))
            boto = env.writer.boto
            boto.update_item(TableName=env.table_prefix + "cdc_events", Key=ev_key, UpdateExpression="SET body = :b",
                             ExpressionAttributeValues={":b": {"S": "new"}})
            boto.update_item(TableName=env.table_prefix + "cdc_blobs", Key=bl_key, UpdateExpression="SET label = :b",
                             ExpressionAttributeValues={":b": {"S": "new"}})
        else:
            await env.writer.sql("UPDATE cdc_events SET body = 'new' WHERE tenant = $1 AND stream = $2 AND seq = 7",
                                 tenant, stream)
            await env.writer.sql("UPDATE cdc_blobs SET label = 'new' WHERE id = $1", blob_id)
        await applied.wait_for(CdcEvent, ((tenant, stream), 7))
        await applied.wait_for(CdcBlob, blob_id)
        assert (await events.get((tenant, stream), 7)).body == "new"  # type: ignore[union-attr]
        assert (await blobs.get(blob_id)).label == "new"  # type: ignore[union-attr]


@pytest.mark.parametrize("env", STORE_PARAMS[:2], indirect=True)  # SQL: DynamoDB cannot change an item's key
async def test_an_update_that_moves_the_key_invalidates_both_keys(env: Env) -> None:
    applied = Applied()
    repo = env.a.repository(CdcItem)
    old, new = key(), key()
    await repo.put(CdcItem(old, "x"))
    assert await repo.get(old) is not None and await repo.get(new) is None
    async with Invalidator(env.a, env.source(), [CdcItem], on_applied=applied):
        await env.writer.sql("UPDATE cdc_items SET id = $1 WHERE id = $2", new, old)
        await applied.wait_for(CdcItem, old, new)
        assert await repo.get(old) is None
        moved = await repo.get(new)
        assert moved is not None and moved.name == "x"


async def test_the_dax_style_query_cache_is_invalidated_for_the_partition_and_its_indexes(env: Env) -> None:
    applied = Applied()
    prefix = f"cdcq{uuid.uuid4().hex[:8]}"
    from tierstore.config import tier_config

    tiers = [tier_config(u).build() for u in _tiers(prefix)]
    dax = DaxStylePolicy(tiers)
    url = store_url(env.store, env.table_prefix)
    db = await tierstore.connect(url, tiers, policy=dax.item_policy, query_cache=dax).open()
    try:
        orders = db.repository(CdcOrder)
        cust = key()
        status = f"st{uuid.uuid4().hex[:8]}"
        await orders.put_many([CdcOrder(cust, f"o{i}", status, i) for i in range(3)])
        assert [o.total for o in await orders.query(cust).all()] == [0, 1, 2]
        assert len(await orders.query(status, index="by_status").all()) == 3
        assert [o.total for o in await orders.query(cust).all()] == [0, 1, 2]  # served by the query cache
        hits = dax.stats.hits
        assert hits >= 1
        async with Invalidator(db, env.source(), [CdcOrder], on_applied=applied):
            if env.store == "dynamodb":
                env.writer.boto.update_item(
                    TableName=env.table_prefix + "cdc_orders",
                    Key={"customer_id": {"S": cust}, "order_id": {"S": "o1"}},
                    UpdateExpression="SET #s = :s, #t = :t", ExpressionAttributeNames={"#s": "status", "#t": "total"},
                    ExpressionAttributeValues={":s": {"S": "shipped"}, ":t": {"N": "100"}},
                )
            else:
                await env.writer.sql(
                    "UPDATE cdc_orders SET status = 'shipped', total = 100 WHERE customer_id = $1 AND order_id = 'o1'",
                    cust,
                )
            await applied.wait_for(CdcOrder, (cust, "o1"))
            assert [o.total for o in await orders.query(cust).all()] == [0, 100, 2]
            assert [o.order_id for o in await orders.query(status, index="by_status").all()] == ["o0", "o2"]
            assert [o.order_id for o in await orders.query(cust, sort=begins_with("o1")).all()] == ["o1"]
            got = await orders.get(cust, "o1")
            assert got is not None and got.status == "shipped"
    finally:
        await db.aclose()
        for t in tiers:
            await t.aclose()


async def test_a_restart_resumes_from_the_checkpoint_and_a_missing_checkpoint_would_lose_writes(
    env: Env, tmp_path: Any
) -> None:
    """Stop the invalidator, write while it is down, start a new one on the same checkpoint: the write is
    invalidated. The control starts without the checkpoint and must leave the write stale (the check works)."""
    applied = Applied()
    repo = env.a.repository(CdcItem)
    k_up, k_down, k_control = key(), key(), key()
    for k in (k_up, k_down, k_control):
        await repo.put(CdcItem(k, "v1"))
    path = tmp_path / "checkpoint.json"
    checkpoint: Any = FileCheckpoint(path) if env.store != "postgres" else MemoryCheckpoint()
    source = env.source()
    async with Invalidator(env.a, source, [CdcItem], checkpoint=checkpoint, on_applied=applied):
        await env.writer.set_item(k_up, "v2", 2)
        await applied.wait_for(CdcItem, k_up)
    # Down: cache the old values, then write around tierstore.
    for k in (k_down, k_control):
        got = await repo.get(k)
        assert got is not None and got.name == "v1"
    await env.writer.set_item(k_down, "v2", 2)
    assert (await repo.get(k_down)).name == "v1"  # type: ignore[union-attr]  # stale while nobody invalidates
    resumed = env.source(slot=getattr(source, "slot", None)) if env.store == "postgres" else env.source()
    async with Invalidator(env.a, resumed, [CdcItem], checkpoint=checkpoint, on_applied=applied):
        await applied.wait_for(CdcItem, k_down)
        got = await repo.get(k_down)
        assert got is not None and got.name == "v2"
    # Control: a new invalidator with no checkpoint (a new slot) starts at the log's end.
    await env.writer.set_item(k_control, "v2", 2)
    control = Applied()
    async with Invalidator(env.a, env.source(), [CdcItem], checkpoint=MemoryCheckpoint(), on_applied=control):
        await env.writer.set_item(k_up, "v3", 3)  # something after the start, to know it is reading
        await control.wait_for(CdcItem, k_up)
        stale = await repo.get(k_control)
        assert stale is not None and stale.name == "v1", "without the checkpoint the write made while down is lost"
        assert control.keys.isdisjoint({env.a.repository(CdcItem).schema.cache_key((k_control,))})


async def test_a_policy_in_write_through_mode_is_invalidated_too(env: Env) -> None:
    """Write-through tiers hold versioned entries; a foreign write still has to remove them."""
    applied = Applied()
    prefix = f"cdcw{uuid.uuid4().hex[:8]}"
    db = await tierstore.connect(store_url(env.store, env.table_prefix), _tiers(prefix),
                                 policy=CachePolicy(write_mode="write_through")).open()
    try:
        repo = db.repository(CdcItem)
        k = key()
        await repo.put(CdcItem(k, "v1"))
        assert (await repo.get(k)).name == "v1"  # type: ignore[union-attr]
        async with Invalidator(db, env.source(), [CdcItem], on_applied=applied):
            await env.writer.set_item(k, "v2", 2)
            await applied.wait_for(CdcItem, k)
            assert (await repo.get(k)).name == "v2"  # type: ignore[union-attr]
    finally:
        await db.aclose()


def test_endpoints_are_loopback() -> None:
    for store in ("postgres", "mysql", "dynamodb"):
        for host, _ in endpoints(server_url(store)):
            assert host in ("127.0.0.1", "localhost", "::1")
