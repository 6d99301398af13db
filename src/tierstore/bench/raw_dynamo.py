"""``raw:aioboto3``: the DynamoDB floor — one long-lived aioboto3 client, attribute values converted by hand.

Its table (``tsbench_raw_<run>``) is created on-demand for the run and deleted afterwards. With an
``endpoint_url`` (DynamoDB Local) and no AWS credentials in the environment, placeholder credentials are used:
the local server accepts any.
"""

from __future__ import annotations

import asyncio
import contextlib
import os
from collections.abc import Mapping, Sequence
from typing import Any
from urllib.parse import parse_qs, urlsplit

from tierstore.bench.data import FIELDS, BenchItem, Dataset
from tierstore.bench.harness import CONCURRENT, GET, GET_MANY, PUT, QUERY, Driver, GetFn, GetManyFn, PageFn, PutFn

__all__ = ["Aioboto3Driver"]

_FLOATS = frozenset({"score"})
_NUMBERS = frozenset(f for f in FIELDS if f not in ("pk", "sk", "name", "email", "status", "note"))


def to_attrs(item: BenchItem) -> dict[str, dict[str, str]]:
    return {f: ({"N": str(v)} if f in _NUMBERS else {"S": v}) for f in FIELDS for v in (getattr(item, f),)}


def from_attrs(attrs: Mapping[str, Mapping[str, str]]) -> BenchItem:
    values: list[Any] = []
    for f in FIELDS:
        a = attrs[f]
        if f in _NUMBERS:
            values.append(float(a["N"]) if f in _FLOATS else int(a["N"]))
        else:
            values.append(a["S"])
    return BenchItem(*values)


class Aioboto3Driver(Driver):
    caps = frozenset({GET, GET_MANY, PUT, QUERY, CONCURRENT})

    def __init__(self, url: str, run_id: str) -> None:
        parts = urlsplit(url)
        self.region = parts.netloc or "us-east-1"
        self.endpoint_url = parse_qs(parts.query).get("endpoint_url", [None])[0]
        self.table = f"tsbench_raw_{run_id}"
        self.trips = 0
        self._cm: Any = None
        self._client: Any = None
        self._created = False

    async def open(self, data: Dataset) -> None:
        import aioboto3

        kw: dict[str, Any] = {"region_name": self.region}
        if self.endpoint_url and "AWS_ACCESS_KEY_ID" not in os.environ:
            kw.update(aws_access_key_id="local", aws_secret_access_key="local")  # noqa: S106 - DynamoDB Local
        session = aioboto3.Session(**kw)
        self._cm = session.client("dynamodb", endpoint_url=self.endpoint_url)
        self._client = client = await self._cm.__aenter__()
        await client.create_table(
            TableName=self.table,
            KeySchema=[{"AttributeName": "pk", "KeyType": "HASH"}, {"AttributeName": "sk", "KeyType": "RANGE"}],
            AttributeDefinitions=[
                {"AttributeName": "pk", "AttributeType": "S"},
                {"AttributeName": "sk", "AttributeType": "S"},
            ],
            BillingMode="PAY_PER_REQUEST",
        )
        self._created = True
        await client.get_waiter("table_exists").wait(TableName=self.table)
        for start in range(0, len(data.items), 25):
            requests = [{"PutRequest": {"Item": to_attrs(i)}} for i in data.items[start : start + 25]]
            pending: dict[str, Any] = {self.table: requests}
            for attempt in range(10):
                resp = await client.batch_write_item(RequestItems=pending)
                pending = resp.get("UnprocessedItems") or {}
                if not pending:
                    break
                await asyncio.sleep(0.01 * 2**attempt)

    async def aclose(self) -> None:
        if self._client is not None:
            if self._created:
                with contextlib.suppress(Exception):
                    await self._client.delete_table(TableName=self.table)
            with contextlib.suppress(Exception):
                await self._cm.__aexit__(None, None, None)

    def counters(self) -> dict[str, int]:
        return {"store": self.trips}

    def getter(self) -> GetFn:
        get_item, table = self._client.get_item, self.table

        async def get(pk: str, sk: str) -> BenchItem | None:
            self.trips += 1
            resp = await get_item(TableName=table, Key={"pk": {"S": pk}, "sk": {"S": sk}})
            attrs = resp.get("Item")
            return None if attrs is None else from_attrs(attrs)

        return get

    def batch_getter(self) -> GetManyFn:
        batch_get, table = self._client.batch_get_item, self.table

        async def get_many(keys: Sequence[tuple[str, str]]) -> list[BenchItem | None]:
            found: dict[tuple[str, str], BenchItem] = {}
            request: dict[str, Any] = {table: {"Keys": [{"pk": {"S": pk}, "sk": {"S": sk}} for pk, sk in keys]}}
            while request:
                self.trips += 1
                resp = await batch_get(RequestItems=request)
                for attrs in resp.get("Responses", {}).get(table, ()):
                    item = from_attrs(attrs)
                    found[(item.pk, item.sk)] = item
                request = resp.get("UnprocessedKeys") or {}
            return [found.get(k) for k in keys]

        return get_many

    def putter(self) -> PutFn:
        put_item, table = self._client.put_item, self.table

        async def put(item: BenchItem) -> None:
            self.trips += 1
            await put_item(TableName=table, Item=to_attrs(item))

        return put

    def pager(self) -> PageFn:
        query, table = self._client.query, self.table

        async def page(pk: str, limit: int) -> list[BenchItem]:
            self.trips += 1
            resp = await query(
                TableName=table,
                KeyConditionExpression="pk = :p",
                ExpressionAttributeValues={":p": {"S": pk}},
                Limit=limit,
            )
            return [from_attrs(a) for a in resp.get("Items", ())]

        return page
