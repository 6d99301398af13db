"""Operating an invalidator on real servers: gaps (TRUNCATE, a purged binlog, a replaced stream), the idle
heartbeat that lets a PostgreSQL slot advance, the LISTEN/NOTIFY fallback, a tier that cannot take the
invalidations (nothing checkpointed until it can), the health endpoint, and servers that are not set up for
change data capture (a ConfigError that says what to change)."""

from __future__ import annotations

import asyncio
import json
import uuid
from typing import Any
from urllib.parse import urlsplit

import pytest

import tierstore
from _cdc import (
    PG_LOGICAL_URL,
    Applied,
    CdcItem,
    CdcScratch,
    ForeignWriter,
    Scripted,
    drop_slot,
    make_source,
    new_slot,
    server_url,
    store_url,
)
from tierstore import ConfigError
from tierstore.cdc import FileCheckpoint, Invalidator, MemoryCheckpoint
from tierstore.cdc.health import HealthServer
from tierstore.config import tier_config
from tierstore.testing.proxy import FaultProxy

from _servers import MYSQL_URL, PG_URL, REDIS_URL, endpoints, require


def _redis(prefix: str, host_port: tuple[str, int] | None = None) -> str:
    # Through the proxy: the same Redis database as REDIS_URL, so the reader and the invalidator share entries.
    db_path = urlsplit(REDIS_URL).path or "/0"
    base = REDIS_URL if host_port is None else f"redis://{host_port[0]}:{host_port[1]}{db_path}"
    return f"{base}{'&' if '?' in base else '?'}prefix={prefix}&timeout=300ms&breaker_cooldown=0.2"


async def _cached_db(store: str, prefix: str, table_prefix: str = "") -> tierstore.Database:
    db = await tierstore.connect(store_url(store, table_prefix), ["memory://", _redis(prefix)]).open()
    await db.create_tables(CdcItem, CdcScratch)
    return db


@pytest.mark.redis
@pytest.mark.parametrize("store", [pytest.param("postgres", marks=pytest.mark.postgres),
                                   pytest.param("mysql", marks=pytest.mark.mysql)])
async def test_truncate_names_no_keys_so_it_is_a_gap_and_the_tiers_are_cleared(store: str) -> None:
    require(server_url(store), store)
    prefix = f"gap{uuid.uuid4().hex[:8]}"
    db = await _cached_db(store, prefix)
    writer = await ForeignWriter(store).open()
    src = make_source(store)
    try:
        repo = db.repository(CdcScratch)
        await repo.put(CdcScratch("a", "v"))
        assert await repo.get("a") is not None
        async with Invalidator(db, src, [CdcScratch]) as inv:
            await writer.sql("TRUNCATE TABLE cdc_scratch")
            await inv.wait_until(lambda s: s.clears >= 1, 15)
            assert await repo.get("a") is None
            assert inv.stats.gaps == 1 and "TRUNCATE" in (inv.stats.last_gap or "")
    finally:
        await writer.aclose()
        await db.aclose()
        if store == "postgres":
            await drop_slot(src.slot)


@pytest.mark.mysql
@pytest.mark.redis
async def test_a_purged_binlog_position_is_a_gap_and_reading_resumes_at_the_end(tmp_path: Any) -> None:
    require(server_url("mysql"), "mysql")
    prefix = f"gap{uuid.uuid4().hex[:8]}"
    db = await _cached_db("mysql", prefix)
    writer = await ForeignWriter("mysql").open()
    applied = Applied()
    try:
        src = make_source("mysql")
        cp = FileCheckpoint(tmp_path / "cp.json")
        await cp.save(src.identity, {"file": "mariadb-bin.999999", "pos": 4})  # long gone (never existed)
        repo = db.repository(CdcItem)
        k = f"{prefix}-k"
        await repo.put(CdcItem(k, "v1"))
        assert await repo.get(k) is not None
        async with Invalidator(db, src, [CdcItem], checkpoint=cp, on_applied=applied) as inv:
            await inv.wait_until(lambda s: s.gaps >= 1, 15)
            assert inv.stats.clears == 1
            await writer.set_item(k, "v2", 2)  # and it follows the log from its current end
            await applied.wait_for(CdcItem, k)
            assert (await repo.get(k)).name == "v2"  # type: ignore[union-attr]
        assert (await cp.load(src.identity))["file"] != "mariadb-bin.999999"
    finally:
        await writer.aclose()
        await db.aclose()


@pytest.mark.dynamodb
@pytest.mark.redis
async def test_a_replaced_dynamodb_stream_is_a_gap() -> None:
    require(server_url("dynamodb"), "dynamodb")
    prefix = f"gap{uuid.uuid4().hex[:8]}"
    table_prefix = f"g{uuid.uuid4().hex[:8]}_"
    db = await _cached_db("dynamodb", prefix, table_prefix)
    try:
        src = make_source("dynamodb", table_prefix)
        cp = MemoryCheckpoint()
        await cp.save(src.identity, {"tables": {table_prefix + "cdc_items": {"arn": "arn:an-older-stream",
                                                                              "shards": {}}}})
        async with Invalidator(db, src, [CdcItem], checkpoint=cp) as inv:
            await inv.wait_until(lambda s: s.gaps >= 1 and s.checkpoints >= 1, 15)
            assert inv.stats.clears == 1
    finally:
        await db.aclose()


@pytest.mark.postgres
async def test_an_idle_slot_advances_through_heartbeat_messages() -> None:
    require(server_url("postgres"), "postgres")
    from tierstore.cdc.postgres import PostgresLogicalSource

    slot = new_slot()
    src = PostgresLogicalSource(PG_LOGICAL_URL, slot=slot, poll=0.01, heartbeat=0.1)
    async with tierstore.connect("memory://", ["memory://"]) as db:
        try:
            async with Invalidator(db, src, [CdcItem], read_timeout=0.05) as inv:
                await inv.wait_until(lambda s: s.position is not None, 15)  # a heartbeat's LSN, acknowledged
                first = inv.stats.position
                await inv.wait_until(lambda s: s.position != first, 15)  # and again, while nothing changes
                backlog = await src.backlog()
                assert backlog["wal_status"] in ("reserved", "extended")
                assert isinstance(backlog["wal_bytes_behind"], int)
        finally:
            await drop_slot(slot)


@pytest.mark.postgres
async def test_the_command_line_drops_a_retired_slot(capsys: pytest.CaptureFixture[str]) -> None:
    require(server_url("postgres"), "postgres")
    from tierstore.cdc import EntityMap
    from tierstore.cli import main

    src = make_source("postgres")
    await src.start(EntityMap([CdcItem]), None)  # creates the slot
    await src.aclose()
    assert (await src.backlog()) == {}  # closed: no connection
    args = ["invalidator", "--store", PG_LOGICAL_URL, "--slot", src.slot, "--drop-slot"]
    assert await asyncio.to_thread(main, args) == 0
    assert f"slot {src.slot}: dropped" in capsys.readouterr().out
    assert await asyncio.to_thread(main, args) == 0
    assert "not found" in capsys.readouterr().out


@pytest.mark.postgres
@pytest.mark.redis
async def test_the_listen_notify_fallback_invalidates_and_reports_a_gap_after_a_reconnect() -> None:
    require(server_url("postgres"), "postgres")
    from tierstore.cdc.pg_notify import PostgresNotifySource, drop_ddl, notify_ddl

    prefix = f"ntf{uuid.uuid4().hex[:8]}"
    channel = f"ch_{uuid.uuid4().hex[:8]}"
    db = await _cached_db("postgres", prefix)
    writer = await ForeignWriter("postgres").open()
    applied = Applied()
    try:
        await writer.sql(notify_ddl([CdcItem], channel=channel))
        repo = db.repository(CdcItem)
        k, k2 = f"{prefix}-k", f"{prefix}-moved"
        await repo.put(CdcItem(k, "v1"))
        assert await repo.get(k) is not None and await repo.get(k2) is None
        cp = MemoryCheckpoint()
        async with Invalidator(db, PostgresNotifySource(PG_LOGICAL_URL, channel=channel), [CdcItem],
                               checkpoint=cp, on_applied=applied) as inv:
            await writer.set_item(k, "v2", 2)
            await applied.wait_for(CdcItem, k)
            assert (await repo.get(k)).name == "v2"  # type: ignore[union-attr]
            await writer.sql("UPDATE cdc_items SET id = $1 WHERE id = $2", k2, k)  # the key moves: both sides
            await applied.wait_for(CdcItem, k2)
            assert await repo.get(k) is None and (await repo.get(k2)).name == "v2"  # type: ignore[union-attr]
            assert inv.stats.gaps == 0
        # A restart cannot know what was notified while nobody listened: a gap, and the tiers are cleared.
        async with Invalidator(db, PostgresNotifySource(PG_LOGICAL_URL, channel=channel), [CdcItem],
                               checkpoint=cp) as inv:
            await inv.wait_until(lambda s: s.gaps >= 1, 15)
            assert inv.stats.clears == 1
    finally:
        await writer.sql(drop_ddl([CdcItem]))
        await writer.aclose()
        await db.aclose()


@pytest.mark.postgres
@pytest.mark.redis
@pytest.mark.faults
async def test_nothing_is_checkpointed_while_a_tier_cannot_take_the_invalidations() -> None:
    """The invalidator's Redis connection goes through the fault proxy, which refuses connections: the change
    is read, but the slot must not advance and health must say degraded; once Redis is reachable again the
    invalidation is delivered, then checkpointed."""
    require(server_url("postgres"), "postgres")
    require(REDIS_URL, "redis")
    prefix = f"und{uuid.uuid4().hex[:8]}"
    host, port = endpoints(REDIS_URL)[0]
    reader = await tierstore.connect(store_url("postgres"), [_redis(prefix)]).open()
    await reader.create_tables(CdcItem)
    writer = await ForeignWriter("postgres").open()
    src = make_source("postgres")
    try:
        async with FaultProxy(host, port) as proxy:
            tiers = [tier_config(_redis(prefix, (proxy.host, proxy.port))).build()]
            inv_db = tierstore.connect("memory://", tiers)
            repo = reader.repository(CdcItem)
            k = f"{prefix}-k"
            await repo.put(CdcItem(k, "v1"))
            assert (await repo.get(k)).name == "v1"  # type: ignore[union-attr]
            async with Invalidator(inv_db, src, [CdcItem], retry_base=0.05, retry_cap=0.2) as inv:
                await inv.wait_until(lambda s: s.batches >= 1, 15)
                proxy.drop()
                await proxy.cut()
                before = (await src.backlog())["confirmed_flush_lsn"]
                await writer.set_item(k, "v2", 2)
                await inv.wait_until(lambda s: s.delivery_retries >= 2, 15)
                assert inv.health()["status"] == "degraded"
                assert (await src.backlog())["confirmed_flush_lsn"] == before  # the slot did not advance
                assert (await repo.get(k)).name == "v1"  # type: ignore[union-attr]  # not delivered yet
                proxy.reset()
                await inv.wait_until(lambda s: s.undelivered == 0 and s.changes >= 1, 15)
                assert (await repo.get(k)).name == "v2"  # type: ignore[union-attr]
                await inv.wait_until(lambda s: s.checkpoints >= 1, 15)
                assert (await src.backlog())["confirmed_flush_lsn"] != before
            await inv_db.aclose()
            for t in tiers:
                await t.aclose()
    finally:
        await writer.aclose()
        await reader.aclose()
        await drop_slot(src.slot)


async def _http_get(port: int, path: str) -> tuple[int, str]:
    reader, writer = await asyncio.open_connection("127.0.0.1", port)
    writer.write(f"GET {path} HTTP/1.1\r\nHost: x\r\n\r\n".encode())
    await writer.drain()
    raw = (await reader.read()).decode()
    writer.close()
    head, _, body = raw.partition("\r\n\r\n")
    return int(head.split()[1]), body


async def test_the_health_endpoint_serves_json_and_prometheus_text() -> None:
    async with tierstore.connect("memory://", ["memory://"]) as db:
        inv = Invalidator(db, Scripted([]), [CdcItem], read_timeout=0.01)
        server = await HealthServer(inv, 0).start()
        try:
            status, body = await _http_get(server.port, "/health")
            assert status == 503 and json.loads(body)["status"] == "down"
            async with inv:
                await inv.wait_until(lambda s: s.batches >= 1, 5)
                status, body = await _http_get(server.port, "/health")
                assert status == 200 and json.loads(body)["status"] == "ok"
                status, body = await _http_get(server.port, "/metrics")
                assert status == 200 and "tierstore_invalidator_up 1.0" in body
                assert "tierstore_invalidator_changes_total 0.0" in body
                assert (await _http_get(server.port, "/nope"))[0] == 404
        finally:
            await server.aclose()


@pytest.mark.postgres
async def test_a_postgresql_without_logical_decoding_is_a_config_error_that_says_so() -> None:
    require(PG_URL, "postgres")
    import asyncpg

    from tierstore.cdc.postgres import PostgresLogicalSource

    conn = await asyncpg.connect(PG_URL.replace("+asyncpg", ""))
    level = await conn.fetchval("SHOW wal_level")
    await conn.close()
    if level == "logical":
        pytest.skip("this server has wal_level=logical")
    async with tierstore.connect("memory://", ["memory://"]) as db:
        inv = Invalidator(db, PostgresLogicalSource(PG_URL, slot=new_slot()), [CdcItem])
        with pytest.raises(ConfigError, match="wal_level=logical"):
            await inv.start()
        await inv.aclose()


@pytest.mark.mysql
async def test_a_mysql_without_the_binlog_is_a_config_error_that_says_so() -> None:
    require(MYSQL_URL, "mysql")
    import pymysql

    from tierstore.cdc.mysql_binlog import MySqlBinlogSource

    url = MYSQL_URL.replace("+aiomysql", "")
    ep = endpoints(url)[0]
    conn = pymysql.connect(host=ep[0], port=ep[1], user="root")
    with conn.cursor() as cur:
        cur.execute("SELECT @@log_bin")
        (log_bin,) = cur.fetchone()  # type: ignore[misc]
    conn.close()
    if int(log_bin):
        pytest.skip("this server has the binlog on")
    async with tierstore.connect("memory://", ["memory://"]) as db:
        inv = Invalidator(db, MySqlBinlogSource(url), [CdcItem])
        with pytest.raises(ConfigError, match="log_bin"):
            await inv.start()
        await inv.aclose()
