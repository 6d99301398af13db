"""Each DynamoDB limit at ±1, against DynamoDB Local: the checker's boundary is the server's boundary.

For every limit: the largest accepted request passes the checker *and* DynamoDB Local; one step further, the
checker raises ``ValidationError`` — and DynamoDB Local, sent the same request raw (the checks bypassed), rejects
it too. So tierstore rejects exactly what DynamoDB would, before any I/O.
"""

from __future__ import annotations

import contextlib
import dataclasses
import uuid
from collections.abc import AsyncIterator, Callable, Iterator
from typing import Any

import pytest

from tierstore import TierstoreError, ValidationError
from tierstore.stores.dynamodb import DynamoStore, DynamoStoreConfig, limits

from _servers import DYNAMODB_URL, require

pytestmark = pytest.mark.dynamodb

ITEM = limits.MAX_ITEM_BYTES


@pytest.fixture(scope="module")
def table() -> Iterator[str]:
    name = f"lim{uuid.uuid4().hex[:10]}"
    yield name
    import boto3

    endpoint = DynamoStoreConfig.from_url(DYNAMODB_URL).endpoint_url
    client = boto3.client("dynamodb", region_name="us-east-1", endpoint_url=endpoint, aws_access_key_id="local",
                          aws_secret_access_key="local")
    with contextlib.suppress(Exception):
        client.delete_table(TableName=name)


@pytest.fixture
async def store(table: str) -> AsyncIterator[DynamoStore]:
    require(DYNAMODB_URL, "dynamodb")
    s = DynamoStore(dataclasses.replace(DynamoStoreConfig.from_url(DYNAMODB_URL), fast_path=False))
    await s.open()
    with contextlib.suppress(TierstoreError):
        await s._call("CreateTable", {
            "TableName": table, "BillingMode": "PAY_PER_REQUEST",
            "KeySchema": [{"AttributeName": "pk", "KeyType": "HASH"}, {"AttributeName": "sk", "KeyType": "RANGE"}],
            "AttributeDefinitions": [{"AttributeName": "pk", "AttributeType": "S"},
                                     {"AttributeName": "sk", "AttributeType": "S"}],
        }, idempotent=False, control=True)
    try:
        yield s
    finally:
        await s.aclose()


async def raw(s: DynamoStore, op: str, params: dict[str, Any]) -> None:
    """Send without tierstore's checks (straight to the transport, errors mapped)."""
    await s._call(op, params, idempotent=False)


async def both_sides(
    s: DynamoStore, check: Callable[[Any], Any], send: Callable[[Any], Any], ok: Any, bad: Any
) -> None:
    check(ok)
    await send(ok)
    with pytest.raises(ValidationError):
        check(bad)
    with pytest.raises(ValidationError):  # the server agrees
        await send(bad)


def key(i: int = 0) -> dict[str, Any]:
    return {"pk": {"S": "p"}, "sk": {"S": f"{i}"}}  # 2+1 + 2+1 bytes


async def test_item_size(store: DynamoStore, table: str) -> None:
    async def put(item: dict[str, Any]) -> None:
        await raw(store, "PutItem", {"TableName": table, "Item": item})

    await both_sides(store, limits.check_item, put,
                     {**key(), "v": {"S": "a" * (ITEM - 7)}}, {**key(), "v": {"S": "a" * (ITEM - 6)}})
    # A list costs 3 bytes plus 1 per element; "1.5" is 3 bytes (two base-100 digits and an exponent).
    listed = ITEM - 6 - 1 - 3 - 1
    await both_sides(store, limits.check_item, put,
                     {**key(), "v": {"L": [{"S": "a" * listed}]}}, {**key(), "v": {"L": [{"S": "a" * (listed + 1)}]}})
    numbered = ITEM - 6 - 1 - (1 + 3)
    await both_sides(store, limits.check_item, put,
                     {**key(), "v": {"S": "a" * numbered}, "n": {"N": "1.5"}},
                     {**key(), "v": {"S": "a" * (numbered + 1)}, "n": {"N": "1.5"}})


@pytest.mark.parametrize(("attr", "limit"), [("pk", 2048), ("sk", 1024)])
async def test_key_sizes(store: DynamoStore, table: str, attr: str, limit: int) -> None:
    sort = attr == "sk"

    async def put(value: str) -> None:
        await raw(store, "PutItem", {"TableName": table, "Item": {**key(), attr: {"S": value}}})

    def check(value: str) -> None:
        limits.check_key_value({"S": value}, sort=sort)

    await both_sides(store, check, put, "k" * limit, "k" * (limit + 1))
    await both_sides(store, check, put, "é" * (limit // 2), "é" * (limit // 2) + "k")
    await both_sides(store, check, put, "k", "")


@pytest.mark.parametrize(
    ("ok", "bad"),
    [("1" * 38, "1" * 39), ("1" * 37 + ".1", "1" * 38 + ".1"), ("9.9999999999999999999999999999999999999E+125",
     "1E+126"), ("1E-130", "1E-131"), ("-1E-130", "-1E-131"), ("1", "NaN"), ("1", "Infinity")],
)
async def test_numbers(store: DynamoStore, table: str, ok: str, bad: str) -> None:
    async def put(text: str) -> None:
        await raw(store, "PutItem", {"TableName": table, "Item": {**key(), "n": {"N": text}}})

    await both_sides(store, lambda t: limits.check_item({"n": {"N": t}}), put, ok, bad)


def nest(levels: int, leaf: dict[str, Any]) -> dict[str, Any]:
    v = leaf
    for _ in range(levels):
        v = {"M": {"a": v}}
    return v


async def test_nesting(store: DynamoStore, table: str) -> None:
    async def put(value: dict[str, Any]) -> None:
        await raw(store, "PutItem", {"TableName": table, "Item": {**key(), "d": value}})

    await both_sides(store, lambda v: limits.check_item({"d": v}), put, nest(31, {"S": "x"}), nest(32, {"S": "x"}))
    await both_sides(store, lambda v: limits.check_item({"d": v}), put, nest(30, {"M": {}}), nest(31, {"M": {}}))


async def test_empty_sets(store: DynamoStore, table: str) -> None:
    async def put(value: dict[str, Any]) -> None:
        await raw(store, "PutItem", {"TableName": table, "Item": {**key(), "s": value}})

    for tag, one in (("SS", "a"), ("NS", "1"), ("BS", b"x")):
        await both_sides(store, lambda v: limits.check_item({"s": v}), put, {tag: [one]}, {tag: []})


async def test_batch_write_size_and_duplicates(store: DynamoStore, table: str) -> None:
    async def write(n: int | list[int]) -> None:
        ids = list(range(n)) if isinstance(n, int) else n
        await raw(store, "BatchWriteItem", {"RequestItems": {table: [{"PutRequest": {"Item": key(i)}} for i in ids]}})

    def check(n: int | list[int]) -> None:
        ids = list(range(n)) if isinstance(n, int) else n
        limits.check_batch_size(len(ids), limits.MAX_BATCH_WRITE, "BatchWriteItem")
        limits.check_distinct(ids, "BatchWriteItem")

    await both_sides(store, check, write, 25, 26)
    await both_sides(store, check, write, [1, 2, 3], [1, 2, 1])


async def test_batch_get_size_and_duplicates(store: DynamoStore, table: str) -> None:
    async def read(ids: list[int]) -> None:
        await raw(store, "BatchGetItem", {"RequestItems": {table: {"Keys": [key(i) for i in ids]}}})

    def check(ids: list[int]) -> None:
        limits.check_batch_size(len(ids), limits.MAX_BATCH_GET, "BatchGetItem")
        limits.check_distinct(ids, "BatchGetItem")

    await both_sides(store, check, read, list(range(100)), list(range(101)))
    await both_sides(store, check, read, [1, 2], [2, 2])


async def test_transaction_size_and_one_action_per_item(store: DynamoStore, table: str) -> None:
    async def commit(ids: list[int]) -> None:
        await raw(store, "TransactWriteItems", {"TransactItems": [
            {"Put": {"TableName": table, "Item": key(i)}} for i in ids
        ]})

    def check(ids: list[int]) -> None:
        limits.check_batch_size(len(ids), limits.MAX_TRANSACT_ITEMS, "a transaction")
        limits.check_distinct(ids, "a transaction")

    await both_sides(store, check, commit, list(range(100)), list(range(101)))
    await both_sides(store, check, commit, [5, 6], [5, 5])
