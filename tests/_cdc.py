"""Shared pieces of the change-data-capture tests: entities, the change-log servers, sources, and writers
that bypass tierstore through each store's own client (plain SQL on asyncpg/aiomysql, boto3).

Also importable by subprocesses (``--entity _cdc:CdcItem``) with ``tests/`` on ``PYTHONPATH``.
"""

from __future__ import annotations

import asyncio
import os
import uuid
from typing import Any

from tierstore import Entity, Index, PartitionKey, SortKey, Version
from tierstore.cdc import ChangeBatch, EntityMap

PG_LOGICAL_URL = os.environ.get("TIERSTORE_PG_LOGICAL_URL", "postgresql+asyncpg://postgres@127.0.0.1:5433/tierstore")
MYSQL_BINLOG_URL = os.environ.get("TIERSTORE_MYSQL_BINLOG_URL", "mysql+aiomysql://root@127.0.0.1:3307/tierstore")
MYSQL_BINLOG_SOURCE = os.environ.get(
    "TIERSTORE_MYSQL_BINLOG_SOURCE", "mysql://tierstore_cdc:tierstore-cdc-test@127.0.0.1:3307/tierstore"
)
DYNAMODB_URL = os.environ.get("TIERSTORE_DYNAMODB_URL", "dynamodb://us-east-1?endpoint_url=http://127.0.0.1:8000")
STORES = ("postgres", "mysql", "dynamodb")


class CdcItem(Entity, table="cdc_items"):
    id: PartitionKey[str]
    name: str
    n: int = 0
    version: Version = 0


class CdcEvent(Entity, table="cdc_events", partition_key=("tenant", "stream"), sort_key="seq"):
    tenant: str
    stream: str
    seq: int
    body: str = ""


class CdcBlob(Entity, table="cdc_blobs"):
    id: PartitionKey[bytes]
    label: str = ""


class CdcOrder(Entity, table="cdc_orders", indexes=[Index("by_status", "status", "order_id")]):
    customer_id: PartitionKey[str]
    order_id: SortKey[str]
    status: str = "new"
    total: int = 0


class CdcScratch(Entity, table="cdc_scratch"):
    """Its table is truncated by the gap tests."""

    id: PartitionKey[str]
    name: str = ""


ENTITIES = (CdcItem, CdcEvent, CdcBlob, CdcOrder, CdcScratch)


def store_url(store: str, table_prefix: str = "") -> str:
    """The store URL of ``store`` (DynamoDB: with a table prefix of the test's own)."""
    if store == "postgres":
        return PG_LOGICAL_URL
    if store == "mysql":
        return MYSQL_BINLOG_URL
    sep = "&" if "?" in DYNAMODB_URL else "?"
    return f"{DYNAMODB_URL}{sep}table_prefix={table_prefix}" if table_prefix else DYNAMODB_URL


def server_url(store: str) -> str:
    return {"postgres": PG_LOGICAL_URL, "mysql": MYSQL_BINLOG_URL, "dynamodb": DYNAMODB_URL}[store]


def source_url(store: str, table_prefix: str = "") -> str:
    return MYSQL_BINLOG_SOURCE if store == "mysql" else store_url(store, table_prefix)


def new_slot() -> str:
    return f"t_{uuid.uuid4().hex[:16]}"


def make_source(store: str, table_prefix: str = "", *, slot: str | None = None, fast: bool = True) -> Any:
    """A change source for ``store``, polling fast (tests measure behaviour, not the defaults' cost)."""
    if store == "postgres":
        from tierstore.cdc.postgres import PostgresLogicalSource

        return PostgresLogicalSource(PG_LOGICAL_URL, slot=slot or new_slot(), poll=0.005 if fast else 0.05)
    if store == "mysql":
        from tierstore.cdc.mysql_binlog import MySqlBinlogSource

        return MySqlBinlogSource(MYSQL_BINLOG_SOURCE, heartbeat=0.5)
    from tierstore.cdc.dynamodb_streams import DynamoStreamsSource

    return DynamoStreamsSource(store_url(store, table_prefix), poll=0.01 if fast else 0.25, enable_stream=True)


async def drop_slot(slot: str) -> None:
    import asyncpg

    conn = await asyncpg.connect(PG_LOGICAL_URL.replace("+asyncpg", ""))
    try:
        await conn.execute(
            "SELECT pg_drop_replication_slot(slot_name) FROM pg_replication_slots WHERE slot_name = $1 AND NOT active",
            slot,
        )
    finally:
        await conn.close()


class ForeignWriter:
    """Writes that bypass tierstore, through the store's own client."""

    def __init__(self, store: str, table_prefix: str = "") -> None:
        self.store = store
        self.table_prefix = table_prefix
        self._conn: Any = None
        self._boto: Any = None

    async def open(self) -> ForeignWriter:
        if self.store == "postgres":
            import asyncpg

            self._conn = await asyncpg.connect(PG_LOGICAL_URL.replace("+asyncpg", ""))
        elif self.store == "mysql":
            import pymysql  # plain PyMySQL (blocking, run in a thread): the client a batch job would use

            self._conn = await asyncio.to_thread(
                pymysql.connect, host="127.0.0.1", port=_port(MYSQL_BINLOG_URL), user="root", database="tierstore",
                autocommit=True,
            )
        else:
            import boto3

            endpoint = DYNAMODB_URL.split("endpoint_url=", 1)[1].split("&", 1)[0]
            self._boto = boto3.client("dynamodb", endpoint_url=endpoint, region_name="us-east-1",
                                      aws_access_key_id="local", aws_secret_access_key="local")
        return self

    async def aclose(self) -> None:
        if self._conn is not None:
            if self.store == "mysql":
                self._conn.close()
            else:
                await self._conn.close()
            self._conn = None

    async def sql(self, statement: str, *args: Any) -> None:
        if self.store == "postgres":
            await self._conn.execute(statement, *args)
        else:
            text = statement.replace("$1", "%s").replace("$2", "%s").replace("$3", "%s")

            def run() -> None:
                with self._conn.cursor() as cur:
                    cur.execute(text, args)

            await asyncio.to_thread(run)

    async def set_item(self, item_id: str, name: str, n: int) -> None:
        """UPDATE cdc_items SET name, n (and the version, as a careful foreign writer would)."""
        if self.store == "dynamodb":
            await asyncio.to_thread(
                self._boto.update_item, TableName=self.table_prefix + "cdc_items", Key={"id": {"S": item_id}},
                UpdateExpression="SET #n = :name, n = :n ADD version :one",
                ExpressionAttributeNames={"#n": "name"},
                ExpressionAttributeValues={":name": {"S": name}, ":n": {"N": str(n)}, ":one": {"N": "1"}},
            )
            return
        await self.sql("UPDATE cdc_items SET name = $1, n = $2, version = version + 1 WHERE id = $3", name, n, item_id)

    async def delete_item(self, item_id: str) -> None:
        if self.store == "dynamodb":
            await asyncio.to_thread(self._boto.delete_item, TableName=self.table_prefix + "cdc_items",
                                    Key={"id": {"S": item_id}})
            return
        await self.sql("DELETE FROM cdc_items WHERE id = $1", item_id)

    async def insert_item(self, item_id: str, name: str, n: int = 0) -> None:
        if self.store == "dynamodb":
            await asyncio.to_thread(
                self._boto.put_item, TableName=self.table_prefix + "cdc_items",
                Item={"id": {"S": item_id}, "name": {"S": name}, "n": {"N": str(n)}, "version": {"N": "1"}},
            )
            return
        await self.sql("INSERT INTO cdc_items (id, name, n, version) VALUES ($1, $2, $3, 1)", item_id, name, n)

    @property
    def boto(self) -> Any:
        return self._boto


def _port(url: str) -> int:
    from urllib.parse import urlsplit

    return urlsplit(url).port or 3306


# -- test plumbing shared by the cdc test files -----------------------------------------------------------


class Applied:
    """Collects the cache keys an invalidator delivered; tests wait on it (events, never sleeps)."""

    def __init__(self) -> None:
        self.keys: set[str] = set()
        self.count = 0
        self._changed = asyncio.Event()

    def __call__(self, changes: Any) -> None:
        for change in changes:
            for key in change.keys:
                self.keys.add(change.schema.cache_key(key))
        self.count += len(changes)
        self._changed.set()

    async def wait_for(self, entity: Any, *keys: Any, within: float = 15.0) -> None:
        from tierstore.backends import schema_of

        schema = schema_of(entity)
        wanted = {schema.cache_key(schema.key_arg(k)) for k in keys}
        async with asyncio.timeout(within):
            while not wanted <= self.keys:
                self._changed.clear()
                await self._changed.wait()

    def forget(self) -> None:
        self.keys.clear()


async def eventually(check: Any, within: float = 5.0, pause: float = 0.01) -> Any:
    """Await ``check()`` until it returns a truthy value (bounded; the bound is what the test asserts)."""
    loop = asyncio.get_running_loop()
    deadline = loop.time() + within
    while True:
        got = await check()
        if got:
            return got
        if loop.time() >= deadline:
            return got
        await asyncio.sleep(pause)


class Scripted:
    """A change log made of batches given in advance: the one stub of the cdc tests, standing for a log so
    that the loop's ordering can be checked step by step (the real logs have tests of their own)."""

    identity = "scripted://test"
    table_prefix = ""

    def __init__(self, batches: list[ChangeBatch], *, fail_ack_at: Any = None) -> None:
        self.batches = batches
        self.starts: list[Any] = []
        self.acked: list[Any] = []
        self.fail_ack_at = fail_ack_at
        self.cursor = 0

    async def start(self, entities: EntityMap, position: Any) -> Any:
        self.starts.append(position)
        self.cursor = 0 if position is None else int(position)
        return None

    async def read(self, wait: float) -> ChangeBatch:
        if self.cursor < len(self.batches):
            self.cursor += 1
            return self.batches[self.cursor - 1]
        await asyncio.sleep(wait)
        return ChangeBatch()

    async def acknowledge(self, position: Any) -> None:
        if position == self.fail_ack_at:
            self.fail_ack_at = None
            raise RuntimeError("crash between delivery and checkpoint")
        self.acked.append(position)

    async def backlog(self) -> dict[str, Any]:
        return {"left": len(self.batches) - self.cursor}

    async def aclose(self) -> None:
        pass
