"""``raw:aioboto3``: the DynamoDB floor — one long-lived aioboto3 client, attribute values converted by hand.

Its table (``tsbench_raw_<run>``) is created on-demand for the run and deleted afterwards. With an
``endpoint_url`` (DynamoDB Local) and no AWS credentials in the environment, placeholder credentials are used:
the local server accepts any.

``Aioboto3JoinDriver`` is the ``join_100`` floor (``raw:aioboto3-join-batch`` / ``-n+1``): a customers and an
orders table of its own, a ``query`` for the page, then one ``batch_get_item`` of the distinct customers
(``UnprocessedKeys`` re-sent) or one ``get_item`` per order.
"""

from __future__ import annotations

import asyncio
import contextlib
import os
from collections.abc import Mapping, Sequence
from typing import Any
from urllib.parse import parse_qs, urlsplit

from tierstore.bench.api import (
    CONCURRENT,
    GET,
    GET_MANY,
    PUT,
    QUERY,
    UPDATE,
    Driver,
    GetFn,
    GetManyFn,
    PageFn,
    PutFn,
    UpdateFn,
)
from tierstore.bench.data import FIELDS, ORDER_FIELDS, BenchItem, BenchOrder, Dataset
from tierstore.bench.floors.join import CustomerGet, CustomersGet, JoinFloor, Key, OrdersPage

__all__ = ["Aioboto3Driver", "Aioboto3JoinDriver"]

_FLOATS = frozenset({"score"})
_NUMBERS = frozenset(f for f in FIELDS if f not in ("pk", "sk", "name", "email", "status", "note"))


def to_attrs(item: BenchItem) -> dict[str, dict[str, str]]:
    return {f: ({"N": str(v)} if f in _NUMBERS else {"S": v}) for f in FIELDS for v in (getattr(item, f),)}


_ORDER_NUMBERS = frozenset({"total_cents", "created_at"})


def order_to_attrs(order: BenchOrder) -> dict[str, dict[str, str]]:
    return {
        f: ({"N": str(v)} if f in _ORDER_NUMBERS else {"S": v}) for f in ORDER_FIELDS for v in (getattr(order, f),)
    }


def order_from_attrs(attrs: Mapping[str, Mapping[str, str]]) -> BenchOrder:
    a = attrs
    return BenchOrder(
        a["pk"]["S"], a["sk"]["S"], a["customer_pk"]["S"], a["customer_sk"]["S"],
        int(a["total_cents"]["N"]), a["status"]["S"], int(a["created_at"]["N"]),
    )


def from_attrs(attrs: Mapping[str, Mapping[str, str]]) -> BenchItem:
    values: list[Any] = []
    for f in FIELDS:
        a = attrs[f]
        if f in _NUMBERS:
            values.append(float(a["N"]) if f in _FLOATS else int(a["N"]))
        else:
            values.append(a["S"])
    return BenchItem(*values)


async def _client(region: str, endpoint_url: str | None) -> tuple[Any, Any]:
    """One long-lived client: ``(context manager, client)``."""
    import aioboto3

    kw: dict[str, Any] = {"region_name": region}
    if endpoint_url and "AWS_ACCESS_KEY_ID" not in os.environ:
        kw.update(aws_access_key_id="local", aws_secret_access_key="local")  # noqa: S106 - DynamoDB Local
    session = aioboto3.Session(**kw)
    cm = session.client("dynamodb", endpoint_url=endpoint_url)
    return cm, await cm.__aenter__()


async def _create_and_load(client: Any, table: str, items: Sequence[dict[str, Any]]) -> None:
    await client.create_table(
        TableName=table,
        KeySchema=[{"AttributeName": "pk", "KeyType": "HASH"}, {"AttributeName": "sk", "KeyType": "RANGE"}],
        AttributeDefinitions=[
            {"AttributeName": "pk", "AttributeType": "S"},
            {"AttributeName": "sk", "AttributeType": "S"},
        ],
        BillingMode="PAY_PER_REQUEST",
    )
    await client.get_waiter("table_exists").wait(TableName=table)
    for start in range(0, len(items), 25):
        pending: dict[str, Any] = {table: [{"PutRequest": {"Item": i}} for i in items[start : start + 25]]}
        for attempt in range(10):
            resp = await client.batch_write_item(RequestItems=pending)
            pending = resp.get("UnprocessedItems") or {}
            if not pending:
                break
            await asyncio.sleep(0.01 * 2**attempt)


def _url_parts(url: str) -> tuple[str, str | None]:
    parts = urlsplit(url)
    return parts.netloc or "us-east-1", parse_qs(parts.query).get("endpoint_url", [None])[0]


class Aioboto3Driver(Driver):
    caps = frozenset({GET, GET_MANY, PUT, QUERY, CONCURRENT, UPDATE})

    def __init__(self, url: str, run_id: str) -> None:
        self.region, self.endpoint_url = _url_parts(url)
        self.table = f"tsbench_raw_{run_id}"
        self.trips = 0
        self._cm: Any = None
        self._client: Any = None
        self._created = False

    async def open(self, data: Dataset) -> None:
        self._cm, self._client = await _client(self.region, self.endpoint_url)
        self._created = True
        await _create_and_load(self._client, self.table, [to_attrs(i) for i in data.items])

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

    def updater(self) -> UpdateFn:
        update_item, table = self._client.update_item, self.table

        async def update(pk: str, sk: str, delta: int) -> BenchItem:
            self.trips += 1
            reply = await update_item(
                TableName=table, Key={"pk": {"S": pk}, "sk": {"S": sk}},
                UpdateExpression="SET amount_cents = amount_cents + :d",
                ExpressionAttributeValues={":d": {"N": str(delta)}}, ReturnValues="ALL_NEW",
            )
            return from_attrs(reply["Attributes"])

        return update

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


class Aioboto3JoinDriver(JoinFloor):
    """``raw:aioboto3-join-*`` on one long-lived client; tables created for the run and deleted afterwards."""

    def __init__(self, url: str, run_id: str, mode: str) -> None:
        super().__init__(mode)
        self.region, self.endpoint_url = _url_parts(url)
        self.customers = f"tsbench_raw_{run_id}_{self.tag}_customers"
        self.orders = f"tsbench_raw_{run_id}_{self.tag}_orders"
        self._cm: Any = None
        self._client: Any = None
        self._created: list[str] = []

    async def open(self, data: Dataset) -> None:
        self._cm, self._client = await _client(self.region, self.endpoint_url)
        self._created.append(self.customers)
        await _create_and_load(self._client, self.customers, [to_attrs(i) for i in data.items])
        self._created.append(self.orders)
        await _create_and_load(self._client, self.orders, [order_to_attrs(o) for o in data.orders])

    async def aclose(self) -> None:
        if self._client is not None:
            for table in self._created:
                with contextlib.suppress(Exception):
                    await self._client.delete_table(TableName=table)
            with contextlib.suppress(Exception):
                await self._cm.__aexit__(None, None, None)

    def orders_page(self) -> OrdersPage:
        query, table = self._client.query, self.orders

        async def page(pk: str, limit: int) -> list[BenchOrder]:
            self.trips += 1
            resp = await query(
                TableName=table,
                KeyConditionExpression="pk = :p",
                ExpressionAttributeValues={":p": {"S": pk}},
                Limit=limit,
            )
            return [order_from_attrs(a) for a in resp.get("Items", ())]

        return page

    def customer_getter(self) -> CustomerGet:
        get_item, table = self._client.get_item, self.customers

        async def get(pk: str, sk: str) -> BenchItem | None:
            self.trips += 1
            resp = await get_item(TableName=table, Key={"pk": {"S": pk}, "sk": {"S": sk}})
            attrs = resp.get("Item")
            return None if attrs is None else from_attrs(attrs)

        return get

    def customers_getter(self) -> CustomersGet:
        batch_get, table = self._client.batch_get_item, self.customers

        async def get_many(keys: Sequence[Key]) -> dict[Key, BenchItem]:
            found: dict[Key, BenchItem] = {}
            for start in range(0, len(keys), 100):  # BatchGetItem takes at most 100 keys
                chunk = keys[start : start + 100]
                request: dict[str, Any] = {table: {"Keys": [{"pk": {"S": pk}, "sk": {"S": sk}} for pk, sk in chunk]}}
                while request:
                    self.trips += 1
                    resp = await batch_get(RequestItems=request)
                    for attrs in resp.get("Responses", {}).get(table, ()):
                        item = from_attrs(attrs)
                        found[(item.pk, item.sk)] = item
                    request = resp.get("UnprocessedKeys") or {}
            return found

        return get_many
