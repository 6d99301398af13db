"""DynamoDB change source: each entity table's DynamoDB Stream, read shard by shard.

Library: aioboto3 (the DynamoDB store's client library; its ``dynamodbstreams`` client) — DescribeStream for
the shards, GetShardIterator and GetRecords to read them. Only the item keys are needed, so a stream of any
view type works (``KEYS_ONLY`` is the cheapest; ``enable_stream=True`` turns one on for a table that has
none — a schema change, so only when asked).

Shards and resharding. A stream is a set of shards; DynamoDB closes shards and opens children as the table's
partitions change (a child names its ``ParentShardId``). Records of one item are ordered within the shard
lineage, so a child is read only after its parent was read to its end (or is gone from the stream: trimmed
after 24 h). The shard list is refreshed every ``refresh`` seconds and whenever a shard ends.

Checkpoint: per table, the stream ARN and per shard the last sequence number delivered and whether the shard
was read to its end. A restart continues ``AFTER_SEQUENCE_NUMBER``; shards it has not seen start at
``TRIM_HORIZON``. On a first start (no checkpoint) open shards start at ``LATEST`` and the shard list is
checkpointed at once, so a crash before the first record restarts those shards at ``TRIM_HORIZON`` (repeating
up to 24 h of invalidations rather than missing one). A sequence number that fell off the 24-hour window
(``TrimmedDataAccessException``), or a stream replaced by a new one (disabled and re-enabled), is a gap.

Lag: ``ApproximateCreationDateTime`` is the commit time (whole seconds on DynamoDB, whole minutes on
DynamoDB Local), so the invalidator's lag metric is coarse here; the end-to-end lag is measured in the tests.
GetRecords is limited to 5 calls per second per shard (shared with other readers, such as Lambda), hence the
default ``poll`` of 0.25 s.
"""

from __future__ import annotations

import asyncio
import logging
import time
from contextlib import AsyncExitStack
from typing import Any

from tierstore.cdc.base import Change, ChangeBatch
from tierstore.cdc.keys import EntityMap, dynamo_key
from tierstore.errors import ConfigError, StoreError

__all__ = ["DynamoStreamsSource"]

log = logging.getLogger("tierstore.cdc.dynamodb")


class DynamoStreamsSource:
    """Changes of DynamoDB tables from their streams (see the module docstring).

    ``store``: the store's URL (``dynamodb://us-east-1?endpoint_url=…&table_prefix=…``) or its
    ``DynamoStoreConfig``: region, endpoint, credentials and table prefix are the store's. ``poll``: pause
    between GetRecords rounds that found nothing. ``refresh``: seconds between DescribeStream calls.
    ``enable_stream``: turn on a ``KEYS_ONLY`` stream on tables that have none (otherwise a ``ConfigError``).
    """

    def __init__(
        self, store: Any, *, poll: float = 0.25, refresh: float = 10.0, limit: int = 1000,
        enable_stream: bool = False,
    ) -> None:
        try:
            from tierstore.stores.dynamodb import DynamoStoreConfig
        except ImportError:
            raise ConfigError(
                "the DynamoDB invalidator needs aioboto3; install it with: pip install 'tierstore[cdc-dynamodb]'"
            ) from None
        self.config = DynamoStoreConfig.from_url(store) if isinstance(store, str) else store
        if not isinstance(self.config, DynamoStoreConfig):
            raise ConfigError("DynamoStreamsSource takes a dynamodb:// URL or a DynamoStoreConfig")
        if poll <= 0 or refresh <= 0 or not 1 <= limit <= 1000:
            raise ConfigError("DynamoStreamsSource needs poll > 0, refresh > 0 and 1 <= limit <= 1000")
        self.table_prefix = self.config.table_prefix
        self.poll = poll
        self.refresh = refresh
        self.limit = limit
        self.enable_stream = enable_stream
        self._stack: AsyncExitStack | None = None
        self._ddb: Any = None
        self._streams: Any = None
        self._entities: EntityMap | None = None
        # table -> {"arn": str, "shards": {shard_id: {"seq": str | None, "done": bool}}}
        self._state: dict[str, dict[str, Any]] = {}
        self._parents: dict[str, str | None] = {}  # shard -> parent (as DescribeStream said)
        self._iterators: dict[str, str] = {}
        self._shard_table: dict[str, str] = {}
        self._refreshed = 0.0
        self._gaps: list[str] = []
        self._dirty = False

    def __repr__(self) -> str:
        return f"DynamoStreamsSource({self.identity})"

    @property
    def identity(self) -> str:
        from tierstore.config import redact_url

        cfg = self.config
        where = redact_url(cfg.endpoint_url) if cfg.endpoint_url else "aws"
        return f"dynamodb://{cfg.region or ''}@{where}/{cfg.table_prefix}"

    # -- connection --------------------------------------------------------------------------------------------

    async def _open_clients(self) -> None:
        import aioboto3
        from botocore.config import Config

        from tierstore.stores.dynamodb.transport import is_loopback

        cfg = self.config
        region = cfg.region or ("us-east-1" if is_loopback(cfg.endpoint_url) else None)
        session = aioboto3.Session(
            region_name=region, profile_name=cfg.profile, aws_access_key_id=cfg.aws_access_key_id,
            aws_secret_access_key=cfg.aws_secret_access_key, aws_session_token=cfg.aws_session_token,
        )
        if await session.get_credentials() is None:
            if not is_loopback(cfg.endpoint_url):
                raise ConfigError("no AWS credentials found (environment, profile or instance role)")
            session = aioboto3.Session(region_name=region, aws_access_key_id="local",
                                       aws_secret_access_key="local")  # noqa: S106  # DynamoDB Local
        config = Config(retries={"mode": "standard", "max_attempts": 5}, connect_timeout=cfg.connect_timeout,
                        read_timeout=cfg.timeout)
        stack = AsyncExitStack()
        try:
            self._ddb = await stack.enter_async_context(
                session.client("dynamodb", endpoint_url=cfg.endpoint_url, config=config))
            self._streams = await stack.enter_async_context(
                session.client("dynamodbstreams", endpoint_url=cfg.endpoint_url, config=config))
        except BaseException:
            await stack.aclose()
            raise
        self._stack = stack

    async def aclose(self) -> None:
        stack, self._stack = self._stack, None
        self._iterators.clear()
        if stack is not None:
            try:
                await stack.aclose()
            except Exception as exc:
                log.debug("closing the DynamoDB Streams clients failed: %r", exc)

    # -- start -------------------------------------------------------------------------------------------------

    async def start(self, entities: EntityMap, position: Any | None) -> Any | None:
        from botocore.exceptions import ClientError

        self._entities = entities
        await self._open_clients()
        saved: dict[str, Any] = {}
        if position is not None:
            if not isinstance(position, dict) or not isinstance(position.get("tables"), dict):
                raise ConfigError(f"not a DynamoDB Streams position: {str(position)[:200]!r}")
            saved = position["tables"]
        self._state = {}
        self._parents = {}
        self._iterators = {}
        self._shard_table = {}
        self._gaps = []
        for table in entities.tables:
            try:
                desc = (await self._ddb.describe_table(TableName=table))["Table"]
            except ClientError as exc:
                raise StoreError(f"DescribeTable {table}: {exc}", backend="dynamodb") from None
            arn = desc.get("LatestStreamArn")
            spec = desc.get("StreamSpecification") or {}
            if not arn or not spec.get("StreamEnabled"):
                if not self.enable_stream:
                    raise ConfigError(
                        f"table {table} has no stream; enable one (StreamViewType KEYS_ONLY is enough) or pass "
                        "enable_stream=True / --enable-stream"
                    )
                await self._ddb.update_table(
                    TableName=table, StreamSpecification={"StreamEnabled": True, "StreamViewType": "KEYS_ONLY"})
                arn = await self._wait_stream(table)
            old = saved.get(table)
            if old is not None and old.get("arn") == arn:
                shards = {str(sid): {"seq": p.get("seq"), "done": bool(p.get("done"))}
                          for sid, p in (old.get("shards") or {}).items()}
                self._state[table] = {"arn": arn, "shards": shards, "fresh": False}
            else:
                if old is not None:
                    self._gaps.append(f"the stream of {table} was replaced (disabled and enabled again)")
                # No checkpoint: open shards start at LATEST (marked below), closed ones are skipped.
                self._state[table] = {"arn": arn, "shards": {}, "fresh": old is None}
        await self._refresh()
        for st in self._state.values():
            st["fresh"] = False
        # Position the open shards now, not at the first read: LATEST means "from this start".
        for table, sid in self._readable():
            await self._iterator(table, sid)
        return self._position() if position is None else None

    async def _wait_stream(self, table: str) -> str:
        deadline = time.monotonic() + 60
        while time.monotonic() < deadline:
            desc = (await self._ddb.describe_table(TableName=table))["Table"]
            if desc.get("LatestStreamArn") and desc.get("TableStatus") == "ACTIVE":
                return str(desc["LatestStreamArn"])
            await asyncio.sleep(0.2)
        raise StoreError(f"the stream of {table} did not become active", backend="dynamodb")

    def _position(self) -> dict[str, Any]:
        # "latest" is for this run only: a restart repositions an unread shard at TRIM_HORIZON, never LATEST.
        return {"tables": {
            t: {"arn": st["arn"],
                "shards": {sid: {"seq": p["seq"], "done": p["done"]} for sid, p in st["shards"].items()}}
            for t, st in self._state.items()
        }}

    async def _refresh(self) -> None:
        """DescribeStream of every table: learn new shards (children) and their parents."""
        for table, st in self._state.items():
            seen: set[str] = set()
            kwargs: dict[str, Any] = {"StreamArn": st["arn"]}
            while True:
                desc = (await self._streams.describe_stream(**kwargs))["StreamDescription"]
                for shard in desc.get("Shards", ()):
                    sid = shard["ShardId"]
                    seen.add(sid)
                    self._parents[sid] = shard.get("ParentShardId")
                    self._shard_table[sid] = table
                    if sid not in st["shards"]:
                        closed = "EndingSequenceNumber" in shard.get("SequenceNumberRange", {})
                        if st["fresh"]:
                            # First start: history before now is not ours to replay.
                            st["shards"][sid] = {"seq": None, "done": closed, "latest": not closed}
                        else:
                            st["shards"][sid] = {"seq": None, "done": False}
                        self._dirty = True
                last = desc.get("LastEvaluatedShardId")
                if not last:
                    break
                kwargs["ExclusiveStartShardId"] = last
            # Shards trimmed from the stream (older than 24 h) are finished for us.
            for sid in [s for s in st["shards"] if s not in seen]:
                del st["shards"][sid]
                self._iterators.pop(sid, None)
                self._dirty = True
        self._refreshed = time.monotonic()

    # -- reads -------------------------------------------------------------------------------------------------

    def _readable(self) -> list[tuple[str, str]]:
        out = []
        for table, st in self._state.items():
            shards = st["shards"]
            for sid, pos in shards.items():
                if pos["done"]:
                    continue
                parent = self._parents.get(sid)
                if parent is not None and parent in shards and not shards[parent]["done"]:
                    continue  # the parent's records come first
                out.append((table, sid))
        return out

    async def _iterator(self, table: str, sid: str) -> str | None:
        it = self._iterators.get(sid)
        if it is not None:
            return it
        pos = self._state[table]["shards"][sid]
        kwargs: dict[str, Any] = {"StreamArn": self._state[table]["arn"], "ShardId": sid}
        if pos.get("seq"):
            kwargs.update(ShardIteratorType="AFTER_SEQUENCE_NUMBER", SequenceNumber=pos["seq"])
        elif pos.pop("latest", False):
            kwargs["ShardIteratorType"] = "LATEST"
        else:
            kwargs["ShardIteratorType"] = "TRIM_HORIZON"
        from botocore.exceptions import ClientError

        try:
            reply = await self._streams.get_shard_iterator(**kwargs)
        except ClientError as exc:
            code = exc.response.get("Error", {}).get("Code")
            if code == "TrimmedDataAccessException":
                self._gaps.append(f"shard {sid} of {table}: records after the checkpoint were trimmed (24 h)")
                pos["seq"] = None
                return None
            if code == "ResourceNotFoundException":
                pos["done"] = True  # the shard is gone (trimmed)
                self._dirty = True
                return None
            raise
        it = reply.get("ShardIterator")
        if it is None:
            pos["done"] = True
            self._dirty = True
            return None
        self._iterators[sid] = it
        return str(it)

    async def read(self, wait: float) -> ChangeBatch:
        from botocore.exceptions import ClientError

        if self._streams is None or self._entities is None:
            raise StoreError("the DynamoDB Streams source is not started", backend="dynamodb")
        deadline = time.monotonic() + wait
        batch = ChangeBatch()
        while True:
            if time.monotonic() - self._refreshed >= self.refresh:
                await self._refresh()
            ended = False
            for table, sid in self._readable():
                it = await self._iterator(table, sid)
                if it is None:
                    continue
                try:
                    reply = await self._streams.get_records(ShardIterator=it, Limit=self.limit)
                except ClientError as exc:
                    code = exc.response.get("Error", {}).get("Code")
                    if code == "ExpiredIteratorException":
                        self._iterators.pop(sid, None)  # re-positioned from the checkpoint next round
                        continue
                    if code == "TrimmedDataAccessException":
                        self._iterators.pop(sid, None)
                        self._state[table]["shards"][sid]["seq"] = None
                        self._gaps.append(f"shard {sid} of {table}: records were trimmed before they were read")
                        continue
                    raise
                self._add(batch, table, sid, reply.get("Records", ()))
                nxt = reply.get("NextShardIterator")
                if nxt is None:
                    self._state[table]["shards"][sid]["done"] = True
                    self._iterators.pop(sid, None)
                    self._dirty = True
                    ended = True
                else:
                    self._iterators[sid] = nxt
            if ended:
                await self._refresh()  # children of the shard that ended are readable now
            if self._gaps:
                batch.gap = "; ".join(self._gaps)
                self._gaps = []
            if batch.changes or batch.gap or batch.ignored or self._dirty:
                self._dirty = False
                batch.position = self._position()
                return batch
            now = time.monotonic()
            if now >= deadline:
                return batch
            await asyncio.sleep(min(self.poll, deadline - now))

    def _add(self, batch: ChangeBatch, table: str, sid: str, records: Any) -> None:
        entities = self._entities
        assert entities is not None
        schema = entities.get(table)
        for rec in records:
            data = rec.get("dynamodb", {})
            seq = data.get("SequenceNumber")
            if seq:
                self._state[table]["shards"][sid]["seq"] = seq
                self._dirty = True
            key = dynamo_key(schema, data.get("Keys", {})) if schema is not None else None
            if key is None:
                batch.ignored += 1
                continue
            at = data.get("ApproximateCreationDateTime")
            committed = at.timestamp() if hasattr(at, "timestamp") else (float(at) if at else None)
            batch.changes.append(Change(schema, (key,), committed))  # type: ignore[arg-type]

    async def acknowledge(self, position: Any) -> None:
        return None

    async def backlog(self) -> dict[str, Any]:
        shards = [p for st in self._state.values() for p in st["shards"].values()]
        return {"shards": len(shards), "shards_open": sum(1 for p in shards if not p["done"]),
                "shards_waiting_for_parent": len([1 for p in shards if not p["done"]]) - len(self._readable())}
