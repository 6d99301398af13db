"""DynamoStore in-process: it is a Store, and it checks DynamoDB's limits before it sends anything (a recording
transport that must never be reached)."""

from __future__ import annotations

from typing import Any

import pytest

import tierstore
import tierstore.backends
from tierstore import Entity, PartitionKey, ValidationError
from tierstore.stores.base import Delete, Put
from tierstore.stores.dynamodb import DynamoStore, limits

from _models import Blob, Customer, Event, Order

ITEM = limits.MAX_ITEM_BYTES


def test_implements_the_store_protocol() -> None:
    from tierstore.stores.dax import DaxStore

    assert isinstance(DynamoStore(), tierstore.backends.Store)
    assert isinstance(DaxStore(), tierstore.backends.Store)


class Recorder:
    """A transport that records requests and must never be reached by these tests."""

    def __init__(self) -> None:
        self.calls: list[str] = []

    async def call(self, operation: str, params: dict[str, Any]) -> dict[str, Any]:
        self.calls.append(operation)
        return {}


class Big(Entity, table="ts_limits_big"):
    id: PartitionKey[str]
    payload: str = ""
    deep: dict[str, Any] = {}
    number: float = 0.0
    count: int = 0


# Names and values of Big("x") apart from the payload's value: id+"x", "payload", "deep"+{}, "number"+0.0,
# "count"+0 (an empty map is 3 bytes, a zero 1).
BIG_OVERHEAD = (2 + 1) + 7 + (4 + 3) + (6 + 1) + (5 + 1)


def test_big_overhead_is_what_the_checker_counts() -> None:
    from tierstore.stores.dynamodb.codec import codec_for

    codec = codec_for(tierstore.backends.schema_of(Big))
    assert limits.check_item(codec.encode(Big("x", payload="a" * 10))) == BIG_OVERHEAD + 10


def deep_dict(levels: int) -> dict[str, Any]:
    d: dict[str, Any] = {}
    for _ in range(levels - 1):
        d = {"a": d}
    return d


@pytest.fixture
def store() -> tuple[DynamoStore, Recorder]:
    rec = Recorder()
    return DynamoStore(transport=rec), rec


async def test_store_rejects_before_io(store: tuple[DynamoStore, Recorder]) -> None:
    s, rec = store
    big = tierstore.backends.schema_of(Big)
    bad_calls: list[Any] = [
        lambda: s.put(big, Big("x", payload="a" * (ITEM - BIG_OVERHEAD + 1))),
        lambda: s.put(big, Big("x", deep=deep_dict(32))),
        lambda: s.put(big, Big("x", number=1e126)),
        lambda: s.put(big, Big("x", count=10**38 + 1)),
        lambda: s.put(big, Big("k" * 2049)),
        lambda: s.get(big, ("k" * 2049,)),
        lambda: s.get_many(big, [("k" * 2049,)]),
        lambda: s.delete(big, ("k" * 2049,)),
        lambda: s.put(tierstore.backends.schema_of(Order), Order("c", "o" * 1025, 1)),
        lambda: s.put_many(big, [Big("a"), Big("a")]),
        lambda: s.delete_many(big, [("a",), ("a",)]),
        lambda: s.transact([Put(Big(str(i))) for i in range(101)]),
        lambda: s.transact([Put(Big("a")), Delete(Big, ("a",))]),
        lambda: s.transact([Put(Big("a")), Put(Big("a", count=2))]),
        lambda: s.put(tierstore.backends.schema_of(Event), Event("t" * 2040, "s" * 10, 1)),  # _pk is 2051 bytes
    ]
    for call in bad_calls:
        with pytest.raises(ValidationError):
            await call()
    assert rec.calls == []


async def test_store_accepts_the_limits_themselves(store: tuple[DynamoStore, Recorder]) -> None:
    s, rec = store
    big = tierstore.backends.schema_of(Big)
    await s.put_many(big, [Big("x", payload="a" * (ITEM - BIG_OVERHEAD))])
    await s.put_many(big, [Big("y", deep=deep_dict(31))])
    await s.put_many(big, [Big("z", count=10**38 - 1, number=9.99e125)])
    await s.put_many(big, [Big("k" * 2048)])
    await s.put_many(tierstore.backends.schema_of(Blob), [Blob(2**70, b"")])  # a single int key is an N: 38 digits
    await s.transact([Put(Big(str(i))) for i in range(100)])
    assert rec.calls == ["UpdateItem"] * 5 + ["TransactWriteItems"]  # puts keep foreign attributes: no BatchWrite


async def test_composite_partition_size_counts_the_encoding(store: tuple[DynamoStore, Recorder]) -> None:
    s, rec = store
    events = tierstore.backends.schema_of(Event)
    # "_pk" holds tenant + "#" + stream.
    await s.put_many(events, [Event("t" * 2000, "s" * 47, 1)])
    with pytest.raises(ValidationError):
        await s.put_many(events, [Event("t" * 2000, "s" * 48, 1)])
    assert rec.calls == ["UpdateItem"]


async def test_versioned_entity_keys_checked_too(store: tuple[DynamoStore, Recorder]) -> None:
    s, rec = store
    with pytest.raises(ValidationError):
        await s.put(tierstore.backends.schema_of(Customer), Customer("", "x"))
    assert rec.calls == []
