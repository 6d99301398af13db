"""SqlStore writes on every backend: versions, conditions, batches and transactions (the operations of
``tierstore.stores.sql.operations`` run by each driver).
"""

from __future__ import annotations

import asyncio

import msgspec
import pytest

from tierstore import ConditionFailed, TransactionCanceled
from tierstore.query import Query
from tierstore.stores.base import Delete, Put
from tierstore.stores.sql import SqlStore

from _sql import B, Bin, D, Doc, F, Frozen, K, Kinds

# -- writes and versions ---------------------------------------------------------------------------


async def test_version_is_stored_plus_one(store: SqlStore) -> None:
    a = await store.put(K, Kinds("v", n=1))
    b = await store.put(K, msgspec.structs.replace(a, n=2, version=99))  # the given version is ignored
    assert (a.version, b.version) == (1, 2)
    got = await store.get(K, ("v",))
    assert got is not None and (got.n, got.version) == (2, 2)


async def test_expect_version(store: SqlStore) -> None:
    a = await store.put(K, Kinds("e", n=1))
    b = await store.put(K, msgspec.structs.replace(a, n=2), expect_version=1)
    assert b.version == 2
    with pytest.raises(ConditionFailed, match="expected version 1, found 2") as info:
        await store.put(K, msgspec.structs.replace(a, n=3), expect_version=1)
    assert info.value.key == ("e",) and info.value.backend == store.name
    # expect_version=0: there is no item (or one stored without a version), so the put creates it once.
    assert (await store.put(K, Kinds("new"), expect_version=0)).version == 1
    with pytest.raises(ConditionFailed, match="expected version 0"):
        await store.put(K, Kinds("new", n=5), expect_version=0)
    got = await store.get(K, ("e",))
    assert got is not None and (got.n, got.version) == (2, 2)
    new = await store.get(K, ("new",))
    assert new is not None and (new.n, new.version) == (0, 1)


async def test_if_not_exists(store: SqlStore) -> None:
    assert (await store.put(K, Kinds("i", n=1), if_not_exists=True)).version == 1
    with pytest.raises(ConditionFailed, match="exists"):
        await store.put(K, Kinds("i", n=2), if_not_exists=True)
    assert (await store.put(F, Frozen(id=1), if_not_exists=True)) == Frozen(id=1)
    with pytest.raises(ConditionFailed):
        await store.put(F, Frozen(id=1, payload=[9]), if_not_exists=True)
    got = await store.get(K, ("i",))
    assert got is not None and (got.n, got.version) == (1, 1)
    assert await store.get(F, (1,)) == Frozen(id=1)


async def test_concurrent_writers_are_atomic(store: SqlStore) -> None:
    await store.put(K, Kinds("c"))
    # Unconditional puts: every one increments; none is lost.
    stored = await asyncio.gather(*(store.put(K, Kinds("c", n=i)) for i in range(12)))
    assert sorted(s.version for s in stored) == list(range(2, 14))
    got = await store.get(K, ("c",))
    assert got is not None and got.version == 13
    # Optimistic locking: exactly one writer wins each version.
    results = await asyncio.gather(
        *(store.put(K, Kinds("c", n=100 + i), expect_version=13) for i in range(8)), return_exceptions=True
    )
    assert sum(not isinstance(r, BaseException) for r in results) == 1
    assert all(isinstance(r, ConditionFailed) for r in results if isinstance(r, BaseException))
    # if_not_exists: exactly one creator.
    results = await asyncio.gather(
        *(store.put(K, Kinds("new", n=i), if_not_exists=True) for i in range(8)), return_exceptions=True
    )
    assert sum(not isinstance(r, BaseException) for r in results) == 1


@pytest.mark.parametrize("returning", [True, False], ids=["returning", "follow-up-read"])
async def test_put_many_versions_across_chunks(store: SqlStore, returning: bool) -> None:
    # Only MySQL without RETURNING (MySQL 8, MariaDB < 10.5) reads versions back; elsewhere both ids run the
    # ordinary path.
    if not returning and store.name == "mysql":
        plan = await store._plan(D)  # white box: take MySQL 8's path on MariaDB
        assert plan.mysql_returning
        plan.mysql_returning = False
        plan._many.clear()
    first = await store.put_many(D, [Doc("f", f"n{i:04d}") for i in range(1700)])  # 4 statements
    assert [d.version for d in first] == [1] * 1700
    again = await store.put_many(D, [Doc("f", f"n{i:04d}", rank=1) for i in range(1600, 1800)])
    assert [d.version for d in again] == [2] * 100 + [1] * 100
    assert [d.name for d in again] == [f"n{i:04d}" for i in range(1600, 1800)]
    got = await store.get_many(D, [("f", "n1650"), ("f", "n1750"), ("f", "n0001")])
    assert [(g.rank, g.version) if g else None for g in got] == [(1, 2), (1, 1), (0, 1)]
    unversioned = await store.put_many(B, [Bin("t", 0, b"k", "x")])
    assert unversioned == [Bin("t", 0, b"k", "x")]


async def test_delete_and_delete_many(store: SqlStore) -> None:
    a = await store.put(K, Kinds("d"))
    with pytest.raises(ConditionFailed, match="expected version 5, found 1"):
        await store.delete(K, ("d",), expect_version=5)
    assert await store.get(K, ("d",)) is not None
    assert await store.delete(K, ("d",), expect_version=a.version) is True
    assert await store.delete(K, ("d",)) is False
    with pytest.raises(ConditionFailed, match="no item"):
        await store.delete(K, ("d",), expect_version=1)
    await store.put_many(B, [Bin("t", 2, bytes([i])) for i in range(200)])
    await store.delete_many(B, [("t", 2, bytes([i])) for i in range(0, 200, 2)] + [("t", 2, b"\xfe\xfe")])
    page = await store.query(B, Query(("t", 2)))
    assert [b.key[0] for b in page] == list(range(1, 200, 2))


# -- transactions ----------------------------------------------------------------------------------


async def test_transaction_commits_every_op(store: SqlStore) -> None:
    await store.put(D, Doc("f", "gone"))
    v = await store.put(K, Kinds("t1"))
    before = store.stats.round_trips
    out = await store.transact([
        Put(Kinds("t1", n=5), expect_version=v.version),
        Put(Doc("f", "new"), if_not_exists=True),
        Delete(Doc, ("f", "gone")),
        Put(Bin("t", 0, b"b")),
    ])
    assert [o.version if isinstance(o, Kinds | Doc) else o for o in out] == [2, 1, None, Bin("t", 0, b"b")]
    assert store.stats.round_trips - before == 6  # BEGIN, four statements, COMMIT
    assert await store.get(D, ("f", "gone")) is None
    assert (await store.get(D, ("f", "new"))) is not None
    got = await store.get(K, ("t1",))
    assert got is not None and (got.n, got.version) == (5, 2)


async def test_transaction_is_all_or_nothing_with_reasons(store: SqlStore) -> None:
    await store.put_many(D, [Doc("f", "keep"), Doc("f", "exists")])
    await store.put(K, Kinds("t2"))
    with pytest.raises(TransactionCanceled) as info:
        await store.transact([
            Put(Kinds("fresh")),
            Put(Kinds("t2", n=9), expect_version=7),
            Delete(Doc, ("f", "keep")),
            Put(Doc("f", "exists"), if_not_exists=True),
            Delete(Doc, ("f", "absent"), expect_version=1),
        ])
    reasons = info.value.reasons
    assert reasons[0] is None and reasons[2] is None
    assert reasons[1] is not None and "expected version 7, found 1" in reasons[1]
    assert reasons[3] is not None and "exists" in reasons[3]
    assert reasons[4] is not None and "no item" in reasons[4]
    assert await store.get(K, ("fresh",)) is None
    assert await store.get(D, ("f", "keep")) is not None
    got = await store.get(K, ("t2",))
    assert got is not None and (got.n, got.version) == (0, 1)
    assert await store.transact([]) == []
