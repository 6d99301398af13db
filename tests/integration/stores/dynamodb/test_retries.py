"""Retries: throttling, UnprocessedKeys/UnprocessedItems, lost replies, transaction tokens and contention.

DynamoDB Local never throttles and never returns unprocessed keys or items, so those replies are *stubbed at
the client boundary*: a wrapper around the store's real transport (still talking to DynamoDB Local) injects the
fault or forwards part of a batch and reports the rest as unprocessed. Every test checks that each item was
handled exactly once by the real server and that every backoff delay stayed within the capped full-jitter bound.
"""

from __future__ import annotations

import asyncio
import contextlib
import dataclasses
import uuid
from collections import Counter
from collections.abc import AsyncIterator, Callable
from typing import Any

import pytest

import tierstore
import tierstore.backends
from tierstore import (
    ConditionFailed,
    PartialBatchError,
    StoreError,
    Throttled,
    TierstoreError,
    TransactionCanceled,
)
from tierstore.retry import Backoff
from tierstore.stores.base import Delete, Put
from tierstore.stores.dynamodb import DynamoFault, DynamoStore, DynamoStoreConfig, Transport
from tierstore.stores.dynamodb.codec import key_identity

from _models import Blob, Customer, Order
from _servers import DYNAMODB_URL, require

pytestmark = pytest.mark.dynamodb

BACKOFF = Backoff(attempts=5, base=0.01, cap=0.05)


class Stub:
    """Wraps the real transport; ``hook(op, params, n)`` may raise a fault, return a reply, or None to forward."""

    def __init__(self, inner: Transport, hook: Callable[[str, dict[str, Any], int], Any]) -> None:
        self.inner = inner
        self.hook = hook
        self.calls: Counter[str] = Counter()
        self.log: list[tuple[str, dict[str, Any]]] = []

    async def call(self, operation: str, params: dict[str, Any]) -> dict[str, Any]:
        self.calls[operation] += 1
        self.log.append((operation, params))
        out = self.hook(operation, params, self.calls[operation])
        if hasattr(out, "__await__"):
            out = await out
        if out is not None:
            return out  # type: ignore[no-any-return]
        return await self.inner.call(operation, params)


@pytest.fixture
async def store() -> AsyncIterator[DynamoStore]:
    require(DYNAMODB_URL, "dynamodb")
    cfg = dataclasses.replace(DynamoStoreConfig.from_url(DYNAMODB_URL), table_prefix=f"r{uuid.uuid4().hex[:10]}_",
                              backoff=BACKOFF)
    s = DynamoStore(cfg)
    await s.open()
    s.delays = []  # type: ignore[attr-defined]
    s.delays_by_task = {}  # type: ignore[attr-defined]

    async def record(delay: float) -> None:  # no real sleeping: the delays are only recorded
        s.delays.append(delay)  # type: ignore[attr-defined]
        s.delays_by_task.setdefault(id(asyncio.current_task()), []).append(delay)  # type: ignore[attr-defined]

    s.sleep = record
    for e in (Customer, Order, Blob):
        await s.ensure_schema(tierstore.backends.schema_of(e))
    try:
        yield s
    finally:
        for t in list(s._tables.values()):
            with contextlib.suppress(TierstoreError):
                await s._call("DeleteTable", {"TableName": t.name}, idempotent=False, control=True)
        await s.aclose()


def stub(s: DynamoStore, hook: Callable[[str, dict[str, Any], int], Any]) -> Stub:
    assert s._data is not None
    wrapper = Stub(s._data, hook)
    s._data = wrapper
    return wrapper


def assert_backoff(delays: list[float]) -> None:
    """The n-th retry of a request waits uniform(0, min(cap, base * 2**n))."""
    assert delays, "expected at least one backoff"
    for n, d in enumerate(delays):
        assert 0 <= d <= BACKOFF.bound(n), (n, d)


def assert_backoff_per_task(s: DynamoStore, runs: list[int]) -> None:
    """Chunks retried concurrently, each in its own task: each task's delays follow the bounds."""
    by_task: dict[int, list[float]] = s.delays_by_task  # type: ignore[attr-defined]
    assert sorted(len(v) for v in by_task.values()) == sorted(runs)
    for delays in by_task.values():
        assert_backoff(delays)


# -- throttling --------------------------------------------------------------------------------------------


@pytest.mark.parametrize(
    "code", ["ProvisionedThroughputExceededException", "ThrottlingException", "RequestLimitExceeded"]
)
async def test_throttling_is_retried_with_backoff(store: DynamoStore, code: str) -> None:
    c = tierstore.backends.schema_of(Customer)
    await store.put(c, Customer("c1", "a"))

    def hook(op: str, params: dict[str, Any], n: int) -> None:
        if op == "GetItem" and n <= 3:
            raise DynamoFault(code, "slow down", status=400)

    s = stub(store, hook)
    got = await store.get(c, ("c1",))
    assert got is not None and got.name == "a"
    assert s.calls["GetItem"] == 4 and store.stats.retries == 3
    assert_backoff(store.delays)  # type: ignore[attr-defined]


async def test_throttling_that_does_not_end_raises_throttled(store: DynamoStore) -> None:
    c = tierstore.backends.schema_of(Customer)

    def hook(op: str, params: dict[str, Any], n: int) -> None:
        raise DynamoFault("ThrottlingException", "slow down", status=400)

    s = stub(store, hook)
    with pytest.raises(Throttled) as info:
        await store.put(c, Customer("c1", "a"))
    assert s.calls["UpdateItem"] == BACKOFF.attempts  # a throttled write was not applied: safe to resend
    assert info.value.entity == "Customer" and isinstance(info.value.__cause__, DynamoFault)
    assert len(store.delays) == BACKOFF.attempts - 1  # type: ignore[attr-defined]
    assert_backoff(store.delays)  # type: ignore[attr-defined]


async def test_unsent_requests_are_retried_but_lost_writes_are_not(store: DynamoStore) -> None:
    c = tierstore.backends.schema_of(Customer)

    def refused(op: str, params: dict[str, Any], n: int) -> None:
        if n == 1:
            raise DynamoFault("ConnectionError", "refused", sent=False)

    s = stub(store, refused)
    assert (await store.put(c, Customer("c1", "a"))).version == 1  # UpdateItem, retried: never arrived
    assert s.calls["UpdateItem"] == 2
    store._data = s.inner

    def lost(op: str, params: dict[str, Any], n: int) -> Any:
        if op == "UpdateItem":
            async def forward_then_lose() -> None:
                await s.inner.call(op, params)
                raise DynamoFault("ConnectionLost", "reset by peer")
            return forward_then_lose()
        if op == "GetItem" and n == 1:
            raise DynamoFault("ConnectionLost", "reset by peer")
        return None

    s = stub(store, lost)
    with pytest.raises(StoreError):  # it may have been applied: resending could bump the version twice
        await store.put(c, Customer("c1", "b"))
    assert s.calls["UpdateItem"] == 1
    got = await store.get(c, ("c1",))  # reads are idempotent: retried
    assert got is not None and got.version == 2 and s.calls["GetItem"] == 2


# -- partial batches ---------------------------------------------------------------------------------------


def split_batch_get(s_ref: list[Stub], rounds: int, forwarded: Counter[Any]) -> Callable[..., Any]:
    """For ``rounds`` rounds of each request, forward the first half of its keys and report the rest
    unprocessed. A request is followed through its retries by its last key (always in the unprocessed tail)."""
    seen: Counter[Any] = Counter()

    async def run(op: str, params: dict[str, Any], n: int) -> dict[str, Any]:
        ((table, request),) = params["RequestItems"].items()
        keys = request["Keys"]
        lineage = key_identity(keys[-1])
        seen[lineage] += 1
        cut = len(keys) if seen[lineage] > rounds else len(keys) // 2
        done: dict[str, Any] = {"Responses": {table: []}}
        if cut:
            done = await s_ref[0].inner.call(op, {"RequestItems": {table: {**request, "Keys": keys[:cut]}}})
        for k in keys[:cut]:
            forwarded[key_identity(k)] += 1
        if keys[cut:]:
            done["UnprocessedKeys"] = {table: {**request, "Keys": keys[cut:]}}
        return done

    def hook(op: str, params: dict[str, Any], n: int) -> Any:
        return run(op, params, n) if op == "BatchGetItem" else None

    return hook


async def test_unprocessed_keys_are_retried_each_key_read_once(store: DynamoStore) -> None:
    c = tierstore.backends.schema_of(Customer)
    await store.put_many(c, [Customer(f"c{i:03d}", f"n{i}") for i in range(130)])
    forwarded: Counter[Any] = Counter()
    ref: list[Stub] = []
    ref.append(stub(store, split_batch_get(ref, rounds=3, forwarded=forwarded)))
    keys = [(f"c{i:03d}",) for i in range(140)]
    got = await store.get_many(c, keys)
    assert [g.name if g else None for g in got] == [f"n{i}" for i in range(130)] + [None] * 10
    assert len(forwarded) == 140 and set(forwarded.values()) == {1}  # every key read exactly once
    assert ref[0].calls["BatchGetItem"] == 8  # two chunks (100 + 40), each 3 partial rounds + 1
    assert_backoff_per_task(store, [3, 3])


async def test_unprocessed_keys_that_never_finish_name_what_remains(store: DynamoStore) -> None:
    c = tierstore.backends.schema_of(Customer)
    await store.put_many(c, [Customer(f"c{i}", "x") for i in range(8)])
    forwarded: Counter[Any] = Counter()
    ref: list[Stub] = []
    ref.append(stub(store, split_batch_get(ref, rounds=99, forwarded=forwarded)))
    with pytest.raises(PartialBatchError) as info:
        await store.get_many(c, [(f"c{i}",) for i in range(8)])
    # Each round forwards half of what is left: 4, 2, 1, 0, 0; the attempts run out with one key left.
    assert sum(forwarded.values()) == 7 and set(forwarded.values()) == {1}
    read = {k for k in forwarded}
    remaining = info.value.remaining
    assert len(remaining) == 1 and remaining[0] in [(f"c{i}",) for i in range(8)]
    assert key_identity({"id": {"S": remaining[0][0]}}) not in read
    assert ref[0].calls["BatchGetItem"] == BACKOFF.attempts


def split_batch_write(s_ref: list[Stub], rounds: int, forwarded: Counter[Any]) -> Callable[..., Any]:
    """As split_batch_get, for BatchWriteItem and UnprocessedItems."""
    seen: Counter[Any] = Counter()

    def ident(r: dict[str, Any]) -> tuple[str, Any]:
        body = r.get("PutRequest", {}).get("Item") or r["DeleteRequest"]["Key"]
        return next(iter(r)), key_identity({"id": body["id"]})

    async def run(op: str, params: dict[str, Any], n: int) -> dict[str, Any]:
        ((table, requests),) = params["RequestItems"].items()
        lineage = ident(requests[-1])
        seen[lineage] += 1
        cut = len(requests) if seen[lineage] > rounds else len(requests) // 2
        done: dict[str, Any] = {}
        if cut:
            done = await s_ref[0].inner.call(op, {"RequestItems": {table: requests[:cut]}})
        for r in requests[:cut]:
            forwarded[ident(r)] += 1
        if requests[cut:]:
            done["UnprocessedItems"] = {table: requests[cut:]}
        return done

    def hook(op: str, params: dict[str, Any], n: int) -> Any:
        return run(op, params, n) if op == "BatchWriteItem" else None

    return hook


async def test_unprocessed_items_are_retried_each_write_once(store: DynamoStore) -> None:
    b = tierstore.backends.schema_of(Blob)  # restore_many and delete_many are BatchWriteItem (put_many is not)
    forwarded: Counter[Any] = Counter()
    ref: list[Stub] = []
    ref.append(stub(store, split_batch_write(ref, rounds=2, forwarded=forwarded)))
    await store.restore_many(b, [Blob(i, bytes([i])) for i in range(30)])
    assert len(forwarded) == 30 and set(forwarded.values()) == {1}
    assert ref[0].calls["BatchWriteItem"] == 6  # chunks of 25 and 5, each 2 partial rounds + 1
    assert_backoff_per_task(store, [2, 2])
    store._data = ref[0].inner
    assert [x.id for x in await store.get_many(b, [(i,) for i in range(30)])] == list(range(30))  # type: ignore[union-attr]
    ref[0] = stub(store, split_batch_write(ref, rounds=1, forwarded=forwarded))
    await store.delete_many(b, [(i,) for i in range(10)])
    assert sum(1 for (kind, _), n in forwarded.items() if kind == "DeleteRequest" and n == 1) == 10
    store._data = ref[0].inner
    assert sum(x is not None for x in await store.get_many(b, [(i,) for i in range(30)])) == 20


async def test_unprocessed_items_that_never_finish_name_the_items(store: DynamoStore) -> None:
    b = tierstore.backends.schema_of(Blob)
    forwarded: Counter[Any] = Counter()
    ref: list[Stub] = []
    ref.append(stub(store, split_batch_write(ref, rounds=99, forwarded=forwarded)))
    items = [Blob(i, b"x") for i in range(40)]
    with pytest.raises(PartialBatchError) as info:
        await store.restore_many(b, items)
    remaining = info.value.remaining
    # Chunk of 25: 12, 6, 3, 2, 1 written, 1 left; chunk of 15: 7, 4, 2, 1, 0 written, 1 left.
    assert len(remaining) == 2 and all(isinstance(r, Blob) for r in remaining)
    written = {ident for (_, ident), _ in forwarded.items()}
    assert all(key_identity({"id": {"N": str(r.id)}}) not in written for r in remaining)
    assert len(written) == 38 and set(forwarded.values()) == {1}


async def test_versioned_put_many_names_the_items_that_failed(store: DynamoStore) -> None:
    c = tierstore.backends.schema_of(Customer)

    def hook(op: str, params: dict[str, Any], n: int) -> None:
        if op == "UpdateItem" and params["Key"]["id"]["S"] in ("c3", "c7"):
            raise DynamoFault("ValidationException", "injected")

    stub(store, hook)
    with pytest.raises(PartialBatchError) as info:
        await store.put_many(c, [Customer(f"c{i}", "x") for i in range(10)])
    assert sorted(r.id for r in info.value.remaining) == ["c3", "c7"]
    got = await store.get_many(c, [(f"c{i}",) for i in range(10)])
    assert [g is not None for g in got] == [i not in (3, 7) for i in range(10)]


# -- transactions ------------------------------------------------------------------------------------------


async def test_a_commit_whose_reply_was_lost_applies_once(store: DynamoStore) -> None:
    c, o = tierstore.backends.schema_of(Customer), tierstore.backends.schema_of(Order)
    await store.put(c, Customer("c1", "a"))  # version 1
    tokens: list[str] = []

    def hook(op: str, params: dict[str, Any], n: int) -> Any:
        if op != "TransactWriteItems":
            return None
        tokens.append(params["ClientRequestToken"])
        if n == 1:
            async def apply_then_lose() -> None:
                await s.inner.call(op, params)  # DynamoDB applied it ...
                raise DynamoFault("ConnectionLost", "... but the reply never came")
            return apply_then_lose()
        return None

    s = stub(store, hook)
    results = await store.transact([Put(Customer("c1", "b")), Put(Order("c1", "o1", 5), if_not_exists=True)])
    # The retry carried the same token, so DynamoDB answered from the first commit: the pinned version (1 -> 2)
    # and if_not_exists would both have failed on a second application.
    assert len(tokens) == 2 and tokens[0] == tokens[1] and 1 <= len(tokens[0]) <= 36
    assert [r.version for r in results] == [2, 1]
    assert (await store.get(c, ("c1",), consistent=True)).version == 2  # type: ignore[union-attr]
    assert (await store.get(o, ("c1", "o1"), consistent=True)).version == 1  # type: ignore[union-attr]


async def test_pinned_versions_retry_with_a_fresh_token_when_another_writer_wins(store: DynamoStore) -> None:
    c = tierstore.backends.schema_of(Customer)
    await store.put(c, Customer("c1", "a"))  # version 1
    tokens: list[str] = []

    def hook(op: str, params: dict[str, Any], n: int) -> Any:
        if op != "TransactWriteItems":
            return None
        tokens.append(params["ClientRequestToken"])
        if n == 1:
            async def race() -> None:  # another writer commits between our version read and our commit
                store._data = s.inner
                await store.put(c, Customer("c1", "other"))  # version 2
                store._data = s
            return race()
        return None

    s = stub(store, hook)
    (result,) = await store.transact([Put(Customer("c1", "mine"))])
    assert result.version == 3 and len(tokens) == 2 and tokens[0] != tokens[1]
    got = await store.get(c, ("c1",), consistent=True)
    assert got is not None and got.name == "mine" and got.version == 3


async def test_cancellation_reasons_per_action(store: DynamoStore) -> None:
    c, o = tierstore.backends.schema_of(Customer), tierstore.backends.schema_of(Order)
    await store.put(c, Customer("c1", "a"))
    await store.put(o, Order("c1", "o1", 1))
    with pytest.raises(TransactionCanceled) as info:
        await store.transact([
            Put(Order("c1", "o2", 2)),
            Put(Customer("c1", "x"), expect_version=7),
            Put(Order("c1", "o1", 3), if_not_exists=True),
            Delete(Customer, ("c9",), expect_version=1),
        ])
    reasons = info.value.reasons
    assert reasons[0] is None and reasons[1] and reasons[2] and reasons[3]
    assert isinstance(info.value, ConditionFailed)
    assert await store.get(o, ("c1", "o2"), consistent=True) is None  # nothing was written


async def test_throttled_cancellations_are_retried(store: DynamoStore) -> None:
    def hook(op: str, params: dict[str, Any], n: int) -> None:
        if op == "TransactWriteItems" and n <= 2:
            raise DynamoFault("TransactionCanceledException", "throttled",
                              reasons=[{"Code": "ThrottlingError"}, {"Code": "None"}])

    s = stub(store, hook)
    results = await store.transact([Put(Customer("a", "1")), Put(Customer("b", "2"))])
    assert [r.version for r in results] == [1, 1] and s.calls["TransactWriteItems"] == 3
    assert_backoff(store.delays)  # type: ignore[attr-defined]


async def test_transaction_in_progress_is_retried_with_the_same_token(store: DynamoStore) -> None:
    tokens: list[str] = []

    def hook(op: str, params: dict[str, Any], n: int) -> None:
        if op == "TransactWriteItems":
            tokens.append(params["ClientRequestToken"])
            if n == 1:
                raise DynamoFault("TransactionInProgressException", "still applying", status=400)

    stub(store, hook)
    await store.transact([Put(Blob(1, b"x"))])
    assert len(tokens) == 2 and tokens[0] == tokens[1]
