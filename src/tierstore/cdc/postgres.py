"""PostgreSQL change source: a logical replication slot, read over an ordinary connection.

How. A *logical replication slot* (``pg_create_logical_replication_slot(slot, 'test_decoding')``) makes the
server keep every change committed after the slot's ``confirmed_flush_lsn`` until the slot is advanced. The
source reads with ``pg_logical_slot_peek_changes`` (whole transactions, in commit order, without consuming
them), invalidates, and only then advances the slot with ``pg_replication_slot_advance`` to the end of the
last transaction delivered. The slot is therefore the checkpoint: ``kill -9`` of the invalidator at any
instant re-reads from the last advance, and nothing is lost. The commit timestamp
(``include-timestamp``) gives the lag metric.

Why this way. asyncpg (tierstore's PostgreSQL driver) has no replication protocol; psycopg2's
``LogicalReplicationConnection`` has, but would add a blocking driver and a thread for what the SQL interface
does on the connection type tierstore already uses. The cost is polling (``poll``, default 50 ms, repeated at
once while batches come back full) and re-decoding the WAL since the last advance on every peek; advancing
after every batch keeps that small. ``test_decoding`` is built into every PostgreSQL (RDS, Aurora and Cloud
SQL allow it), so nothing needs installing; :mod:`tierstore.cdc.pg_decoding` reads its text. When nothing
relevant is written for ``heartbeat`` seconds the source emits a non-transactional logical message
(``pg_logical_emit_message``) and advances past it, so the slot does not pin WAL written by other databases.

What the server needs: ``wal_level = logical``, a free ``max_replication_slots`` entry, and a role with the
``REPLICATION`` attribute (or superuser). Slots are durable and *must be monitored*: a slot nobody advances
keeps WAL forever (bound it with ``max_slot_wal_keep_size``; a slot that lost WAL is reported as a gap).
:meth:`PostgresLogicalSource.backlog` reports the bytes of WAL behind the slot; ``tierstore invalidator
--drop-slot`` removes the slot when the invalidator is retired.

Where logical decoding is not allowed, :mod:`tierstore.cdc.pg_notify` is the trigger + LISTEN/NOTIFY
fallback (not durable).
"""

from __future__ import annotations

import asyncio
import logging
import re
import time
from typing import Any

from tierstore.cdc.base import Change, ChangeBatch
from tierstore.cdc.keys import EntityMap, row_key
from tierstore.cdc.pg_decoding import Commit, Message, RowChange, Unparsed, parse
from tierstore.cdc.urls import parse_endpoint
from tierstore.errors import ConfigError, StoreError

__all__ = ["PostgresLogicalSource"]

log = logging.getLogger("tierstore.cdc.postgres")

_SLOT = re.compile(r"[a-z0-9_]{1,63}\Z")
_MESSAGE_PREFIX = "tierstore-cdc"
_PEEK = (
    "SELECT lsn::text, data FROM pg_logical_slot_peek_changes($1, NULL, $2, "
    "'include-timestamp', '1', 'skip-empty-xacts', '1', 'include-xids', '0')"
)


def _asyncpg() -> Any:
    try:
        import asyncpg
    except ImportError:
        raise ConfigError(
            "the PostgreSQL invalidator needs asyncpg; install it with: pip install 'tierstore[cdc-postgres]'"
        ) from None
    return asyncpg


class PostgresLogicalSource:
    """Changes of a PostgreSQL database from a logical replication slot (see the module docstring).

    ``url``: ``postgresql://user:password@host:5432/db`` (``postgresql+asyncpg://`` as for the store).
    ``slot``: the slot's name (lowercase letters, digits, ``_``); created on first start when ``create_slot``.
    ``namespace``: the schema the tables live in (``public``). ``batch``: rows per peek (whole transactions
    are returned even past it). ``poll``: pause between empty peeks. ``heartbeat``: seconds of quiet before a
    logical message lets the slot advance.
    """

    def __init__(
        self,
        url: str,
        *,
        slot: str = "tierstore_invalidator",
        create_slot: bool = True,
        namespace: str = "public",
        batch: int = 2000,
        poll: float = 0.05,
        heartbeat: float = 10.0,
    ) -> None:
        self.endpoint = parse_endpoint(url, schemes=("postgresql", "postgres"), default_port=5432,
                                       default_user="postgres")
        if not _SLOT.match(slot):
            raise ConfigError(f"slot name {slot!r} must be 1-63 characters of [a-z0-9_]")
        if batch < 1 or poll <= 0 or heartbeat <= 0:
            raise ConfigError("PostgresLogicalSource needs batch >= 1, poll > 0 and heartbeat > 0")
        self.slot = slot
        self.create_slot = create_slot
        self.namespace = namespace
        self.batch = batch
        self.poll = poll
        self.heartbeat = heartbeat
        self._conn: Any = None
        self._lock = asyncio.Lock()  # one connection: reads, acknowledgements and backlog queries take turns
        self._entities: EntityMap | None = None
        self._quiet_since = time.monotonic()
        self._heartbeat_failed = False

    def __repr__(self) -> str:
        return f"PostgresLogicalSource({self.identity})"

    @property
    def identity(self) -> str:
        return f"{self.endpoint.safe()}#slot={self.slot}"

    async def _connect(self) -> Any:
        asyncpg = _asyncpg()
        ep = self.endpoint
        try:
            return await asyncpg.connect(
                host=ep.host, port=ep.port, user=ep.user, password=ep.password or None, database=ep.database,
                timeout=10, command_timeout=60, server_settings={"application_name": "tierstore-invalidator"},
            )
        except (OSError, asyncpg.PostgresError) as exc:
            raise StoreError(f"cannot connect to {ep.safe()}: {type(exc).__name__}: {exc}",
                             backend="postgres") from None

    async def start(self, entities: EntityMap, position: Any | None) -> Any | None:
        self._entities = entities
        self._conn = conn = await self._connect()
        wal_level = await conn.fetchval("SHOW wal_level")
        if wal_level != "logical":
            raise ConfigError(
                f"{self.endpoint.safe()} runs with wal_level={wal_level}; logical decoding needs "
                "wal_level=logical (a restart), or use the trigger + LISTEN/NOTIFY fallback (tierstore.cdc.pg_notify)"
            )
        row = await conn.fetchrow(
            "SELECT plugin, slot_type, database, wal_status FROM pg_replication_slots WHERE slot_name = $1",
            self.slot,
        )
        if row is None:
            if not self.create_slot:
                raise ConfigError(f"replication slot {self.slot!r} does not exist (create_slot=False)")
            await conn.execute("SELECT pg_create_logical_replication_slot($1, 'test_decoding')", self.slot)
            log.info("created logical replication slot %s on %s", self.slot, self.endpoint.safe())
            return None
        ours = row["slot_type"] == "logical" and row["plugin"] == "test_decoding"
        if not ours or row["database"] != self.endpoint.database:
            raise ConfigError(
                f"slot {self.slot!r} exists as a {row['slot_type']} slot of plugin {row['plugin']!r} on database "
                f"{row['database']!r}; the invalidator needs a test_decoding slot on {self.endpoint.database!r}"
            )
        if row["wal_status"] == "lost":
            raise StoreError(
                f"slot {self.slot!r} lost WAL it needed (max_slot_wal_keep_size); drop it and start again "
                "(the caches then fall back to their TTLs for the missed changes)", backend="postgres",
            )
        return None

    async def read(self, wait: float) -> ChangeBatch:
        conn = self._conn
        if conn is None:
            raise StoreError("the PostgreSQL change source is not started", backend="postgres")
        deadline = time.monotonic() + wait
        while True:
            async with self._lock:
                rows = await conn.fetch(_PEEK, self.slot, self.batch)
            if rows:
                return self._batch(rows)
            now = time.monotonic()
            if now - self._quiet_since >= self.heartbeat:
                await self._emit_heartbeat()
            if now >= deadline:
                return ChangeBatch()
            await asyncio.sleep(min(self.poll, max(0.0, deadline - now)))

    async def _emit_heartbeat(self) -> None:
        self._quiet_since = time.monotonic()
        if self._heartbeat_failed:
            return
        try:
            async with self._lock:
                await self._conn.execute("SELECT pg_logical_emit_message(false, $1, 'heartbeat')", _MESSAGE_PREFIX)
        except Exception as exc:  # a missing privilege only costs WAL retention while idle
            self._heartbeat_failed = True
            log.warning("cannot emit a heartbeat message (%r); the slot advances only with changes", exc)

    def _batch(self, rows: list[Any]) -> ChangeBatch:
        entities = self._entities
        assert entities is not None
        batch = ChangeBatch()
        pending: list[tuple[Any, tuple[Any, ...]]] = []
        gaps: list[str] = []
        for row in rows:
            item = parse(row["data"])
            if isinstance(item, RowChange):
                if item.namespace != self.namespace:
                    batch.ignored += 1
                    continue
                schema = entities.get(item.table)
                if schema is None:
                    batch.ignored += 1
                    continue
                if item.op == "TRUNCATE":
                    gaps.append(f"TRUNCATE of {item.namespace}.{item.table}")
                    continue
                keys = []
                for cols in (item.old, item.new):
                    if cols is not None:
                        key = row_key(schema, cols)
                        if key is not None and key not in keys:
                            keys.append(key)
                if keys:
                    pending.append((schema, tuple(keys)))
                else:
                    batch.ignored += 1
            elif isinstance(item, Commit):
                batch.changes.extend(Change(s, k, item.at) for s, k in pending)
                pending = []
                batch.position = row["lsn"]
            elif isinstance(item, Message):
                batch.position = row["lsn"]
            elif isinstance(item, Unparsed):
                log.warning("unreadable test_decoding line skipped: %.200r", item.text)
        if batch.changes:
            self._quiet_since = time.monotonic()
        if gaps:
            batch.gap = "; ".join(gaps)
        return batch

    async def acknowledge(self, position: Any) -> None:
        if self._conn is not None:
            async with self._lock:
                await self._conn.execute("SELECT pg_replication_slot_advance($1, $2::text::pg_lsn)", self.slot,
                                         position)

    async def backlog(self) -> dict[str, Any]:
        if self._conn is None:
            return {}
        async with self._lock:
            row = await self._conn.fetchrow(
                "SELECT pg_wal_lsn_diff(pg_current_wal_lsn(), confirmed_flush_lsn)::bigint AS behind, wal_status, "
                "confirmed_flush_lsn::text AS confirmed FROM pg_replication_slots WHERE slot_name = $1",
                self.slot,
            )
        if row is None:
            return {"slot": self.slot, "exists": False}
        return {"slot": self.slot, "wal_bytes_behind": row["behind"], "wal_status": row["wal_status"],
                "confirmed_flush_lsn": row["confirmed"]}

    async def drop_slot(self) -> bool:
        """Drop the slot (when the invalidator is retired, so the server stops keeping WAL for it)."""
        conn = self._conn or await self._connect()
        try:
            dropped = await conn.fetchval(
                "SELECT count(pg_drop_replication_slot(slot_name)) FROM pg_replication_slots WHERE slot_name = $1",
                self.slot,
            )
            return bool(dropped)
        finally:
            if conn is not self._conn:
                await conn.close()

    async def aclose(self) -> None:
        conn, self._conn = self._conn, None
        if conn is not None:
            try:
                await asyncio.wait_for(conn.close(), 5)
            except Exception:
                conn.terminate()
