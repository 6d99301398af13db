"""Batch requests of the DynamoDB store: BatchGetItem in chunks of 100, BatchWriteItem in chunks of 25.

The chunks of one call are sent concurrently. DynamoDB may answer a batch in part (``UnprocessedKeys``/
``UnprocessedItems``: when a table's throughput is exceeded, or a BatchGetItem reply would pass 16 MB); the rest
is sent again under the store's backoff, and when the attempts end the call raises ``PartialBatchError`` naming
the keys or items that remain — the caller's own keys and items, matched back by key identity, since DynamoDB
hands back its AttributeValue form
(https://docs.aws.amazon.com/amazondynamodb/latest/APIReference/API_BatchWriteItem.html).
"""

from __future__ import annotations

import asyncio
from typing import Any

from tierstore.errors import PartialBatchError
from tierstore.model.schema import Key
from tierstore.stores.dynamodb import limits
from tierstore.stores.dynamodb.base import DynamoStoreBase, TableState
from tierstore.stores.dynamodb.codec import AV, key_identity

__all__ = ["BatchOps"]


class BatchOps(DynamoStoreBase):
    """Chunked, retried BatchGetItem and BatchWriteItem over the store's request loop."""

    async def _batch_get(self, t: TableState, keys: list[Key], consistent: bool) -> dict[Key, Any]:
        """Items by key (absent keys missing), in chunks of 100 sent concurrently."""
        step = limits.MAX_BATCH_GET
        chunks = [keys[i : i + step] for i in range(0, len(keys), step)]
        if len(chunks) == 1:
            raws = await self._batch_get_chunk(t, chunks[0], consistent)
        else:
            results = await asyncio.gather(
                *(self._batch_get_chunk(t, c, consistent) for c in chunks), return_exceptions=True
            )
            raws = []
            for r in results:
                if isinstance(r, BaseException):
                    raise r
                raws += r
        decode, key_of = t.codec.decode, t.schema.key_of
        found: dict[Key, Any] = {}
        foreign = t.codec.foreign if t.codec.typed else None
        for raw in raws:
            if foreign is not None and foreign(raw):
                continue  # another entity type's item at this key (a shared table)
            item = decode(raw)
            found[key_of(item)] = item
        return found

    async def _batch_get_chunk(
        self, t: TableState, keys: list[Key], consistent: bool, projection: dict[str, str] | None = None
    ) -> list[dict[str, AV]]:
        request: dict[str, Any] = {"Keys": [self._key(t, k) for k in keys]}
        if consistent:
            request["ConsistentRead"] = True
        if projection:
            request["ProjectionExpression"] = ", ".join(projection)
            request["ExpressionAttributeNames"] = projection
        out: list[dict[str, AV]] = []
        retry = 0
        while True:
            reply = await self._call("BatchGetItem", {"RequestItems": {t.name: request}}, idempotent=True,
                                     entity=t.schema.name)
            out += (reply.get("Responses") or {}).get(t.name) or ()
            left = ((reply.get("UnprocessedKeys") or {}).get(t.name) or {}).get("Keys")
            if not left:
                return out
            if retry + 1 >= self.backoff.attempts:
                by_identity = {key_identity(t.codec.key(k)): k for k in keys}
                remaining = [by_identity.get(key_identity(a), a) for a in left]
                self.stats.errors += 1
                raise PartialBatchError(
                    f"BatchGetItem left {len(left)} of {len(keys)} keys unread after {retry + 1} attempts",
                    remaining=remaining, entity=t.schema.name, backend=self.name,
                )
            self.stats.retries += 1
            await self.sleep(self.backoff.delay(retry))
            retry += 1
            request = {**request, "Keys": left}

    async def _batch_write(self, t: TableState, requests: list[dict[str, Any]], labels: list[Any]) -> None:
        """BatchWriteItem in chunks of 25 (sent concurrently); ``labels`` name each request in errors."""
        step = limits.MAX_BATCH_WRITE
        chunks = [(requests[i : i + step], labels[i : i + step]) for i in range(0, len(requests), step)]
        results = await asyncio.gather(
            *(self._batch_write_chunk(t, reqs, labs) for reqs, labs in chunks), return_exceptions=True
        )
        remaining: list[Any] = []
        errors: list[BaseException] = []
        for (_, labs), r in zip(chunks, results, strict=True):
            if isinstance(r, PartialBatchError):
                remaining += r.remaining
                errors.append(r)
            elif isinstance(r, BaseException):
                if not isinstance(r, Exception):
                    raise r
                remaining += labs
                errors.append(r)
        if not errors:
            return
        if len(chunks) == 1:
            raise errors[0]
        raise PartialBatchError(
            f"BatchWriteItem left {len(remaining)} of {len(requests)} writes undone: {errors[0]}",
            remaining=remaining, entity=t.schema.name, backend=self.name,
        ) from errors[0]

    async def _batch_write_chunk(self, t: TableState, requests: list[dict[str, Any]], labels: list[Any]) -> None:
        # No size check here: 25 items of at most 400 KB stay below BatchWriteItem's 16 MB.
        pending = requests
        retry = 0
        while True:
            reply = await self._call("BatchWriteItem", {"RequestItems": {t.name: pending}}, idempotent=True,
                                     entity=t.schema.name)
            left = (reply.get("UnprocessedItems") or {}).get(t.name)
            if not left:
                return
            if retry + 1 >= self.backoff.attempts:
                codec = t.codec
                by_identity = {
                    key_identity(codec.key_of_av(r["PutRequest"]["Item"] if "PutRequest" in r
                                                 else r["DeleteRequest"]["Key"])): lab
                    for r, lab in zip(requests, labels, strict=True)
                }
                remaining = [
                    by_identity.get(key_identity(codec.key_of_av(
                        r["PutRequest"]["Item"] if "PutRequest" in r else r["DeleteRequest"]["Key"])), r)
                    for r in left
                ]
                self.stats.errors += 1
                raise PartialBatchError(
                    f"BatchWriteItem left {len(left)} of {len(requests)} writes undone after {retry + 1} attempts",
                    remaining=remaining, entity=t.schema.name, backend=self.name,
                )
            self.stats.retries += 1
            await self.sleep(self.backoff.delay(retry))
            retry += 1
            pending = left
