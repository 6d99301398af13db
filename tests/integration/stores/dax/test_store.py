"""The DAX adapter, exercised without a DAX cluster: ``DaxStore`` is handed a real botocore (boto3) DynamoDB
client pointed at DynamoDB Local — amazon-dax-client mirrors that client for the data-plane operations — and must
pass the contract suite through it, calling it off the event loop.
"""

from __future__ import annotations

import asyncio
import contextlib
import inspect
import threading
import uuid
from collections.abc import AsyncIterator, Callable
from typing import Any

import pytest

import tierstore
import tierstore.backends
from tierstore import ConditionFailed, Database, StoreError, TierstoreError
from tierstore.stores.dax import DaxStore, DaxStoreConfig
from tierstore.stores.dynamodb import DynamoStoreConfig

from _models import ALL, Customer
from _servers import DYNAMODB_URL, require

pytestmark = pytest.mark.dynamodb


class RecordingClient:
    """A boto3 DynamoDB client that records which thread each call ran on."""

    def __init__(self, inner: Any) -> None:
        self._inner = inner
        self.threads: list[int] = []

    def __getattr__(self, name: str) -> Any:
        target = getattr(self._inner, name)
        if not callable(target):
            return target

        def call(*args: Any, **kwargs: Any) -> Any:
            self.threads.append(threading.get_ident())
            return target(*args, **kwargs)

        return call


def boto3_client() -> Any:
    require(DYNAMODB_URL, "dynamodb")
    import boto3

    endpoint = DynamoStoreConfig.from_url(DYNAMODB_URL).endpoint_url
    return boto3.client("dynamodb", region_name="us-east-1", endpoint_url=endpoint,
                        aws_access_key_id="local", aws_secret_access_key="local")


@pytest.fixture
async def dax() -> AsyncIterator[tuple[DaxStore, RecordingClient]]:
    client = RecordingClient(boto3_client())
    store = DaxStore(DaxStoreConfig(endpoint="dax://local", region="us-east-1",
                                    table_prefix=f"dx{uuid.uuid4().hex[:10]}_"), client=client)
    await store.open()
    try:
        yield store, client
    finally:
        for t in list(store._tables.values()):
            with contextlib.suppress(TierstoreError):
                await store._call("DeleteTable", {"TableName": t.name}, idempotent=False, control=True)
        await store.aclose()


# -- the contract suite through the adapter ----------------------------------------------------------------


def _contract_cases() -> list[Any]:
    import importlib.util
    import pathlib

    path = pathlib.Path(__file__).parents[2] / "test_contract.py"  # tests/integration/test_contract.py
    spec = importlib.util.spec_from_file_location("_repository_contract", path)
    assert spec is not None and spec.loader is not None
    test_contract = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(test_contract)

    functions = [
        (name, fn) for name, fn in sorted(vars(test_contract).items())
        if name.startswith("test_") and inspect.iscoroutinefunction(fn)
        and list(inspect.signature(fn).parameters) == ["db"]
    ]
    return [
        pytest.param(fn, tiers, id=f"{name}-{'memory' if tiers else 'none'}")
        for name, fn in functions
        for tiers in ((), ("memory://?max_items=1000",))
    ]


@pytest.mark.parametrize(("case", "tiers"), _contract_cases())
async def test_contract_through_the_dax_adapter(
    dax: tuple[DaxStore, RecordingClient], case: Callable[[Database], Any], tiers: tuple[str, ...]
) -> None:
    store, client = dax
    db = tierstore.connect(store, list(tiers))
    await db.open()
    try:
        for e in ALL:
            await db.create_tables(e)
            await store.truncate(tierstore.backends.schema_of(e))
        await case(db)
    finally:
        await db.aclose()
    main = threading.get_ident()
    assert client.threads and main not in client.threads  # every blocking call ran off the event loop


# -- adapter specifics -------------------------------------------------------------------------------------


async def test_gets_coalesce_into_one_batch_through_the_thread_pool(dax: tuple[DaxStore, RecordingClient]) -> None:
    store, _ = dax
    c = tierstore.backends.schema_of(Customer)
    await store.ensure_schema(c)
    await store.put_many(c, [Customer(f"c{i}", f"n{i}") for i in range(20)])
    before = store.stats.round_trips
    got = await asyncio.gather(*(store.get(c, (f"c{i}",)) for i in range(20)))
    assert [g.name for g in got] == [f"n{i}" for i in range(20)]  # type: ignore[union-attr]
    assert store.stats.round_trips - before == 1


async def test_errors_from_the_blocking_client_are_translated(dax: tuple[DaxStore, RecordingClient]) -> None:
    store, _ = dax
    c = tierstore.backends.schema_of(Customer)
    await store.ensure_schema(c)
    await store.put(c, Customer("c1", "a"))
    with pytest.raises(ConditionFailed):
        await store.put(c, Customer("c1", "b"), expect_version=5)
    with pytest.raises(StoreError, match="table not found"):
        await store.get(tierstore.backends.schema_of(ALL[1]), ("x", "y"))
