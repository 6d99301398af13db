"""The ``Store`` contract: what every store of record does, as pytest tests a backend runs on itself.

Subclass :class:`StoreContract` and give it a ``store`` fixture: an opened store, closed again afterwards.
Each test creates the tables it needs (``ensure_schema``), empties them (``truncate``) and calls the store
directly, the way a repository does: keys are flat tuples already validated, reads that must see the
test's own writes pass ``consistent=True``, queries on an index partitioned unlike the table pass
``consistent=False`` (DynamoDB refuses strongly consistent reads there).

Optional fixtures widen the suite: ``dead_store`` (the store configured for a server that does not answer,
not opened) checks that an unreachable server surfaces as ``StoreError`` only. The ``Scannable``,
``ScatterGather`` and ``QueryMany`` checks run when the store implements those protocols (``GetsByKey`` within
the ``get_many`` check); transactions may be refused with ``Unsupported``, and an index partitioned unlike the
table may be too (a sharded store cannot query one shard for it).

The whole contract is one class in one file, so a backend author reads it in one place: that is why this
module is one piece.
"""

from __future__ import annotations

import asyncio
import contextlib
import dataclasses
from collections.abc import Awaitable, Callable, Sequence
from typing import Any, TypeVar

import msgspec
import pytest
import pytest_asyncio

from tierstore.errors import (
    ConditionFailed,
    NotFound,
    StoreError,
    TierstoreError,
    TransactionCanceled,
    Unsupported,
    ValidationError,
)
from tierstore.expressions import attr
from tierstore.expressions.update import check_changes
from tierstore.model import Schema, schema_of
from tierstore.query import Page, Query, SortCondition, begins_with, between, eq, ge, gt, le, lt
from tierstore.stats import StoreStats
from tierstore.stores.base import Check, Delete, GetsByKey, Put, QueryMany, Scannable, ScatterGather, Store, Update
from tierstore.testing.contract._support import ContractBase, optional_fixture
from tierstore.testing.contract.entities import STORE_ENTITIES, Blob, Doc, Event, Ticket

__all__ = ["StoreContract"]

T = TypeVar("T")
D = schema_of(Doc)
E = schema_of(Event)
B = schema_of(Blob)
TK = schema_of(Ticket)
NAMES = [f"n{i:02d}" for i in range(20)]
SEQS = [-20, -3, 0, 2, 9, 10, 200]


def _q(partition: tuple[Any, ...], **kw: Any) -> Query:
    """A query on the table or an index partitioned like it: strongly consistent."""
    return Query(partition, consistent=True, **kw)


async def _pages(store: Store, schema: Schema[T], query: Query, *, at_most: int = 100) -> tuple[list[T], list[int]]:
    """Every item of ``query``, following cursors to the end, and the size of each page."""
    items: list[T] = []
    sizes: list[int] = []
    while True:
        page = await store.query(schema, query)
        assert isinstance(page, Page)
        items += page.items
        sizes.append(len(page.items))
        if page.cursor is None:
            return items, sizes
        assert len(sizes) < at_most, "the cursor never ran out"
        query = dataclasses.replace(query, cursor=page.cursor)


def _keys(schema: Schema[Any], items: Sequence[Any]) -> list[tuple[Any, ...]]:
    return [schema.key_of(i) for i in items]


async def _owned_docs(store: Store) -> list[Doc]:
    """Docs in three folders, owned by ann or bob, with names that repeat across folders (index ties)."""
    docs = [Doc(f"f{p}", f"n{i}", owner="ann" if (p + i) % 2 else "bob", rank=i) for p in range(3) for i in range(6)]
    return [d for d in await store.put_many(D, docs) if d.owner == "ann"]


class StoreContract(ContractBase):
    """The store contract. Supply a ``store`` fixture (and optionally ``dead_store``); see the module doc."""

    @pytest_asyncio.fixture
    async def empty_store(self, store: Store) -> Store:
        for entity in STORE_ENTITIES:
            schema = schema_of(entity)
            await store.ensure_schema(schema)
            await store.truncate(schema)
        return store

    @pytest.fixture
    def _dead_store(self, request: pytest.FixtureRequest) -> Store:
        store: Store = optional_fixture(request, "dead_store", "the store's behaviour when its server is down")
        return store

    # -- the protocol ------------------------------------------------------------------------------------

    async def test_is_a_store(self, empty_store: Store) -> None:
        assert isinstance(empty_store, Store)
        assert isinstance(empty_store.name, str) and empty_store.name
        assert isinstance(empty_store.stats, StoreStats)

    async def test_ensure_schema_is_idempotent(self, empty_store: Store) -> None:
        stored = await empty_store.put(D, Doc("f", "a"))
        await empty_store.ensure_schema(D)
        assert await empty_store.get(D, ("f", "a"), consistent=True) == stored

    # -- reads and writes ----------------------------------------------------------------------------------

    async def test_get_of_a_missing_key_is_none(self, empty_store: Store) -> None:
        assert await empty_store.get(D, ("f", "absent"), consistent=True) is None
        assert await empty_store.get(E, ("t", 1, 1), consistent=True) is None
        assert await empty_store.get(B, (1,), consistent=True) is None

    async def test_put_returns_the_item_as_stored_with_the_next_version(self, empty_store: Store) -> None:
        s = empty_store
        doc = Doc("f", "a", owner="o", rank=3, body=b"\x00\xff", tags=["x", "y"])
        first = await s.put(D, doc)
        assert first == msgspec.structs.replace(doc, version=1)
        assert await s.get(D, ("f", "a"), consistent=True) == first
        second = await s.put(D, msgspec.structs.replace(doc, rank=4, version=41))  # the version given is ignored
        assert (second.rank, second.version) == (4, 2)
        assert await s.get(D, ("f", "a"), consistent=True) == second
        event = Event("t", -1, 5, {"n": 1})
        assert await s.put(E, event) == event  # no version field: stored as given
        assert await s.get(E, ("t", -1, 5), consistent=True) == event
        assert await s.put(B, Blob(7, b"\x00\x01")) == Blob(7, b"\x00\x01")
        assert await s.put(B, Blob(7, b"new")) == Blob(7, b"new")
        assert await s.get(B, (7,), consistent=True) == Blob(7, b"new")

    async def test_get_many_answers_in_request_order(self, empty_store: Store) -> None:
        s = empty_store
        stored = await s.put_many(D, [Doc(f"f{i % 3}", f"n{i}", rank=i) for i in range(9)])
        keys = [("f2", "n8"), ("f0", "n0"), ("f9", "absent"), ("f1", "n4"), ("f0", "absent"), ("f0", "n3")]
        got = await s.get_many(D, keys, consistent=True)
        assert got == [stored[8], stored[0], None, stored[4], None, stored[3]]
        assert await s.get_many(D, [], consistent=True) == []
        assert await s.get_many(B, [(1,), (2,)], consistent=True) == [None, None]
        if isinstance(s, GetsByKey):  # the same read, by key: the items found, absent keys left out
            assert await s.get_by_key(D, keys) == {k: i for k, i in zip(keys, got, strict=True) if i is not None}

    async def test_get_many_of_a_large_batch(self, empty_store: Store) -> None:
        # More keys than one request of some stores carries (DynamoDB's BatchGetItem: 100).
        items = [Blob(i, bytes([i % 256]) * 3) for i in range(150)]
        await empty_store.put_many(B, items)
        wanted = list(reversed(range(160)))
        got = await empty_store.get_many(B, [(i,) for i in wanted], consistent=True)
        assert got == [items[i] if i < 150 else None for i in wanted]

    async def test_if_not_exists(self, empty_store: Store) -> None:
        s = empty_store
        first = await s.put(D, Doc("f", "a", rank=1), if_not_exists=True)
        assert first.version == 1
        with pytest.raises(ConditionFailed):
            await s.put(D, Doc("f", "a", rank=2), if_not_exists=True)
        assert await s.get(D, ("f", "a"), consistent=True) == first
        assert await s.put(B, Blob(1, b"a"), if_not_exists=True) == Blob(1, b"a")
        with pytest.raises(ConditionFailed):
            await s.put(B, Blob(1, b"b"), if_not_exists=True)
        assert await s.get(B, (1,), consistent=True) == Blob(1, b"a")

    async def test_expect_version(self, empty_store: Store) -> None:
        s = empty_store
        await s.put(D, Doc("f", "a", rank=1))
        second = await s.put(D, Doc("f", "a", rank=2), expect_version=1)
        assert second.version == 2
        with pytest.raises(ConditionFailed):
            await s.put(D, Doc("f", "a", rank=3), expect_version=1)  # a stale writer
        for key, expected in (("a", 0), ("absent", 1)):  # 0 means: no item there
            with pytest.raises(ConditionFailed):
                await s.put(D, Doc("f", key, rank=3), expect_version=expected)
        assert await s.get(D, ("f", "a"), consistent=True) == second
        assert await s.get(D, ("f", "absent"), consistent=True) is None
        new = await s.put(D, Doc("f", "new"), expect_version=0)  # an absent item counts as version 0
        assert new.version == 1 and await s.get(D, ("f", "new"), consistent=True) == new

    async def test_delete_says_whether_the_item_existed(self, empty_store: Store) -> None:
        s = empty_store
        await s.put(D, Doc("f", "a"))
        assert await s.delete(D, ("f", "a")) is True
        assert await s.get(D, ("f", "a"), consistent=True) is None
        assert await s.delete(D, ("f", "a")) is False
        assert await s.delete(B, (404,)) is False

    async def test_delete_with_expect_version(self, empty_store: Store) -> None:
        s = empty_store
        await s.put(D, Doc("f", "a"))
        second = await s.put(D, Doc("f", "a", rank=1))
        with pytest.raises(ConditionFailed):
            await s.delete(D, ("f", "a"), expect_version=1)
        assert await s.get(D, ("f", "a"), consistent=True) == second
        assert await s.delete(D, ("f", "a"), expect_version=2) is True
        with pytest.raises(ConditionFailed):
            await s.delete(D, ("f", "a"), expect_version=2)  # no item any more

    async def test_put_many_returns_the_items_as_stored_in_order(self, empty_store: Store) -> None:
        s = empty_store
        await s.put(D, Doc("f1", "b"))
        stored = await s.put_many(D, [Doc("f2", "a"), Doc("f1", "b", rank=5), Doc("f1", "a")])
        assert [(d.folder, d.name, d.rank, d.version) for d in stored] == [
            ("f2", "a", 0, 1), ("f1", "b", 5, 2), ("f1", "a", 0, 1)
        ]
        assert await s.get_many(D, [("f2", "a"), ("f1", "b"), ("f1", "a")], consistent=True) == stored
        events = [Event("t", 1, i, {"i": i}) for i in range(3)]
        assert await s.put_many(E, events) == events
        assert await s.put_many(E, []) == []

    async def test_delete_many(self, empty_store: Store) -> None:
        s = empty_store
        await s.put_many(E, [Event("t", 1, i) for i in range(6)])
        await s.delete_many(E, [("t", 1, 0), ("t", 1, 2), ("t", 1, 4), ("t", 1, 99)])
        got = await s.get_many(E, [("t", 1, i) for i in range(6)], consistent=True)
        assert [g is not None for g in got] == [False, True, False, True, False, True]
        await s.delete_many(E, [])

    async def test_truncate_empties_one_table(self, empty_store: Store) -> None:
        s = empty_store
        await s.put_many(D, [Doc("f", n) for n in NAMES])
        await s.put(E, Event("t", 1, 1))
        await s.truncate(D)
        assert (await s.query(D, _q(("f",)))).items == []
        assert await s.get(D, ("f", "n00"), consistent=True) is None
        assert await s.get(E, ("t", 1, 1), consistent=True) == Event("t", 1, 1)
        assert (await s.put(D, Doc("f", "n00"))).version == 1  # the table stays, and versions start over

    # -- queries -----------------------------------------------------------------------------------------

    async def test_query_reads_one_partition_in_sort_order(self, empty_store: Store) -> None:
        s = empty_store
        shuffled = NAMES[7:] + NAMES[:7]
        await s.put_many(D, [Doc("f", n) for n in shuffled] + [Doc("g", "n01"), Doc("e", "n05")])
        page = await s.query(D, _q(("f",)))
        assert isinstance(page, Page)
        assert [d.name for d in page.items] == NAMES and page.cursor is None
        await s.put_many(E, [Event("t", 1, q) for q in reversed(SEQS)] + [Event("t", 2, 1), Event("u", 1, 1)])
        assert [e.seq for e in (await s.query(E, _q(("t", 1)))).items] == SEQS  # numeric order
        empty = await s.query(E, _q(("nobody", 1)))
        assert empty.items == [] and empty.cursor is None

    @pytest.mark.parametrize(
        ("condition", "expected"),
        [
            (eq("n05"), ["n05"]),
            (eq("zz"), []),
            (lt("n03"), ["n00", "n01", "n02"]),
            (le("n02"), ["n00", "n01", "n02"]),
            (gt("n17"), ["n18", "n19"]),
            (ge("n18"), ["n18", "n19"]),
            (between("n04", "n06"), ["n04", "n05", "n06"]),
            (begins_with("n1"), NAMES[10:]),
        ],
        ids=["eq", "eq-none", "lt", "le", "gt", "ge", "between", "begins_with"],
    )
    async def test_query_string_sort_conditions(
        self, empty_store: Store, condition: SortCondition, expected: list[str]
    ) -> None:
        await empty_store.put_many(D, [Doc("f", n) for n in NAMES] + [Doc("g", "n05"), Doc("g", "n10")])
        assert [d.name for d in (await empty_store.query(D, _q(("f",), sort=condition))).items] == expected

    @pytest.mark.parametrize(
        ("condition", "expected"),
        [
            (eq(0), [0]),
            (lt(0), [-20, -3]),
            (le(-3), [-20, -3]),
            (gt(9), [10, 200]),
            (ge(10), [10, 200]),
            (between(-3, 10), [-3, 0, 2, 9, 10]),
        ],
        ids=["eq", "lt", "le", "gt", "ge", "between"],
    )
    async def test_query_integer_sort_conditions(
        self, empty_store: Store, condition: SortCondition, expected: list[int]
    ) -> None:
        await empty_store.put_many(E, [Event("t", 1, q) for q in SEQS] + [Event("t", 2, 0)])
        assert [e.seq for e in (await empty_store.query(E, _q(("t", 1), sort=condition))).items] == expected

    async def test_begins_with_matches_literally(self, empty_store: Store) -> None:
        await empty_store.put_many(D, [Doc("f", n) for n in ("a%b", "a_c", "axb", "a\\d", "a*e", "a.f")])
        for prefix, expected in [("a%", ["a%b"]), ("a_", ["a_c"]), ("a\\", ["a\\d"]), ("a*", ["a*e"]),
                                 ("a.", ["a.f"])]:
            got = (await empty_store.query(D, _q(("f",), sort=begins_with(prefix)))).items
            assert [d.name for d in got] == expected, prefix

    async def test_query_pages_to_the_end_with_limit_and_cursor(self, empty_store: Store) -> None:
        s = empty_store
        names = [f"n{i:02d}" for i in range(25)]
        await s.put_many(D, [Doc("f", n) for n in names] + [Doc("g", "n00")])
        first = await s.query(D, _q(("f",), limit=7))
        assert [d.name for d in first.items] == names[:7] and first.cursor is not None
        items, sizes = await _pages(s, D, _q(("f",), limit=7))
        assert [d.name for d in items] == names and max(sizes) <= 7
        ranged, sizes = await _pages(s, D, _q(("f",), sort=between("n03", "n20"), limit=5))
        assert [d.name for d in ranged] == names[3:21] and max(sizes) <= 5

    async def test_query_in_reverse(self, empty_store: Store) -> None:
        s = empty_store
        await s.put_many(D, [Doc("f", n) for n in NAMES] + [Doc("g", "n00")])
        page = await s.query(D, _q(("f",), reverse=True, limit=3))
        assert [d.name for d in page.items] == ["n19", "n18", "n17"]
        after = await s.query(D, _q(("f",), reverse=True, limit=3, cursor=page.cursor))
        assert [d.name for d in after.items] == ["n16", "n15", "n14"]
        items, _ = await _pages(s, D, _q(("f",), reverse=True, limit=4, sort=lt("n10")))
        assert [d.name for d in items] == NAMES[:10][::-1]

    async def test_a_foreign_or_damaged_cursor_is_a_validation_error(self, empty_store: Store) -> None:
        s = empty_store
        await s.put_many(D, [Doc(f, f"n{i}") for f in ("f", "g") for i in range(5)])
        page = await s.query(D, _q(("f",), limit=2))
        assert page.cursor is not None
        with pytest.raises(ValidationError):
            await s.query(D, _q(("g",), limit=2, cursor=page.cursor))
        with pytest.raises(ValidationError):
            await s.query(D, _q(("f",), limit=2, cursor="not a cursor!"))

    async def test_query_on_an_index_partitioned_like_the_table(self, empty_store: Store) -> None:
        s = empty_store
        ranks = {"a": 5, "b": 1, "c": 9, "d": 3, "e": 7}
        await s.put_many(D, [Doc("f", n, rank=r) for n, r in ranks.items()] + [Doc("g", "z", rank=4)])
        by_rank = await s.query(D, _q(("f",), index="by_rank"))
        assert [d.name for d in by_rank.items] == ["b", "d", "a", "e", "c"]
        assert [d.name for d in (await s.query(D, _q(("f",), index="by_rank", sort=ge(5)))).items] == ["a", "e", "c"]
        page = await s.query(D, _q(("f",), index="by_rank", reverse=True, limit=2))
        assert [d.name for d in page.items] == ["c", "e"]
        after = await s.query(D, _q(("f",), index="by_rank", reverse=True, limit=2, cursor=page.cursor))
        assert [d.name for d in after.items] == ["a", "d"]
        items, _ = await _pages(s, D, _q(("f",), index="by_rank", limit=2))
        assert [d.name for d in items] == ["b", "d", "a", "e", "c"]

    async def test_query_on_an_index_partitioned_unlike_the_table(self, empty_store: Store) -> None:
        s = empty_store
        ann = await _owned_docs(s)
        query = Query(("ann",), index="by_owner")
        try:
            got = (await s.query(D, query)).items
        except Unsupported as exc:
            pytest.skip(f"{s.name} does not query an index partitioned unlike the table: {exc}")
        # Names repeat across folders: ties on the index's sort key come in any order, but every item once.
        assert sorted(_keys(D, got)) == sorted(_keys(D, ann))
        assert [d.name for d in got] == sorted(d.name for d in ann)
        paged, sizes = await _pages(s, D, Query(("ann",), index="by_owner", limit=2))
        assert sorted(_keys(D, paged)) == sorted(_keys(D, ann)) and max(sizes) <= 2
        assert [d.name for d in paged] == sorted(d.name for d in ann)
        back, _ = await _pages(s, D, Query(("ann",), index="by_owner", limit=2, reverse=True))
        assert sorted(_keys(D, back)) == sorted(_keys(D, ann))
        assert [d.name for d in back] == sorted((d.name for d in ann), reverse=True)
        late, _ = await _pages(s, D, Query(("ann",), index="by_owner", sort=ge("n3"), limit=2))
        assert sorted(_keys(D, late)) == sorted(_keys(D, [d for d in ann if d.name >= "n3"]))

    # -- sparse indexes: an item whose index value is None is not in the index ---------------------------

    async def test_sparse_index_partitioned_like_the_table(self, empty_store: Store) -> None:
        s = await _fresh(empty_store, TK)
        dues = {"a": 5, "b": None, "c": 1, "d": None, "e": 9, "f": 3}
        await s.put_many(TK, [Ticket("q", i, due=d) for i, d in dues.items()] + [Ticket("r", "z", due=4)])
        assert (await s.get(TK, ("q", "b"), consistent=True)) == Ticket("q", "b", due=None, version=1)
        dated = ["c", "f", "a", "e"]
        items, sizes = await _pages(s, TK, _q(("q",), index="by_due", limit=2))
        assert [t.id for t in items] == dated and max(sizes) <= 2
        back, _ = await _pages(s, TK, _q(("q",), index="by_due", reverse=True, limit=3))
        assert [t.id for t in back] == dated[::-1]
        assert [t.id for t in (await s.query(TK, _q(("q",), index="by_due", sort=le(5)))).items] == ["c", "f", "a"]
        await s.put(TK, Ticket("q", "a", due=None, version=1))  # the value cleared: the item leaves the index
        await s.put(TK, Ticket("q", "b", due=2, version=1))  # a value set: the item joins it
        assert [t.id for t in (await s.query(TK, _q(("q",), index="by_due"))).items] == ["c", "b", "f", "e"]
        if isinstance(s, QueryMany):
            many = await s.query_many(TK, [("q",), ("r",)], index="by_due")
            assert [[t.id for t in group] for group in many] == [["c", "b", "f", "e"], ["z"]]
        assert (await s.get(TK, ("q", "a"), consistent=True)).due is None  # type: ignore[union-attr]
        if getattr(s, "expressions", False):
            u: Any = s
            await u.update(TK, ("q", "c"), check_changes(TK, remove=["due"]))
            await u.update(TK, ("q", "e"), check_changes(TK, set={"due": None}))
            await u.update(TK, ("q", "d"), check_changes(TK, set={"due": 0}))
            assert [t.id for t in (await s.query(TK, _q(("q",), index="by_due"))).items] == ["d", "b", "f"]

    async def test_sparse_index_partitioned_unlike_the_table(self, empty_store: Store) -> None:
        s = await _fresh(empty_store, TK)
        tickets = [Ticket("q", "a", "ann", 3), Ticket("q", "b", None, 1), Ticket("q", "c", "ann", None),
                   Ticket("r", "d", "ann", 2), Ticket("r", "e", "bob", 5), Ticket("r", "f", None, None)]
        await s.put_many(TK, tickets)
        try:
            got = (await s.query(TK, Query(("ann",), index="by_assignee"))).items
        except Unsupported as exc:
            pytest.skip(f"{s.name} does not query an index partitioned unlike the table: {exc}")
        assert [t.id for t in got] == ["a", "c", "d"]
        assert [t.id for t in (await s.query(TK, Query(("q", "ann"), index="by_slot"))).items] == ["a"]
        assert [t.id for t in (await s.query(TK, Query(("r", "ann"), index="by_slot", sort=ge(0)))).items] == ["d"]
        await s.put(TK, Ticket("q", "a", None, 3, version=1))  # out of both indexes
        await s.put(TK, Ticket("q", "b", "ann", 1, version=1))  # into both
        await s.put(TK, Ticket("r", "d", "ann", None, version=1))  # still by ann, out of by_slot
        paged, sizes = await _pages(s, TK, Query(("ann",), index="by_assignee", limit=1))
        assert [t.id for t in paged] == ["b", "c", "d"] and max(sizes) <= 1
        assert [t.id for t in (await s.query(TK, Query(("q", "ann"), index="by_slot"))).items] == ["b"]
        assert (await s.query(TK, Query(("r", "ann"), index="by_slot"))).items == []
        if getattr(s, "expressions", False):
            u: Any = s
            await u.update(TK, ("q", "c"), check_changes(TK, remove=["assignee"]))
            assert [t.id for t in (await s.query(TK, Query(("ann",), index="by_assignee"))).items] == ["b", "d"]

    # -- many partitions at once (QueryMany) -----------------------------------------------------------

    async def test_query_many_answers_each_partition_as_query_does(self, empty_store: Store) -> None:
        s = _query_many(empty_store)
        await s.put_many(D, [Doc("f", n, rank=20 - i) for i, n in enumerate(NAMES)] + [Doc("g", "n01"), Doc("e", "x")])
        parts = [("g",), ("nobody",), ("f",), ("e",)]
        every = await s.query_many(D, parts)
        assert [[d.name for d in group] for group in every] == [["n01"], [], NAMES, ["x"]]
        latest = await s.query_many(D, parts, limit=3, reverse=True)
        assert [[d.name for d in group] for group in latest] == [["n01"], [], NAMES[::-1][:3], ["x"]]
        first = await s.query_many(D, [("f",)], limit=2)
        assert [d.name for d in first[0]] == NAMES[:2]
        by_rank = await s.query_many(D, [("f",), ("g",)], index="by_rank", limit=4)
        assert [d.name for d in by_rank[0]] == NAMES[::-1][:4] and [d.name for d in by_rank[1]] == ["n01"]
        assert await s.query_many(D, []) == []
        await s.put_many(E, [Event("t", 1, q) for q in reversed(SEQS)] + [Event("t", 2, 5), Event("u", 1, 1)])
        events = await s.query_many(E, [("t", 1), ("t", 2), ("t", 3)], limit=4)
        assert [[e.seq for e in group] for group in events] == [SEQS[:4], [5], []]  # numeric order, per partition

    async def test_query_many_on_an_index_partitioned_unlike_the_table(self, empty_store: Store) -> None:
        s = _query_many(empty_store)
        ann = await _owned_docs(s)
        try:
            got, nobody = await s.query_many(D, [("ann",), ("zed",)], index="by_owner")
        except Unsupported as exc:
            pytest.skip(f"{s.name} does not query an index partitioned unlike the table: {exc}")
        assert sorted(_keys(D, got)) == sorted(_keys(D, ann)) and nobody == []
        assert [d.name for d in got] == sorted(d.name for d in ann)
        (first,) = await s.query_many(D, [("ann",)], index="by_owner", limit=2, reverse=True)
        assert [d.name for d in first] == sorted((d.name for d in ann), reverse=True)[:2]

    # -- transactions ---------------------------------------------------------------------------------

    async def test_transact_applies_every_op(self, empty_store: Store) -> None:
        s = empty_store
        first = await s.put(D, Doc("f", "a"))
        await s.put(D, Doc("f", "gone"))
        try:
            out = await s.transact([
                Put(Doc("f", "a", rank=5), expect_version=first.version),
                Put(Doc("f", "new"), if_not_exists=True),
                Delete(Doc, ("f", "gone")),
                Put(Doc("f", "plain", rank=1)),
            ])
        except Unsupported as exc:
            pytest.skip(f"{s.name} has no transactions: {exc}")
        assert len(out) == 4 and out[2] is None
        assert [(d.name, d.rank, d.version) for d in (out[0], out[1], out[3])] == [
            ("a", 5, 2), ("new", 0, 1), ("plain", 1, 1)
        ]
        got = await s.get_many(D, [("f", "a"), ("f", "new"), ("f", "gone"), ("f", "plain")], consistent=True)
        assert got == [out[0], out[1], None, out[3]]
        assert await s.transact([]) == []

    async def test_transact_is_all_or_nothing(self, empty_store: Store) -> None:
        s = empty_store
        before = await s.put_many(D, [Doc("f", "keep"), Doc("f", "exists"), Doc("f", "versioned")])
        ops: list[Put | Delete] = [
            Put(Doc("f", "fresh")),
            Put(Doc("f", "versioned", rank=9), expect_version=7),
            Delete(Doc, ("f", "keep")),
            Put(Doc("f", "exists", rank=9), if_not_exists=True),
            Delete(Doc, ("f", "absent"), expect_version=1),
        ]
        try:
            await s.transact(ops)
        except TransactionCanceled as exc:
            reasons = exc.reasons
        except Unsupported as exc:
            pytest.skip(f"{s.name} has no transactions: {exc}")
        else:
            pytest.fail("a transaction whose conditions fail went through")
        assert len(reasons) == len(ops)
        assert reasons[0] is None and reasons[2] is None
        assert all(isinstance(reasons[i], str) and reasons[i] for i in (1, 3, 4)), reasons
        keys = [("f", "keep"), ("f", "exists"), ("f", "versioned"), ("f", "fresh")]
        assert await s.get_many(D, keys, consistent=True) == [*before, None]

    async def test_transact_across_tables(self, empty_store: Store) -> None:
        s = empty_store
        await s.put(B, Blob(1, b"x"))
        try:
            out = await s.transact([Put(Doc("f", "a")), Put(Event("t", 1, 1)), Delete(Blob, (1,))])
        except Unsupported as exc:
            pytest.skip(f"{s.name} does not run this transaction: {exc}")
        assert out[0].version == 1 and out[1] == Event("t", 1, 1) and out[2] is None
        assert await s.get(B, (1,), consistent=True) is None
        assert await s.get(E, ("t", 1, 1), consistent=True) == Event("t", 1, 1)

    # -- errors ---------------------------------------------------------------------------------------

    async def test_a_closed_store_raises_only_tierstore_errors(self, empty_store: Store) -> None:
        s = empty_store
        await s.aclose()
        await s.aclose()  # idempotent
        calls: dict[str, Callable[[], Awaitable[Any]]] = {
            "get": lambda: s.get(D, ("f", "a"), consistent=True),
            "get_many": lambda: s.get_many(D, [("f", "a")], consistent=True),
            "put": lambda: s.put(D, Doc("f", "late")),
            "delete": lambda: s.delete(D, ("f", "a")),
            "query": lambda: s.query(D, _q(("f",))),
        }
        for name, call in calls.items():
            try:
                await call()
            except TierstoreError:
                pass
            except Exception as exc:
                pytest.fail(f"{name} on a closed store raised {exc!r}, which is not a TierstoreError")

    async def test_a_server_that_is_down_is_a_store_error(self, _dead_store: Store) -> None:
        s = _dead_store
        try:
            with contextlib.suppress(StoreError):  # failing at open is fine; so is failing at first use
                await s.open()
            with pytest.raises(StoreError):
                await s.ensure_schema(D)
            with pytest.raises(StoreError):
                await s.get(D, ("f", "a"), consistent=True)
            with pytest.raises(StoreError):
                await s.put(D, Doc("f", "a"))
        finally:
            await s.aclose()

    # -- expressions (stores with ``expressions = True``) ---------------------------------------------------

    async def test_query_where_filters_after_the_key_condition(self, empty_store: Store) -> None:
        s = _expressive(empty_store)
        docs = [Doc("f", f"n{i}", owner=("ann", "bob", "Ann")[i % 3], rank=i, tags=["x"] if i % 2 else [])
                for i in range(12)]
        await s.put_many(D, docs)
        await s.put(D, Doc("g", "n1", owner="ann"))
        cond = (Doc.owner == "ann") | (attr(Doc.tags).contains("x") & (Doc.rank >= 7))
        want = [d.name for d in sorted(docs, key=lambda d: d.name) if d.owner == "ann" or (d.tags and d.rank >= 7)]
        got, sizes = await _pages(s, D, Query(("f",), where=cond, limit=2, consistent=True))
        assert [d.name for d in got] == want
        assert all(n == 2 for n in sizes[:-1]) and sizes[-1] <= 2  # limit counts items returned
        rev, _ = await _pages(s, D, Query(("f",), sort=ge("n3"), where=~cond, reverse=True, consistent=True))
        assert [d.name for d in rev] == sorted((d.name for d in docs if d.name >= "n3" and d.name not in want),
                                               reverse=True)
        none = await s.query(D, Query(("f",), where=Doc.owner == "nobody", limit=3, consistent=True))
        assert none.items == [] and none.cursor is None

    async def test_put_when_a_condition_on_the_stored_item(self, empty_store: Store) -> None:
        s: Any = _expressive(empty_store)
        with pytest.raises(ConditionFailed) as missing:
            await s.put(D, Doc("f", "a", owner="ann"), when=Doc.owner == "ann")
        assert missing.value.current is None
        first = await s.put(D, Doc("f", "a", owner="ann", rank=1), when=~(Doc.owner == "bob"))  # absent: holds
        assert first.version == 1
        with pytest.raises(ConditionFailed) as failed:
            await s.put(D, Doc("f", "a", owner="bob"), when=Doc.rank > 1)
        assert failed.value.current == first  # the item as stored, with no extra read
        assert await s.get(D, ("f", "a"), consistent=True) == first
        second = await s.put(D, Doc("f", "a", owner="bob", rank=2), when=(Doc.owner == "ann") & (Doc.rank == 1))
        assert second.version == 2 and await s.get(D, ("f", "a"), consistent=True) == second
        with pytest.raises(ConditionFailed) as stale:
            await s.put(D, Doc("f", "a"), expect_version=1, when=Doc.owner == "bob")
        assert "version" in str(stale.value)  # the reason names the condition that failed
        third = await s.put(D, Doc("f", "a", rank=3), expect_version=2, when=Doc.owner == "bob")
        assert third.version == 3
        event = await s.put(E, Event("t", 1, 1, {"n": 1}), when=attr(Event.payload).not_exists() | (Event.seq == 1))
        assert await s.get(E, ("t", 1, 1), consistent=True) == event

    async def test_delete_when_a_condition_on_the_stored_item(self, empty_store: Store) -> None:
        s: Any = _expressive(empty_store)
        stored = await s.put(D, Doc("f", "a", owner="ann"))
        with pytest.raises(ConditionFailed) as failed:
            await s.delete(D, ("f", "a"), when=Doc.owner == "bob")
        assert failed.value.current == stored
        assert await s.get(D, ("f", "a"), consistent=True) == stored
        assert await s.delete(D, ("f", "a"), when=Doc.owner == "ann") is True
        assert await s.get(D, ("f", "a"), consistent=True) is None
        with pytest.raises(ConditionFailed):
            await s.delete(D, ("f", "a"), when=Doc.owner == "ann")
        assert await s.delete(D, ("f", "a"), when=~(Doc.owner == "ann")) is False

    async def test_update_changes_fields_in_place_and_returns_the_new_item(self, empty_store: Store) -> None:
        s: Any = _expressive(empty_store)
        stored = await s.put(D, Doc("f", "a", owner="ann", rank=1, tags=["x"]))
        new = await s.update(D, ("f", "a"), check_changes(D, set={"owner": "bob"}, add={"rank": 5},
                                                          append={"tags": ["y", "é"]}))
        assert new == msgspec.structs.replace(stored, owner="bob", rank=6, tags=["x", "y", "é"], version=2)
        assert await s.get(D, ("f", "a"), consistent=True) == new
        down = await s.update(D, ("f", "a"), check_changes(D, add={"rank": -10}), when=Doc.owner == "bob")
        assert (down.rank, down.version) == (-4, 3)
        with pytest.raises(ConditionFailed) as failed:
            await s.update(D, ("f", "a"), check_changes(D, set={"rank": 0}), when=Doc.owner == "ann")
        assert failed.value.current == down
        assert await s.get(D, ("f", "a"), consistent=True) == down
        with pytest.raises(NotFound):
            await s.update(D, ("f", "absent"), check_changes(D, set={"owner": "x"}))
        with pytest.raises(NotFound):
            await s.update(D, ("f", "absent"), check_changes(D, set={"owner": "x"}), when=Doc.rank == 0)
        assert await s.get(D, ("f", "absent"), consistent=True) is None  # an update never creates an item
        event = await s.put(E, Event("t", 1, 1, {"a": 1}))
        changed = await s.update(E, ("t", 1, 1), check_changes(E, set={"payload": {"b": 2}}))
        assert changed == msgspec.structs.replace(event, payload={"b": 2})  # no version field: none to advance
        assert await s.get(E, ("t", 1, 1), consistent=True) == changed

    async def test_update_counters_are_atomic(self, empty_store: Store) -> None:
        s: Any = _expressive(empty_store)
        await s.put(D, Doc("f", "n"))
        await asyncio.gather(*(s.update(D, ("f", "n"), check_changes(D, add={"rank": 1})) for _ in range(20)))
        final = await s.get(D, ("f", "n"), consistent=True)
        assert (final.rank, final.version) == (20, 21)

    async def test_transact_updates_under_condition_checks(self, empty_store: Store) -> None:
        s: Any = _expressive(empty_store)
        ann: Any = Doc.owner == "ann"  # a Condition (type checkers see the field's own type on the class)
        a = await s.put(D, Doc("f", "a", owner="ann", rank=1, tags=["x"]))
        await s.put(E, Event("t", 1, 1, {"n": 1}))
        try:
            out = await s.transact([
                Check(Event, ("t", 1, 1), attr(Event.payload).exists()),
                Update(Doc, ("f", "a"), check_changes(D, add={"rank": 2}, append={"tags": ["y"]}), ann),
                Put(Doc("f", "b")),
            ])
        except Unsupported as exc:
            pytest.skip(f"{s.name} does not run this transaction: {exc}")
        assert out[:2] == [None, None] and out[2].version == 1
        new = msgspec.structs.replace(a, rank=3, tags=["x", "y"], version=2)
        assert await s.get(D, ("f", "a"), consistent=True) == new
        ops = [
            Update(Doc, ("f", "a"), check_changes(D, set={"owner": "bob"})),
            Check(Doc, ("f", "b"), ann),
            Update(Doc, ("f", "absent"), check_changes(D, set={"owner": "x"})),
            Delete(Blob, (1,)),
        ]
        with pytest.raises(TransactionCanceled) as canceled:
            await s.transact(ops)
        reasons = canceled.value.reasons
        assert len(reasons) == 4 and reasons[0] is None and reasons[3] is None
        assert isinstance(reasons[1], str) and "Doc.owner == 'ann'" in reasons[1], reasons
        assert isinstance(reasons[2], str) and "does not exist" in reasons[2], reasons
        got = await s.get_many(D, [("f", "a"), ("f", "b"), ("f", "absent")], consistent=True)
        assert got == [new, out[2], None]  # nothing was written

    # -- Scannable and ScatterGather ---------------------------------------------------------------------

    async def test_scan_pages_through_every_item_once(self, empty_store: Store) -> None:
        s = _scannable(empty_store)
        items = [Event(t, st, q) for t in ("b", "a", "é") for st in (3, -1) for q in (9, 0, -5)]
        await empty_store.put_many(E, items)
        seen = await _scan_all(s, E, limit=4)
        assert sorted(_keys(E, seen)) == sorted(_keys(E, items))
        assert len(seen) == len(items)

    async def test_scan_pages_come_in_key_order(self, empty_store: Store) -> None:
        """Stores that keep a key order scan in it (declare this check not applicable otherwise)."""
        s = _scannable(empty_store)
        items = [Event(t, st, q) for t in ("b", "a", "é") for st in (3, -1) for q in (9, 0, -5)]
        await empty_store.put_many(E, items)
        seen = await _scan_all(s, E, limit=4)
        assert _keys(E, seen) == sorted(_keys(E, items))
        after = sorted(_keys(E, items))[5]
        assert _keys(E, await s.scan(E, after=after, limit=3)) == sorted(_keys(E, items))[6:9]

    async def test_restore_many_writes_items_exactly_as_given(self, empty_store: Store) -> None:
        s = _scannable(empty_store)
        await empty_store.put(D, Doc("f", "a", rank=1))
        await empty_store.put(D, Doc("f", "a", rank=2))
        restored = [Doc("f", "a", rank=7, version=9), Doc("f", "b", version=3), Doc("g", "c", version=1)]
        await s.restore_many(D, restored)
        assert await empty_store.get_many(D, _keys(D, restored), consistent=True) == restored
        assert (await empty_store.put(D, Doc("f", "a"))).version == 10  # versions go on from the restored one
        await s.restore_many(B, [Blob(3, b"x")])
        assert await empty_store.get(B, (3,), consistent=True) == Blob(3, b"x")
        await s.restore_many(D, [])

    async def test_scatter_gather_merges_every_shard(self, empty_store: Store) -> None:
        if not isinstance(empty_store, ScatterGather):
            pytest.skip(f"{empty_store.name} does not implement ScatterGather")
        ann = await _owned_docs(empty_store)
        expected = sorted(ann, key=lambda d: (d.name, D.key_of(d)))
        got = await empty_store.scatter_gather(D, Query(("ann",), index="by_owner"))
        assert got == expected
        assert await empty_store.scatter_gather(D, Query(("ann",), index="by_owner", limit=4)) == expected[:4]
        back = await empty_store.scatter_gather(D, Query(("ann",), index="by_owner", reverse=True, limit=3))
        assert back == expected[::-1][:3]


async def _fresh(store: Store, schema: Schema[Any]) -> Store:
    """``store`` with the table of ``schema`` created and empty (a table the other checks do not use)."""
    await store.ensure_schema(schema)
    await store.truncate(schema)
    return store


def _expressive(store: Store) -> Store:
    if not getattr(store, "expressions", False):
        pytest.skip("the store does not evaluate conditions (no `expressions = True`)")
    return store


def _query_many(store: Store) -> Any:
    """``store`` (a ``Store`` that is also a ``QueryMany``), or a skip."""
    if not isinstance(store, QueryMany):
        pytest.skip(f"{store.name} does not implement QueryMany")
    return store


def _scannable(store: Store) -> Scannable:
    if not isinstance(store, Scannable):
        pytest.skip(f"{store.name} does not implement Scannable")
    return store


async def _scan_all(store: Scannable, schema: Schema[T], *, limit: int) -> list[T]:
    """Every item, page by page, each page resuming after the last key of the one before (as resharding
    does); a page shorter than ``limit`` is the last."""
    seen: list[T] = []
    after = None
    for _ in range(1000):
        page = await store.scan(schema, after=after, limit=limit)
        assert len(page) <= limit
        seen += page
        if len(page) < limit:
            return seen
        after = schema.key_of(page[-1])
    raise AssertionError("the scan never ended")
