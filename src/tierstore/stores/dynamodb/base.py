"""``DynamoStoreBase``: what every part of the DynamoDB store stands on — lifecycle, table state, the request loop.

``open()`` creates one long-lived aioboto3 client (entered on an ``AsyncExitStack``, closed by ``aclose()``); it
serves the control plane (CreateTable, DescribeTable, UpdateTable, UpdateTimeToLive), and the data plane goes
through a transport (:mod:`~tierstore.stores.dynamodb.transport`): by default the wire transport opened beside it.

Retries: throttling (ProvisionedThroughputExceeded, ThrottlingException, RequestLimitExceeded), requests that
never left (connection refused) and, for idempotent requests only, 5xx replies and lost connections, are retried
with capped full-jitter backoff (:mod:`tierstore.retry`); botocore's own retries are switched off so the two never
multiply. Exhausted throttling raises ``Throttled`` (:mod:`~tierstore.stores.dynamodb.errors` says which error
each fault becomes).

Every key and item is encoded and checked against DynamoDB's limits (:mod:`~tierstore.stores.dynamodb.limits`)
here, before any I/O.

Why a base class with mixins: ``DynamoStore`` is one object with one state, but its jobs — the control plane
(:mod:`~tierstore.stores.dynamodb.tables`), chunked batch requests (:mod:`~tierstore.stores.dynamodb.batch`),
transactions (:mod:`~tierstore.stores.dynamodb.transactions`) and the data plane
(:mod:`~tierstore.stores.dynamodb.store`) — read best one per file. Each is a class over this base, and the store
inherits them all: a method found through the class hierarchy is served from the type's attribute cache like one
defined on the class itself, so the split adds no call and no frame to the hot paths.
"""

from __future__ import annotations

import asyncio
import logging
import re
from contextlib import AsyncExitStack
from typing import Any

from tierstore.errors import ConfigError, StoreError
from tierstore.model.schema import Key, Schema
from tierstore.stats import StoreStats
from tierstore.stores.dynamodb import limits
from tierstore.stores.dynamodb.codec import AV, DynamoCodec, codec_for
from tierstore.stores.dynamodb.config import DynamoStoreConfig
from tierstore.stores.dynamodb.errors import THROTTLE_CODES, TRANSIENT_CODES, store_error
from tierstore.stores.dynamodb.transport import BotocoreTransport, DynamoFault, Transport, open_client
from tierstore.stores.dynamodb.wire import open_wire

__all__ = ["DynamoStoreBase", "TableState"]

log = logging.getLogger("tierstore.dynamodb")

_TABLE_NAME = re.compile(r"[A-Za-z0-9_.\-]{3,255}\Z")


class TableState:
    """Per-schema state of one store: the codec, the table name, open get batches, cached expressions."""

    __slots__ = ("batches", "codec", "name", "ready", "schema", "update_exprs")

    def __init__(self, schema: Schema[Any], name: str) -> None:
        self.schema = schema
        self.codec: DynamoCodec[Any] = codec_for(schema)
        self.name = name
        self.ready = False
        self.batches: list[dict[Key, list[asyncio.Future[Any]]] | None] = [None, None]
        self.update_exprs: dict[tuple[str, ...], tuple[str, dict[str, str]]] = {}


class DynamoStoreBase:
    """The state and plumbing the parts of :class:`~tierstore.stores.dynamodb.DynamoStore` share."""

    name = "dynamodb"

    def __init__(
        self,
        config: DynamoStoreConfig | None = None,
        *,
        transport: Transport | None = None,
        control: Transport | None = None,
    ) -> None:
        """``transport``/``control``: ready transports (tests, DAX); by default ``open()`` builds them."""
        self.config = config or DynamoStoreConfig()
        self.stats = StoreStats()
        self.backoff = self.config.backoff
        self.sleep: Any = asyncio.sleep  # tests replace it to observe backoff delays
        self._data: Transport | None = transport
        self._control: Transport | None = control or transport
        self._stack: AsyncExitStack | None = None
        self._tables: dict[Schema[Any], TableState] = {}
        self._opened = transport is not None
        self._closed = False
        self._consistent = self.config.consistent
        self._coalesce = self.config.coalesce
        self._tasks: set[asyncio.Task[Any]] = set()

    def __repr__(self) -> str:
        from tierstore.config import redact_url

        cfg = self.config
        where = redact_url(cfg.endpoint_url) if cfg.endpoint_url else "aws"
        return f"{type(self).__name__}(region={cfg.region!r}, endpoint={where!r}, table_prefix={cfg.table_prefix!r})"

    # -- lifecycle -----------------------------------------------------------------------------------------

    async def open(self) -> None:
        if self._closed:
            raise StoreError("this store was closed", backend=self.name)
        if self._opened:
            return
        stack = AsyncExitStack()
        try:
            await self._open_transports(stack)
        except BaseException:
            await stack.aclose()
            raise
        self._stack = stack
        self._opened = True

    async def _open_transports(self, stack: AsyncExitStack) -> None:
        cfg = self.config
        client, credentials = await open_client(stack, cfg, self.name)
        botocore_transport = BotocoreTransport(client)
        if self._control is None:
            self._control = botocore_transport
        if self._data is not None:
            return
        if not cfg.fast_path:
            self._data = botocore_transport
            return
        self._data = await open_wire(stack, client, credentials, cfg)

    async def aclose(self) -> None:
        if self._closed:
            return
        self._closed = True
        self._data = self._control = None  # a call after close is a StoreError, not a closed session's error
        for task in list(self._tasks):
            task.cancel()
        stack, self._stack = self._stack, None
        if stack is not None:
            try:
                await stack.aclose()
            except Exception as exc:  # closing must not raise
                log.warning("closing the DynamoDB client failed: %r", exc)

    async def ping(self) -> dict[str, str | None]:
        """``ListTables`` (limit 1) on the control endpoint; ``{endpoint: None or reason}``. It needs only the
        ``dynamodb:ListTables`` permission and reads no item."""
        from tierstore.config import redact_url

        cfg = self.config
        where = redact_url(cfg.endpoint_url) if cfg.endpoint_url else f"dynamodb.{cfg.region or 'default'}"
        try:
            await self.open()
            await self._call("ListTables", {"Limit": 1}, idempotent=True, control=True)
        except Exception as exc:
            return {where: str(exc)}
        return {where: None}

    # -- plumbing ------------------------------------------------------------------------------------------

    def _table(self, schema: Schema[Any]) -> TableState:
        t = self._tables.get(schema)
        if t is None:
            name = self.config.table_prefix + schema.table
            if not _TABLE_NAME.match(name):
                raise ConfigError(
                    f"DynamoDB table name {name!r} must be 3-255 characters of [A-Za-z0-9_.-]; "
                    "lengthen it or set table_prefix", entity=schema.name, backend=self.name,
                )
            t = self._tables[schema] = TableState(schema, name)
        return t

    async def _call(
        self, op: str, params: dict[str, Any], *, idempotent: bool, entity: str | None = None, key: Any = None,
        control: bool = False, passthrough: frozenset[str] = frozenset(),
    ) -> dict[str, Any]:
        """One request, retried under the backoff policy; errors come out as tierstore errors (codes in
        ``passthrough`` as the :class:`DynamoFault` itself, for the caller to interpret)."""
        transport = self._control if control else self._data
        if transport is None:
            if self._closed:
                raise StoreError("this store was closed", backend=self.name)
            raise StoreError("the store is not open; call open() (connect() does)", backend=self.name)
        backoff = self.backoff
        retry = 0
        while True:
            self.stats.round_trips += 1
            try:
                return await transport.call(op, params)
            except DynamoFault as fault:
                code = fault.code
                if code in passthrough:
                    raise
                throttled = code in THROTTLE_CODES
                again = (
                    throttled
                    or (code == "ConnectionError" and not fault.sent)
                    or (idempotent and (code in TRANSIENT_CODES or (fault.status or 0) >= 500))
                )
                if again and retry + 1 < backoff.attempts:
                    self.stats.retries += 1
                    await self.sleep(backoff.delay(retry))
                    retry += 1
                    continue
                self.stats.errors += 1
                raise store_error(fault, op, throttled, retry + 1, entity, key, self.name) from (fault.cause or fault)

    def _check_key(self, t: TableState, key: Key, av: dict[str, AV]) -> None:
        codec = t.codec
        limits.check_key_value(av[codec.partition.attr], sort=False, entity=t.schema.name, key=key)
        if codec.sort is not None:
            limits.check_key_value(av[codec.sort.attr], sort=True, entity=t.schema.name, key=key)

    def check_key(self, schema: Schema[Any], key: Key) -> None:
        """DynamoDB's limits on a key (sizes, numbers), checked before any I/O — before the tiers are read
        (see ``KeyRules``)."""
        self._key(self._tables.get(schema) or self._table(schema), key)

    def _key(self, t: TableState, key: Key) -> dict[str, AV]:
        av = t.codec.key(key)
        self._check_key(t, key, av)
        return av

    def _item(self, t: TableState, item: Any) -> tuple[Key, dict[str, AV], int]:
        """Encode and check an item before any I/O: key sizes, numbers, nesting, sets, item size."""
        schema = t.schema
        key = schema.key_of(item)
        av = t.codec.encode(item)
        self._check_key(t, key, av)
        for attr, index, sort in t.codec.index_key_attrs:
            value = av.get(attr)
            if value is not None and "NULL" not in value:  # an item without it is left out of the index
                limits.check_key_value(value, sort=sort, entity=schema.name, key=key, index=index)
        size = limits.check_item(av, entity=schema.name, key=key)
        return key, av, size

    def _spawn(self, coro: Any) -> None:
        task = asyncio.get_running_loop().create_task(coro)
        self._tasks.add(task)
        task.add_done_callback(self._tasks.discard)

    def _update_expression(
        self, t: TableState, attrs: tuple[str, ...], mode: str
    ) -> tuple[str, dict[str, str]]:
        """``SET`` of ``attrs``, ``REMOVE`` of the declared attributes the item does not have; the version
        ``ADD``-ed (``mode="add"``), ``SET`` (``"set"``) or absent (``"none"``). Attributes the entity does not
        declare are never named, so another writer's attributes survive."""
        cached = t.update_exprs.get((mode, *attrs))
        if cached is not None:
            return cached
        codec = t.codec
        vattr = codec.version_attr
        names: dict[str, str] = {}
        sets = []
        for i, a in enumerate(attrs):
            names[f"#a{i}"] = a
            sets.append(f"#a{i} = :a{i}")
        if mode == "set":
            names["#v"] = vattr  # type: ignore[assignment]
            sets.append("#v = :nv")
        present = set(attrs) | set(codec.key_attrs) | ({vattr} if vattr else set())
        gone = [a for a in codec.attrs if a not in present]
        gone += [lay.attr for lay in codec.synthetic if lay.attr not in present]
        removes = []
        for i, a in enumerate(gone):
            names[f"#r{i}"] = a
            removes.append(f"#r{i}")
        parts = []
        if sets:
            parts.append("SET " + ", ".join(sets))
        if mode == "add":
            names["#v"] = vattr  # type: ignore[assignment]
            parts.append("ADD #v :one")
        if removes:
            parts.append("REMOVE " + ", ".join(removes))
        expression = " ".join(parts)
        limits.check_expression(expression, "the UpdateExpression of a put", entity=t.schema.name)
        if len(t.update_exprs) < 64:
            t.update_exprs[(mode, *attrs)] = (expression, names)
        return expression, names

    def _update_params(
        self, t: TableState, av: dict[str, AV], condition: str, cond_names: dict[str, str],
        cond_values: dict[str, AV], new_version: int | None,
    ) -> tuple[dict[str, Any], str]:
        """The UpdateItem parameters of a put (also a transaction's ``Update`` action) and its version mode."""
        codec = t.codec
        vattr = codec.version_attr
        skip = set(codec.key_attrs)
        if vattr is not None:
            skip.add(vattr)
        attrs = tuple(a for a in av if a not in skip)
        mode = "none" if vattr is None else ("add" if new_version is None else "set")
        expression, names = self._update_expression(t, attrs, mode)
        values = {f":a{i}": av[a] for i, a in enumerate(attrs)}
        if mode == "add":
            values[":one"] = {"N": "1"}
        elif mode == "set":
            values[":nv"] = {"N": str(new_version)}
        params: dict[str, Any] = {"TableName": t.name, "Key": codec.key_of_av(av)}
        if expression:
            params["UpdateExpression"] = expression
        if condition:
            params["ConditionExpression"] = condition
            names = {**names, **cond_names}
            values.update(cond_values)
        if names:
            params["ExpressionAttributeNames"] = names
        if values:
            params["ExpressionAttributeValues"] = values
        return params, mode
