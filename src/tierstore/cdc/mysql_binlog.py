"""MySQL/MariaDB change source: the row-format binary log, read as a replica would.

Library: python-mysql-replication (PyPI ``mysql-replication``, maintained, Apache-2.0; it speaks the
replication protocol on top of PyMySQL and decodes row events into column dicts, MariaDB included). It is
blocking, so it runs in a thread of its own that hands events to the event loop through a queue; the thread
wakes at least every ``heartbeat`` seconds (the server's replication heartbeat) so it can be stopped.

Checkpoint: the binlog file and offset *after* a transaction's ``XID`` event — always a transaction
boundary, so a resume never starts in the middle of a transaction (whose row events need the table-map
events before them). The position is saved (:class:`~tierstore.cdc.FileCheckpoint`) only after the
transaction's invalidations were delivered. On a first start the source reads ``SHOW MASTER STATUS`` and the
invalidator checkpoints that at once, so nothing committed after the start is missed even if the first
change never arrives before a crash. If the checkpointed file was purged (``binlog_expire_logs_seconds``)
the source reports a gap and resumes at the current end. Positions are file offsets of one server: after a
failover to a replica, start without the checkpoint (a gap: caches are cleared).

What the server needs: ``log_bin`` on, ``binlog_format=ROW``, ``binlog_row_image=FULL`` (MINIMAL also works
for updates and deletes, which log the key; FULL is the safe default), a unique ``server_id`` for the
invalidator (``server_id=``; it registers as a replica), and a user with ``REPLICATION SLAVE, REPLICATION
CLIENT`` (MariaDB ≥ 10.5: ``BINLOG MONITOR``) and ``SELECT`` (column names come from the table-map events with
``binlog_row_metadata=FULL``, else from ``information_schema``). ``TRUNCATE TABLE`` is logged as a statement
that names no keys: it is reported as a gap.
"""

from __future__ import annotations

import asyncio
import contextlib
import logging
import random
import re
import threading
from typing import Any

from tierstore.cdc.base import Change, ChangeBatch
from tierstore.cdc.keys import EntityMap, row_key
from tierstore.cdc.urls import parse_endpoint
from tierstore.errors import ConfigError, StoreError

__all__ = ["MySqlBinlogSource"]

log = logging.getLogger("tierstore.cdc.mysql")

_TRUNCATE = re.compile(r"\s*TRUNCATE\s+(?:TABLE\s+)?(?:`?(\w+)`?\.)?`?(\w+)`?", re.IGNORECASE)
_STOP = object()


def _library() -> Any:
    try:
        import pymysqlreplication
    except ImportError:
        raise ConfigError(
            "the MySQL/MariaDB invalidator needs python-mysql-replication; install it with: "
            "pip install 'tierstore[cdc-mysql]'"
        ) from None
    return pymysqlreplication


class MySqlBinlogSource:
    """Changes of one MySQL/MariaDB database from the row binlog (see the module docstring).

    ``url``: ``mysql://user:password@host:3306/database`` (``mysql+aiomysql://`` as for the store); the
    database is the schema whose tables are followed. ``server_id``: this reader's replica id, unique among
    the server's replicas (default: random in 2**20..2**31). ``heartbeat``: seconds between the server's
    heartbeats while idle (also the longest wait to stop the thread). ``batch``: events per read at most.
    """

    def __init__(self, url: str, *, server_id: int | None = None, heartbeat: float = 1.0, batch: int = 5000) -> None:
        self.endpoint = parse_endpoint(url, schemes=("mysql", "mariadb"), default_port=3306, default_user="root")
        if not self.endpoint.database:
            raise ConfigError("the binlog source needs the database name in the URL (mysql://…/db)")
        if server_id is not None and not 1 <= server_id < 2**32:
            raise ConfigError("server_id must be in 1..2**32-1")
        if heartbeat <= 0 or batch < 1:
            raise ConfigError("MySqlBinlogSource needs heartbeat > 0 and batch >= 1")
        self.server_id = server_id if server_id is not None else random.randrange(2**20, 2**31)
        self.heartbeat = heartbeat
        self.batch = batch
        self._entities: EntityMap | None = None
        self._queue: asyncio.Queue[Any] | None = None
        self._thread: threading.Thread | None = None
        self._stop = threading.Event()
        self._stream: Any = None
        self._pending: list[tuple[Any, tuple[Any, ...]]] = []
        self._pending_gap: list[str] = []
        self._gap: str | None = None
        self._position: dict[str, Any] | None = None

    def __repr__(self) -> str:
        return f"MySqlBinlogSource({self.identity}, server_id={self.server_id})"

    @property
    def identity(self) -> str:
        return self.endpoint.safe()

    def _settings(self) -> dict[str, Any]:
        ep = self.endpoint
        return {"host": ep.host, "port": ep.port, "user": ep.user, "password": ep.password}

    # -- start -------------------------------------------------------------------------------------------------

    async def start(self, entities: EntityMap, position: Any | None) -> Any | None:
        lib = _library()
        self._entities = entities
        self._pending = []
        self._pending_gap = []
        self._gap = None
        status = await asyncio.to_thread(self._server_status)
        first: dict[str, Any] | None = None
        if position is None:
            first = {"file": status["file"], "pos": status["pos"]}
            start = first
        else:
            if not isinstance(position, dict) or not {"file", "pos"} <= set(position):
                raise ConfigError(f"not a binlog position: {position!r}")
            start = {"file": str(position["file"]), "pos": int(position["pos"])}
            if start["file"] not in status["files"]:
                self._gap = (
                    f"binlog {start['file']} is no longer on the server (purged); resuming at its current end"
                )
                start = {"file": status["file"], "pos": status["pos"]}
        self._position = start
        row_events = [lib.row_event.WriteRowsEvent, lib.row_event.UpdateRowsEvent, lib.row_event.DeleteRowsEvent]
        self._stream = lib.BinLogStreamReader(
            connection_settings=self._settings(),
            server_id=self.server_id,
            resume_stream=True,
            log_file=start["file"],
            log_pos=start["pos"],
            blocking=True,
            only_events=[*row_events, lib.event.XidEvent, lib.event.QueryEvent, lib.event.HeartbeatLogEvent],
            only_schemas=[self.endpoint.database],
            # File/offset positioning (COM_BINLOG_DUMP) works on both servers; the library's MariaDB mode
            # positions by GTID only and would ignore the file and offset.
            is_mariadb=False,
            slave_heartbeat=self.heartbeat,
            enable_logging=False,
        )
        loop = asyncio.get_running_loop()
        self._queue = asyncio.Queue()
        self._stop.clear()
        self._thread = threading.Thread(
            target=self._pump, args=(loop, self._queue, self._stream), name="tierstore-binlog", daemon=True
        )
        self._thread.start()
        return first

    def _server_status(self) -> dict[str, Any]:
        import pymysql

        ep = self.endpoint
        try:
            conn = pymysql.connect(host=ep.host, port=ep.port, user=ep.user, password=ep.password,
                                   connect_timeout=10, autocommit=True)
        except pymysql.MySQLError as exc:
            raise StoreError(f"cannot connect to {ep.safe()}: {exc}", backend="mysql") from None
        try:
            with conn.cursor() as cur:
                cur.execute("SELECT @@log_bin, @@binlog_format, @@version")
                log_bin, fmt, version = cur.fetchone()
                if not int(log_bin):
                    raise ConfigError(f"{ep.safe()} runs with log_bin OFF; the binlog invalidator needs it on")
                if str(fmt).upper() != "ROW":
                    raise ConfigError(f"{ep.safe()} has binlog_format={fmt}; the invalidator needs ROW")
                cur.execute("SHOW MASTER STATUS")
                row = cur.fetchone()
                if row is None:
                    raise ConfigError(f"SHOW MASTER STATUS on {ep.safe()} returned nothing (binlog off?)")
                cur.execute("SHOW BINARY LOGS")
                files = {r[0] for r in cur.fetchall()}
        except pymysql.MySQLError as exc:
            raise StoreError(
                f"reading the binlog status of {ep.safe()} failed: {exc} (the user needs REPLICATION CLIENT)",
                backend="mysql",
            ) from None
        finally:
            conn.close()
        return {"file": row[0], "pos": int(row[1]), "files": files, "mariadb": "mariadb" in str(version).lower()}

    # -- the reading thread ------------------------------------------------------------------------------------

    def _pump(self, loop: asyncio.AbstractEventLoop, queue: asyncio.Queue[Any], stream: Any) -> None:
        def put(item: Any) -> None:
            with contextlib.suppress(RuntimeError):  # a closed loop: nobody is listening any more
                loop.call_soon_threadsafe(queue.put_nowait, item)

        try:
            for event in stream:
                if self._stop.is_set():
                    break
                put((event, stream.log_file, stream.log_pos))
        except Exception as exc:
            if not self._stop.is_set():
                put(exc)
        finally:
            put(_STOP)

    # -- reads -------------------------------------------------------------------------------------------------

    async def read(self, wait: float) -> ChangeBatch:
        queue = self._queue
        if queue is None:
            raise StoreError("the binlog source is not started", backend="mysql")
        batch = ChangeBatch()
        if self._gap is not None:
            batch.gap, self._gap = self._gap, None
        try:
            first = await asyncio.wait_for(queue.get(), wait)
        except TimeoutError:
            return batch
        items = [first]
        while len(items) < self.batch and not queue.empty():
            items.append(queue.get_nowait())
        for item in items:
            if item is _STOP:
                raise StoreError("the binlog stream ended", backend="mysql")
            if isinstance(item, BaseException):
                raise StoreError(f"reading the binlog failed: {type(item).__name__}: {item}", backend="mysql")
            self._event(batch, *item)
        return batch

    def _event(self, batch: ChangeBatch, event: Any, log_file: str, log_pos: int) -> None:
        lib = _library()
        entities = self._entities
        assert entities is not None
        if isinstance(event, lib.event.XidEvent):
            at = float(event.timestamp) if event.timestamp else None
            batch.changes.extend(Change(s, k, at) for s, k in self._pending)
            self._pending = []
            if self._pending_gap:
                batch.gap = "; ".join(filter(None, [batch.gap, *self._pending_gap]))
                self._pending_gap = []
            batch.position = {"file": log_file, "pos": int(log_pos)}
            return
        if isinstance(event, lib.event.QueryEvent):
            query = event.query if isinstance(event.query, str) else bytes(event.query).decode("utf-8", "replace")
            m = _TRUNCATE.match(query)
            if m and entities.get(m.group(2)) is not None:
                # DDL commits on its own (no XID): the gap takes effect now.
                batch.gap = "; ".join(filter(None, [batch.gap, f"TRUNCATE of {m.group(2)}"]))
                if not self._pending:
                    batch.position = {"file": log_file, "pos": int(log_pos)}
            return
        if isinstance(event, lib.event.HeartbeatLogEvent):
            return
        schema = entities.get(event.table)
        if schema is None or event.schema != self.endpoint.database:
            batch.ignored += len(event.rows)
            return
        for row in event.rows:
            keys: list[Any] = []
            for values in (row.get("before_values"), row.get("after_values"), row.get("values")):
                if values is not None:
                    key = row_key(schema, values)
                    if key is not None and key not in keys:
                        keys.append(key)
            if keys:
                self._pending.append((schema, tuple(keys)))
            else:
                batch.ignored += 1

    async def acknowledge(self, position: Any) -> None:
        self._position = position

    async def backlog(self) -> dict[str, Any]:
        status = await asyncio.to_thread(self._server_status)
        pos = self._position or {}
        behind = status["pos"] - int(pos.get("pos", 0)) if pos.get("file") == status["file"] else None
        return {"server_file": status["file"], "server_pos": status["pos"], "checkpoint": pos,
                "bytes_behind_in_file": behind}

    async def aclose(self) -> None:
        self._stop.set()
        stream, self._stream = self._stream, None
        thread, self._thread = self._thread, None
        if thread is not None:
            # The thread wakes at the next event or heartbeat and sees the stop flag (a daemon thread: if the
            # server never answers, it is abandoned rather than waited for).
            await asyncio.to_thread(thread.join, self.heartbeat * 3 + 1)
        if stream is not None:
            try:
                await asyncio.to_thread(stream.close)
            except Exception as exc:
                log.debug("closing the binlog stream failed: %r", exc)
        self._queue = None
