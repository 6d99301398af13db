"""``DynamoStore``: the data plane of the DynamoDB store of record — reads, queries, writes, versions.

The store is assembled from one class per job (see :mod:`~tierstore.stores.dynamodb.base`); this file holds what
a caller sees most: ``get``/``get_many``/``query``/``put``/``delete`` and their batch forms.

Writes. Every put is one ``UpdateItem``: ``SET`` of the attributes the entity declares, ``REMOVE`` of the
declared ones the item lacks (``None``-less optional fields, empty sets). Attributes the entity does not declare
are never named, so what other writers keep on a shared item (their GSI keys among them) survives — a
``PutItem`` would replace the whole item. Versions (an entity with a ``Version`` field stores *stored version + 1*
and returns it):

* with ``expect_version=e`` or ``if_not_exists`` the new version is known (e + 1, or 1): the version is ``SET``
  under the condition ``#v = :e``; for ``e = 0`` the condition is ``attribute_not_exists(#v) OR #v = :e`` (no
  item, or one written without a version attribute, counts as version 0);
* unconditionally the stored version is unknown: ``ADD`` of 1 to the version, ``ReturnValues=UPDATED_NEW`` — one
  atomic round trip, no read (a read-then-conditional-put would cost two and could lose races);
* ``put_many`` uses that ``UpdateItem`` per item (concurrently): ``BatchWriteItem`` can neither add, condition nor
  keep foreign attributes. ``restore_many`` (exact copies) still uses ``BatchWriteItem`` in chunks of 25
  (:mod:`~tierstore.stores.dynamodb.batch`);
* in ``transact``, puts are ``Update`` actions of the same form, and an unconditional versioned put is *pinned*
  to the version it read (:mod:`~tierstore.stores.dynamodb.transactions`).

Coalescing. Concurrent ``get`` calls of one table in the same event-loop tick are sent as one ``BatchGetItem``
(DataLoader style): the first caller yields once (``sleep(0)``), everyone who asks meanwhile joins, and the
first caller sends the batch — or a plain ``GetItem`` when it is alone.
"""

from __future__ import annotations

import asyncio
from collections.abc import Sequence
from typing import Any, TypeVar

import msgspec

from tierstore.concurrency import gather_all
from tierstore.errors import ConditionFailed, NotFound, PartialBatchError, StoreError, Unsupported, ValidationError
from tierstore.expressions.ast import Condition
from tierstore.expressions.dynamodb import DynamoExpression
from tierstore.expressions.memory import evaluate
from tierstore.expressions.update import Changes
from tierstore.model.schema import Key, Schema
from tierstore.query import Page, Query, Skipped, decode_cursor, encode_cursor
from tierstore.stores.dynamodb import limits
from tierstore.stores.dynamodb.base import TableState
from tierstore.stores.dynamodb.codec import AV, from_av, key_identity, to_av
from tierstore.stores.dynamodb.collections import Collections
from tierstore.stores.dynamodb.keytemplates import TemplateLayout
from tierstore.stores.dynamodb.projection import decode_projected, projection_expression
from tierstore.stores.dynamodb.tables import TableAdmin
from tierstore.stores.dynamodb.transactions import Transactions
from tierstore.stores.dynamodb.transport import DynamoFault
from tierstore.stores.paging import query_all

__all__ = ["DynamoStore"]

P = TypeVar("P")
T = TypeVar("T")

_FILTER_STEP = 100  # items read per request at least, when a filter may drop most of them


class DynamoStore(Collections, Transactions, TableAdmin):
    """The DynamoDB store of record. See the module docstrings of this package for the design."""

    expressions = True  # honours Query.where, when= on put/delete, and update()


    # -- whole tables --------------------------------------------------------------------------------------

    async def truncate(self, schema: Schema[Any]) -> None:
        t = self._table(schema)
        names = {f"#k{i}": a for i, a in enumerate(t.codec.key_attrs)}
        params: dict[str, Any] = {
            "TableName": t.name, "ProjectionExpression": ", ".join(names), "ExpressionAttributeNames": names,
            "ConsistentRead": True,
        }
        while True:
            reply = await self._call("Scan", params, idempotent=True, entity=schema.name)
            keys = reply.get("Items") or []
            if keys:
                await self._batch_write(t, [{"DeleteRequest": {"Key": k}} for k in keys], keys)
            last = reply.get("LastEvaluatedKey")
            if not last:
                return
            params["ExclusiveStartKey"] = last

    async def scan(self, schema: Schema[T], *, after: Key | None = None, limit: int = 1000) -> list[T]:
        """Up to ``limit`` items of the table after the item with key ``after`` (resharding, exports).

        DynamoDB scans in its own hash order, not key order; resuming from the last key seen works the same.
        """
        t = self._table(schema)
        params: dict[str, Any] = {"TableName": t.name, "ConsistentRead": True}
        if after is not None:
            params["ExclusiveStartKey"] = self._key(t, after)
        out: list[T] = []
        while len(out) < limit:
            params["Limit"] = limit - len(out)
            reply = await self._call("Scan", params, idempotent=True, entity=schema.name)
            out += t.codec.decode_many(reply.get("Items") or [])
            last = reply.get("LastEvaluatedKey")
            if not last:
                break
            params["ExclusiveStartKey"] = last
        return out

    async def restore_many(self, schema: Schema[T], items: Sequence[T]) -> None:
        """Write ``items`` exactly as given, version fields kept (resharding, backups): BatchWriteItem."""
        t = self._table(schema)
        encoded = [self._item(t, it) for it in items]
        limits.check_distinct((k for k, _, _ in encoded), "restore_many", entity=schema.name)
        if not items:
            return
        self.stats.writes += len(items)
        await self._batch_write(t, [{"PutRequest": {"Item": av}} for _, av, _ in encoded], list(items))

    # -- reads ---------------------------------------------------------------------------------------------

    async def get(self, schema: Schema[T], key: Key, *, consistent: bool = False) -> T | None:
        t = self._tables.get(schema) or self._table(schema)
        consistent = consistent or self._consistent
        av = self._key(t, key)  # a bad key fails its own caller here, never a whole batch
        self.stats.reads += 1
        if not self._coalesce:
            return await self._get_item(t, key, av, consistent)  # type: ignore[no-any-return]
        slot = 1 if consistent else 0
        batch = t.batches[slot]
        if batch is not None:
            fut: asyncio.Future[Any] = asyncio.get_running_loop().create_future()
            batch.setdefault(key, []).append(fut)
            return await fut  # type: ignore[no-any-return]
        # First get of this tick: let every other task that is ready run, and gather their gets.
        batch = t.batches[slot] = {}
        try:
            await asyncio.sleep(0)
        except BaseException:
            t.batches[slot] = None
            if batch:
                self._spawn(self._serve(t, batch, consistent))
            raise
        t.batches[slot] = None
        if not batch:
            return await self._get_item(t, key, av, consistent)  # type: ignore[no-any-return]
        keys = list(dict.fromkeys([key, *batch]))
        try:
            found = await self._batch_get(t, keys, consistent)
        except asyncio.CancelledError:
            self._spawn(self._serve(t, batch, consistent))  # the others still want their items
            raise
        except BaseException as exc:
            for futs in batch.values():
                for f in futs:
                    if not f.done():
                        f.set_exception(exc)
            raise
        for k, futs in batch.items():
            value = found.get(k)
            for f in futs:
                if not f.done():
                    f.set_result(value)
        return found.get(key)

    async def _serve(self, t: TableState, batch: dict[Key, list[asyncio.Future[Any]]], consistent: bool) -> None:
        try:
            found = await self._batch_get(t, list(batch), consistent)
        except BaseException as exc:
            for futs in batch.values():
                for f in futs:
                    if not f.done():
                        f.set_exception(exc)
            return
        for k, futs in batch.items():
            for f in futs:
                if not f.done():
                    f.set_result(found.get(k))

    async def _get_item(self, t: TableState, key: Key, av: dict[str, AV], consistent: bool) -> Any:
        params: dict[str, Any] = {"TableName": t.name, "Key": av}
        if consistent:
            params["ConsistentRead"] = True
        reply = await self._call("GetItem", params, idempotent=True, entity=t.schema.name, key=key)
        raw = reply.get("Item")
        return None if raw is None or (t.codec.typed and t.codec.foreign(raw)) else t.codec.decode(raw)

    async def get_many(
        self, schema: Schema[T], keys: Sequence[Key], *, consistent: bool = False
    ) -> list[T | None]:
        t = self._table(schema)
        self.stats.reads += len(keys)
        if not keys:
            return []
        found = await self._batch_get(t, list(dict.fromkeys(keys)), consistent or self._consistent)
        return [found.get(k) for k in keys]

    async def query(self, schema: Schema[T], query: Query) -> Page[T]:
        return await self._query(schema, query, False)

    async def query_projected(
        self, schema: Schema[Any], query: Query, cls: type[P], names: tuple[str, ...]
    ) -> Page[P]:
        """One page of ``query`` reading only the attributes of ``names`` plus the key attributes (a
        ``ProjectionExpression``, see :class:`~tierstore.stores.base.Projects`), decoded straight into ``cls``."""
        return await self._query(schema, query, False, (cls, names))

    async def query_many(
        self, schema: Schema[T], partitions: Sequence[tuple[Any, ...]], *, index: str | None = None,
        limit: int | None = None, reverse: bool = False, concurrency: int = 16,
    ) -> list[list[T]]:
        """The items of many partitions (see ``QueryMany``). DynamoDB has no query over several partitions, so
        this is one ``Query`` per partition, ``concurrency`` at a time, with the per-partition limit as its
        ``Limit`` (no look-ahead item: nothing pages on)."""

        async def one(partition: tuple[Any, ...]) -> list[T]:
            q = Query(partition, index=index, limit=limit, reverse=reverse)
            if limit is None:
                items, _ = await query_all(self, schema, q)
                return items
            page: Page[T] = await self._query(schema, q, True)
            return page.items

        return await gather_all([one(p) for p in partitions], concurrency)

    async def _query(
        self, schema: Schema[Any], query: Query, exact: bool, project: tuple[type[Any], tuple[str, ...]] | None = None
    ) -> Page[Any]:
        """``exact``: read at most ``query.limit`` items and no cursor (``query_many``). ``project``: a projection
        class and its fields (:meth:`query_projected`)."""
        t = self._table(schema)
        codec = t.codec
        self.stats.queries += 1
        if query.index is not None and query.index not in codec.indexes:
            raise ValidationError(f"{schema.name} has no index {query.index!r}", entity=schema.name)
        local = query.index is None or query.index in codec.local_indexes
        if query.consistent and not local:
            raise Unsupported(
                "DynamoDB global secondary indexes serve only eventually consistent reads",
                entity=schema.name, backend=self.name,
            )
        p_layout, s_layout = codec.index_layouts(query.index)
        partition = p_layout.value(query.partition)
        limits.check_key_value(partition, sort=False, entity=schema.name, key=query.partition)
        names = {"#p": p_layout.attr}
        values: dict[str, AV] = {":p": partition}
        expression = "#p = :p"
        excluded: str | None = None
        cond: tuple[str, list[AV]] | bool | None = None
        if query.sort is not None:
            if s_layout is None:
                raise ValidationError(f"{schema.name} has no sort key to filter on", entity=schema.name)
            cond = s_layout.condition(query.sort, "#s", ":s")
            if cond is False:
                return Page([], None)
            if isinstance(s_layout, TemplateLayout):
                excluded = s_layout.excluded(query.sort)
        elif isinstance(s_layout, TemplateLayout):
            cond = s_layout.default_condition("#s", ":s")  # this entity's items of a shared partition only
        if cond is not None and cond is not True and cond is not False:
            fragment, avs = cond
            for av in avs:
                limits.check_key_value(av, sort=True, entity=schema.name, key=query.sort and query.sort.values)
            expression += " AND " + fragment
            names["#s"] = s_layout.attr  # type: ignore[union-attr]
            values.update({f":s{i}": av for i, av in enumerate(avs)})
        params: dict[str, Any] = {
            "TableName": t.name, "KeyConditionExpression": expression, "ExpressionAttributeNames": names,
            "ExpressionAttributeValues": values,
        }
        filters: list[str] = []
        if codec.type_attr is not None and not (isinstance(s_layout, TemplateLayout) and s_layout.tpl.prefix):
            # No sort prefix tells the types apart: filter on the type attribute.
            names["#et"] = codec.type_attr
            values[":et"] = codec.type_av
            filters.append("#et = :et")
        if query.where is not None:
            flt = DynamoExpression(codec.names, to_av, "w")
            filters.append(f"({flt.condition(query.where)})" if filters else flt.condition(query.where))
            names.update(flt.names)
            values.update(flt.values)
        if filters:
            params["FilterExpression"] = " AND ".join(filters)
            limits.check_expression(params["FilterExpression"], "the filter", entity=schema.name)
        if project is not None:
            params["ProjectionExpression"], pnames = projection_expression(codec, query.index, project[1])
            names.update(pnames)
        keep = self._keeper(t, s_layout, excluded)
        if query.reverse:
            params["ScanIndexForward"] = False
        if query.index is not None:
            params["IndexName"] = query.index
        if local and (query.consistent or self._consistent):
            params["ConsistentRead"] = True
        if query.cursor is not None:
            params["ExclusiveStartKey"] = self._decode_cursor(t, query)
        limit = query.limit
        raws: list[dict[str, AV]] = []
        while True:
            if limit is not None:
                # One more than asked: if it comes, there is a next page; if not, this is the last page. A filter
                # applies after Limit (which counts items read), so a filtered query reads in larger steps.
                want = limit + (0 if exact else 1) - len(raws)
                params["Limit"] = want if not filters else max(want, _FILTER_STEP)
            reply = await self._call("Query", params, idempotent=True, entity=schema.name)
            got = reply.get("Items") or []
            raws += got if keep is None else filter(keep, got)
            last = reply.get("LastEvaluatedKey")
            if limit is None:
                cursor = self._encode_cursor(t, query, last) if last else None
                return self._page(t, query, project, raws, cursor)
            if exact and (len(raws) >= limit or not last):
                return self._page(t, query, project, raws[:limit], None)
            if len(raws) > limit or not last:
                break
            params["ExclusiveStartKey"] = last  # DynamoDB stopped at 1 MB: read on until the page is full
        if len(raws) > limit:
            raws = raws[:limit]
            return self._page(t, query, project, raws, self._encode_cursor(t, query, raws[-1]))
        return self._page(t, query, project, raws, None)

    @staticmethod
    def _keeper(t: TableState, s_layout: Any, excluded: str | None) -> Any:
        """A predicate on raw items of a query that drops other entity types' items of a shared partition (and
        the one key a ``lt`` condition on a template reads too), or None when every item is kept."""
        codec = t.codec
        if not codec.templates and codec.type_attr is None:
            return None
        foreign = codec.foreign
        if excluded is None:
            return lambda raw: not foreign(raw)
        attr, gone = s_layout.attr, {"S": excluded}
        return lambda raw: raw.get(attr) != gone and not foreign(raw)

    def _page(
        self, t: TableState, query: Query, project: tuple[type[Any], tuple[str, ...]] | None,
        raws: list[dict[str, AV]], cursor: str | None,
    ) -> Page[Any]:
        """Decode a page; a tolerant query leaves out (and lists) the items that do not decode."""
        codec = t.codec
        if project is not None:
            got, left = decode_projected(codec, raws, project[0], project[1], query.skip_undecodable)
            self.stats.skipped += len(left)
            return Page(got, cursor, left)
        if not query.skip_undecodable:
            return Page(codec.decode_many(raws), cursor)
        try:
            return Page(codec.decode_many(raws), cursor)
        except StoreError:
            pass
        items: list[Any] = []
        skipped: list[Skipped] = []
        for raw in raws:
            try:
                items.append(codec.decode(raw))
            except StoreError as exc:
                key = {a: from_av(raw[a]) for a in codec.key_attrs if a in raw}
                skipped.append(Skipped(key, exc.message))
        self.stats.skipped += len(skipped)
        return Page(items, cursor, skipped)

    def _encode_cursor(self, t: TableState, query: Query, last: dict[str, AV]) -> str:
        position: list[Any] = []
        for attr in t.codec.cursor_attrs(query.index):
            ((tag, v),) = last[attr].items()
            if tag == "B" and not isinstance(v, bytes):
                v = key_identity({attr: {tag: v}})[0][2]
            position += [attr, tag, v]
        return encode_cursor(query, position)

    def _decode_cursor(self, t: TableState, query: Query) -> dict[str, AV]:
        assert query.cursor is not None
        position = decode_cursor(query, query.cursor)
        attrs = t.codec.cursor_attrs(query.index)
        types = t.codec.attribute_types
        if len(position) != 3 * len(attrs):
            raise ValidationError("malformed cursor", entity=t.schema.name)
        out: dict[str, AV] = {}
        for i, attr in enumerate(attrs):
            name, tag, v = position[3 * i : 3 * i + 3]
            if name != attr or tag != types[attr] or not isinstance(v, bytes if tag == "B" else str):
                raise ValidationError("malformed cursor", entity=t.schema.name)
            out[attr] = {tag: v}
        return out

    # -- writes --------------------------------------------------------------------------------------------

    async def _conditional(
        self, t: TableState, op: str, params: dict[str, Any], key: Key, when: Condition | None, idempotent: bool
    ) -> dict[str, Any]:
        """``op`` whose ``ConditionExpression`` may include ``when``: a failure of it raises ``ConditionFailed``
        carrying the current item (``ReturnValuesOnConditionCheckFailure=ALL_OLD``, no extra read)."""
        if when is None:
            return await self._call(op, params, idempotent=idempotent, entity=t.schema.name, key=key)
        params["ReturnValuesOnConditionCheckFailure"] = "ALL_OLD"
        try:
            return await self._call(
                op, params, idempotent=False, entity=t.schema.name, key=key,
                passthrough=frozenset({"ConditionalCheckFailedException"}),
            )
        except DynamoFault as fault:
            self.stats.errors += 1
            current = None if not fault.item else t.codec.decode(fault.item)
            if current is not None and evaluate(when, current):
                why = "the version or existence condition did not hold (expected version / if_not_exists)"
            else:
                why = f"condition {when!r} did not hold{' (no item)' if current is None else ''}"
            raise ConditionFailed(why, entity=t.schema.name, key=key, backend=self.name, current=current) from None

    async def put(
        self, schema: Schema[T], item: T, *, if_not_exists: bool = False, expect_version: int | None = None,
        when: Condition | None = None,
    ) -> T:
        t = self._table(schema)
        codec = t.codec
        key, av, _ = self._item(t, item)
        vattr = codec.version_attr
        self.stats.writes += 1
        names: dict[str, str] = {}
        values: dict[str, AV] = {}
        conditions: list[str] = []
        if if_not_exists:
            names["#k"] = codec.partition.attr
            conditions.append("attribute_not_exists(#k)")
        if expect_version is not None:
            if vattr is None:
                raise ValidationError(f"{schema.name} has no version field", entity=schema.name)
            names["#v"] = vattr
            values[":e"] = {"N": str(expect_version)}
            # An item without a version attribute (or no item) counts as version 0.
            conditions.append("(attribute_not_exists(#v) OR #v = :e)" if expect_version == 0 else "#v = :e")
        new_version = None
        if vattr is not None and conditions:
            new_version = 1 if if_not_exists else expect_version + 1  # type: ignore[operator]
        self._when(when, t, names, values, conditions)
        stored: T = await self._update_put(
            t, item, key, av, " AND ".join(conditions), names, values, new_version, when
        )
        return stored

    async def _update_put(
        self, t: TableState, item: Any, key: Key, av: dict[str, AV], condition: str = "",
        names: dict[str, str] | None = None, values: dict[str, AV] | None = None, new_version: int | None = None,
        when: Condition | None = None,
    ) -> Any:
        """A put as one UpdateItem: SET of the declared attributes, REMOVE of the declared ones the item lacks,
        the version ADD-ed by 1 (no version condition) or SET to the known new version (a version condition),
        under ``condition`` (which includes ``when``, if given).

        Never PutItem: a whole-item replace would drop attributes other writers keep on the item (their
        index keys among them)."""
        params, mode = self._update_params(t, av, condition, names or {}, values or {}, new_version)
        if mode == "add":
            params["ReturnValues"] = "UPDATED_NEW"
        reply = await self._conditional(t, "UpdateItem", params, key, when, not condition and mode != "add")
        if mode == "none":
            return item
        version = new_version if mode == "set" else int(reply["Attributes"][t.codec.version_attr]["N"])
        return msgspec.structs.replace(item, **{t.schema.version: version})  # type: ignore[arg-type]

    async def update(self, schema: Schema[T], key: Key, changes: Changes, *, when: Condition | None = None) -> T:
        """One ``UpdateItem``: ``SET`` of the changes (``if_not_exists(a, 0) + d`` for counters, ``list_append``
        for appends, ``NULL`` for removals), ``ADD`` of 1 to the version, ``attribute_exists`` of the key (an
        update never creates an item) and ``when``; ``ReturnValues=ALL_NEW`` gives the new item, and a failed
        condition's ``ALL_OLD`` tells ``NotFound`` from ``ConditionFailed`` (with the current item)."""
        t = self._table(schema)
        codec = t.codec
        params = self._changes_params(t, key, changes, when)
        params["ReturnValues"] = "ALL_NEW"
        self.stats.writes += 1
        try:
            reply = await self._call(
                "UpdateItem", params, idempotent=False, entity=schema.name, key=key,
                passthrough=frozenset({"ConditionalCheckFailedException"}),
            )
        except DynamoFault as fault:
            self.stats.errors += 1
            if not fault.item:
                raise NotFound(
                    "update of an item that does not exist", entity=schema.name, key=key, backend=self.name
                ) from None
            raise ConditionFailed(
                f"condition {when!r} did not hold", entity=schema.name, key=key, backend=self.name,
                current=codec.decode(fault.item),
            ) from None
        stored: T = codec.decode(reply["Attributes"])
        return stored

    async def put_many(self, schema: Schema[T], items: Sequence[T]) -> list[T]:
        """One UpdateItem per item, concurrently: ``BatchWriteItem`` can neither add to a version nor keep the
        attributes the entity does not declare (it replaces whole items)."""
        t = self._table(schema)
        encoded = [self._item(t, it) for it in items]
        limits.check_distinct((k for k, _, _ in encoded), "put_many", entity=schema.name)
        if not items:
            return []
        self.stats.writes += len(items)
        gate = asyncio.Semaphore(self.config.write_concurrency)

        async def one(item: T, key: Key, av: dict[str, AV]) -> T:
            async with gate:
                return await self._update_put(t, item, key, av)  # type: ignore[no-any-return]

        results = await asyncio.gather(
            *(one(it, k, av) for it, (k, av, _) in zip(items, encoded, strict=True)), return_exceptions=True
        )
        failed = [(it, r) for it, r in zip(items, results, strict=True) if isinstance(r, BaseException)]
        if failed:
            first = failed[0][1]
            if not isinstance(first, Exception) or len(failed) == len(items):
                raise first
            raise PartialBatchError(
                f"{len(failed)} of {len(items)} puts failed: {first}", remaining=[it for it, _ in failed],
                entity=schema.name, backend=self.name,
            ) from first
        return results  # type: ignore[return-value]

    async def delete(
        self, schema: Schema[Any], key: Key, *, expect_version: int | None = None, when: Condition | None = None
    ) -> bool:
        t = self._table(schema)
        params: dict[str, Any] = {"TableName": t.name, "Key": self._key(t, key), "ReturnValues": "ALL_OLD"}
        names: dict[str, str] = {}
        values: dict[str, AV] = {}
        conditions: list[str] = []
        if expect_version is not None:
            if t.codec.version_attr is None:
                raise ValidationError(f"{schema.name} has no version field", entity=schema.name)
            conditions.append("(attribute_not_exists(#v) OR #v = :e)" if expect_version == 0 else "#v = :e")
            names["#v"] = t.codec.version_attr
            values[":e"] = {"N": str(expect_version)}
        self._when(when, t, names, values, conditions)
        if conditions:
            params["ConditionExpression"] = " AND ".join(conditions)
            params["ExpressionAttributeNames"] = names
            if values:
                params["ExpressionAttributeValues"] = values
        self.stats.writes += 1
        reply = await self._conditional(t, "DeleteItem", params, key, when, not conditions)
        return bool(reply.get("Attributes"))

    async def delete_many(self, schema: Schema[Any], keys: Sequence[Key]) -> None:
        t = self._table(schema)
        requests = [{"DeleteRequest": {"Key": self._key(t, k)}} for k in keys]
        limits.check_distinct(keys, "delete_many", entity=schema.name)
        if not keys:
            return
        self.stats.writes += len(keys)
        await self._batch_write(t, requests, list(keys))
