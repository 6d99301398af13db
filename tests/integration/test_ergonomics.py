"""Mistakes a new user makes, and what tierstore answers: a query without its partition key, ``between`` with
its ends swapped, a query result used without ``await``, a rejected transaction, and the stored item of a
transactional put. Each answer is a tierstore error that says what to do, on every store."""

from __future__ import annotations

import os
import uuid
from collections.abc import AsyncIterator

import pytest

import tierstore
from tierstore import (
    Entity,
    NotAwaited,
    PartitionKey,
    SortCondition,
    SortKey,
    TierstoreError,
    TransactionCanceled,
    ValidationError,
    Version,
    between,
)

from _servers import STORES, open_db

S = uuid.uuid4().hex[:8]


class Line(Entity, table=f"ergo_{S}_lines"):
    order: PartitionKey[str]
    n: SortKey[str]
    qty: int = 0
    version: Version = 0


class Seat(Entity, table=f"ergo_{S}_seats", partition_key=("venue", "row"), sort_key="seat"):
    venue: str
    row: int
    seat: str
    taken: bool = False


STORE_PARAMS = [
    pytest.param(s, id=s, marks=[getattr(pytest.mark, STORES[s][1])] if STORES[s][1] else [])
    for s in STORES
]


@pytest.fixture(params=STORE_PARAMS)
async def db(request: pytest.FixtureRequest, tmp_path: os.PathLike[str]) -> AsyncIterator[tierstore.Database]:
    d = await open_db(request.param, (), tmp_path, entities=(Line, Seat))
    try:
        yield d
    finally:
        await d.aclose()


async def test_a_query_without_its_partition_key_says_what_to_pass(db: tierstore.Database) -> None:
    lines, seats = db.repository(Line), db.repository(Seat)
    with pytest.raises(ValidationError) as info:
        lines.query()
    assert "'order'" in str(info.value) and "query(<order>)" in str(info.value)
    with pytest.raises(ValidationError) as info:
        seats.query("hall")  # a composite partition key takes a tuple
    assert "'venue', 'row'" in str(info.value) and "query((<venue>, <row>))" in str(info.value)
    assert (await seats.query(("hall", 1))).items == []


async def test_between_with_its_ends_swapped_is_a_validation_error(db: tierstore.Database) -> None:
    lines = db.repository(Line)
    await lines.put(Line("o1", "b"))
    with pytest.raises(ValidationError, match="low <= high"):
        between("z", "a")
    with pytest.raises(ValidationError, match="one kind"):
        between(1, "a")
    with pytest.raises(ValidationError, match="low <= high"):  # built by hand, checked by the query too
        lines.query("o1", sort=SortCondition("between", ("z", "a")))
    assert [x.n for x in await lines.query("o1", sort=between("a", "z"))] == ["b"]


async def test_a_query_used_without_await_says_await_it(db: tierstore.Database) -> None:
    lines = db.repository(Line)
    await lines.put(Line("o1", "a"))
    result = lines.query("o1")
    for misuse in (list, len, bool):
        with pytest.raises(NotAwaited) as info:
            misuse(result)  # type: ignore[operator]
        assert isinstance(info.value, TypeError) and isinstance(info.value, TierstoreError)
        assert "await" in str(info.value)
    async with db.session() as session:
        with pytest.raises(NotAwaited):
            list(session.repository(Line).query("o1"))  # type: ignore[call-overload]
    page = await result  # the same result, awaited, works
    assert [x.n for x in page] == ["a"] and len(page) == 1


async def test_transaction_canceled_names_the_failed_action_and_why(db: tierstore.Database) -> None:
    lines = db.repository(Line)
    stored = await lines.put(Line("o1", "a", qty=1))
    with pytest.raises(TransactionCanceled) as info:
        async with db.transaction() as tx:
            tx.put(Line("o1", "new"))
            tx.put(Line("o1", "a", qty=2), expect_version=stored.version + 5)
    text = str(info.value)
    assert "action 2 of 2" in text and "put Line" in text and "('o1', 'a')" in text, text
    assert "action 1 of" not in text  # only the actions that failed are named
    assert info.value.reasons[0] is None and info.value.reasons[1] is not None
    assert info.value.reasons[1] in text
    assert await lines.get("o1", "new") is None


async def test_tx_put_returns_a_handle_to_the_stored_item(db: tierstore.Database) -> None:
    lines = db.repository(Line)
    async with db.transaction() as tx:
        pending = tx.put(Line("o2", "a", qty=3))
        assert not pending.done
        with pytest.raises(ValidationError, match="not committed yet"):
            pending.result()
    item = pending.result()
    assert pending.done and (item.order, item.qty, item.version) == ("o2", 3, 1)
    assert await lines.get("o2", "a") == item
    with pytest.raises(TransactionCanceled):
        async with db.transaction() as tx:
            failed = tx.put(Line("o2", "b"))
            tx.put(Line("o2", "a"), if_not_exists=True)
    with pytest.raises(ValidationError, match="did not commit"):
        failed.result()
