"""``Transaction`` on the in-process store and tier: checked before any I/O, all or nothing, and the caches
follow a commit exactly as they follow a repository's own writes."""

from __future__ import annotations

from typing import Any

import pytest

import tierstore
from tierstore import (
    ConditionFailed,
    Database,
    Entity,
    MemoryStore,
    PartitionKey,
    Transaction,
    TransactionCanceled,
    ValidationError,
)

from _models import Customer, Order


class Note(Entity, table="tx_notes"):
    id: PartitionKey[str]
    text: str


@pytest.fixture
async def db() -> Any:
    async with tierstore.connect(MemoryStore(), ["memory://"]) as database:
        yield database


def round_trips(db: Database) -> int:
    return int(db.stats()["store"]["round_trips"])


async def test_bad_actions_are_refused_when_added(db: Database) -> None:
    before = round_trips(db)
    tx = db.transaction()
    tx.put(Customer("c1", "Ann"))
    with pytest.raises(ValidationError, match="once"):
        tx.put(Customer("c1", "Ann again"))
    with pytest.raises(ValidationError, match="once"):
        tx.delete(Customer, "c1")
    with pytest.raises(ValidationError, match="no Version"):
        tx.put(Note("n1", "x"), expect_version=1)
    with pytest.raises(ValidationError, match="int >= 0"):
        tx.delete(Customer, "c2", expect_version=-1)
    with pytest.raises(ValidationError):
        tx.put(Order("c1", "o1", "ten"))  # type: ignore[arg-type]
    with pytest.raises(ValidationError):
        tx.delete(Order, "c1")  # the sort key is missing
    assert len(tx.ops) == 1
    assert round_trips(db) == before  # nothing was sent


async def test_an_empty_transaction_sends_nothing(db: Database) -> None:
    before = round_trips(db)
    async with db.transaction() as tx:
        pass
    assert tx.results == [] and await tx.commit() == [] and round_trips(db) == before


async def test_commit_applies_every_action_and_reports_each_result(db: Database) -> None:
    customers, orders = db.repository(Customer), db.repository(Order)
    await orders.put(Order("c1", "old", 1))
    async with db.transaction() as tx:
        tx.put(Customer("c1", "Ann"), if_not_exists=True)
        tx.put(Order("c1", "o1", 100))
        tx.delete(Order, "c1", "old")
    stored_customer, stored_order, deleted = tx.results
    assert stored_customer == Customer("c1", "Ann", version=1) and stored_order.version == 1 and deleted is None
    assert await customers.get("c1") == stored_customer
    assert [o.order_id for o in await orders.query("c1").all()] == ["o1"]


async def test_an_error_in_the_block_commits_nothing(db: Database) -> None:
    with pytest.raises(RuntimeError):
        async with db.transaction() as tx:
            tx.put(Customer("c1", "Ann"))
            raise RuntimeError("changed my mind")
    assert tx.results == []
    assert await db.repository(Customer).get("c1", consistent=True) is None


async def test_a_failed_condition_cancels_the_whole_transaction(db: Database) -> None:
    customers = db.repository(Customer)
    await customers.put(Customer("c1", "Ann"))
    with pytest.raises(TransactionCanceled) as info:
        async with db.transaction() as tx:
            tx.put(Customer("c2", "Bob"))
            tx.put(Customer("c1", "Ann B"), expect_version=7)
    assert isinstance(info.value, ConditionFailed)
    assert info.value.reasons[0] is None and info.value.reasons[1] is not None
    assert await customers.get("c2", consistent=True) is None
    assert (await customers.get("c1", consistent=True)).name == "Ann"  # type: ignore[union-attr]


async def test_the_caches_follow_a_commit(db: Database) -> None:
    customers = db.repository(Customer)
    await customers.put(Customer("c1", "Ann"))
    assert (await customers.get("c1")).name == "Ann"  # type: ignore[union-attr]  # now cached
    assert await customers.get("c2") is None  # a cached "not found"
    async with db.transaction() as tx:
        tx.put(Customer("c1", "Ann B"), expect_version=1)
        tx.put(Customer("c2", "Bob"))
    assert (await customers.get("c1")).name == "Ann B"  # type: ignore[union-attr]
    assert (await customers.get("c2")).name == "Bob"  # type: ignore[union-attr]
    async with db.transaction() as tx:
        tx.delete(Customer, "c1")
    assert await customers.get("c1") is None


async def test_a_transaction_needs_only_the_repositories_context() -> None:
    """Built directly on its context (what ``db.transaction()`` does): each entity's table is ensured once."""
    async with tierstore.connect(MemoryStore()) as db:
        ensured: list[str] = []
        original = db.ensure_schema

        async def ensure_schema(schema: Any) -> None:
            ensured.append(schema.table)
            await original(schema)

        db.ensure_schema = ensure_schema  # type: ignore[method-assign]
        tx = Transaction(db)
        tx.put(Customer("c1", "Ann"))
        tx.put(Order("c1", "o1", 1))
        tx.put(Order("c1", "o2", 2))
        await tx.commit()
        assert sorted(ensured) == ["ts_customers", "ts_orders"]
        assert len(await db.repository(Order).query("c1").all()) == 2
