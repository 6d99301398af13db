"""SqlStore against real SQLite, PostgreSQL and MariaDB (markers ``sqlite``, ``postgres``, ``mysql``): values,
reads and queries, limits, scan and restore, round trips, errors and lifecycle. Writes, versions and
transactions are in test_operations.py.
"""

from __future__ import annotations

import datetime
import math
import os
from typing import Any

import msgspec
import pytest

from tierstore import Entity, PartitionKey, StoreError, ValidationError
from tierstore.backends import schema_of
from tierstore.query import Query, begins_with, between, eq, ge, gt, le, lt
from tierstore.stores.base import Put
from tierstore.stores.sql import SqlStore

from _sql import B, Bin, Color, D, Doc, F, Frozen, Inner, K, Kinds, S, open_store, url_of

# -- values ----------------------------------------------------------------------------------------


async def test_every_column_kind_round_trips(store: SqlStore) -> None:
    full = Kinds(
        "k1", n=-(2**62), f=-1.25e-300, flag=True, raw=b"\x00\xff bin", text="héllo 😀 \\ ' % _",
        maybe_int=7, maybe_str="x", tags=["a", "b"], attrs={"x": 1}, inner=Inner(3, ["z"]),
        pair=(9, "nine"), when=datetime.datetime(2026, 1, 2, 3, 4, 5, tzinfo=datetime.UTC), color=Color.BLUE,
    )
    empty = Kinds("k2")
    stored = [await store.put(K, full), await store.put(K, empty)]
    assert [s.version for s in stored] == [1, 1]
    assert await store.get(K, ("k1",)) == msgspec.structs.replace(full, version=1)
    got = await store.get(K, ("k2",))
    assert got == msgspec.structs.replace(empty, version=1)
    assert got is not None and type(got.flag) is bool and got.maybe_int is None and got.inner is None


async def test_keyword_only_frozen_entity(store: SqlStore) -> None:
    item = Frozen(id=-5, payload=[1, 2])
    assert await store.put(F, item) is item  # no version field: stored as given
    assert await store.get(F, (-5,)) == item
    assert await store.get(F, (6,)) is None


async def test_keys_compare_by_code_point(store: SqlStore) -> None:
    """MySQL's default collations fold case and pad spaces; keys must stay distinct and sort like Python."""
    names = ["a", "A", "a ", "Z", "é", "😀", "ab", "b"]
    await store.put_many(D, [Doc("f", n, rank=i) for i, n in enumerate(names)])
    for i, n in enumerate(names):
        got = await store.get(D, ("f", n))
        assert got is not None and got.name == n and got.rank == i
    page = await store.query(D, Query(("f",)))
    assert [d.name for d in page] == sorted(names)


# -- reads -----------------------------------------------------------------------------------------


async def test_get_many_in_request_order_across_chunks(store: SqlStore) -> None:
    items = [Bin("t", i % 3, i.to_bytes(2, "big"), f"v{i}") for i in range(0, 1200, 2)]
    await store.put_many(B, items)
    keys: list[tuple[Any, ...]] = [("t", i % 3, i.to_bytes(2, "big")) for i in range(1199, -1, -1)]
    before = store.stats.round_trips
    got = await store.get_many(B, keys)
    assert [g.value if g else None for g in got] == [f"v{i}" if i % 2 == 0 else None for i in range(1199, -1, -1)]
    # 1200 three-part keys: 256 per IN list; PostgreSQL passes 1000 per statement as arrays
    assert store.stats.round_trips - before == (2 if store.name == "postgres" else 5)
    assert await store.get_many(B, []) == []


async def test_query_conditions_on_unicode_sort_keys(store: SqlStore) -> None:
    names = ["a", "ab", "abc", "ab\U0010ffff", "ab\U0010ffffz", "ac", "b", "Z", "é", "😀", "ab%", "ab_"]
    await store.put_many(D, [Doc("f", n) for n in names])
    await store.put(D, Doc("other", "ab"))
    cases = [
        (eq("ab"), lambda n: n == "ab"),
        (lt("ab"), lambda n: n < "ab"),
        (le("ab"), lambda n: n <= "ab"),
        (gt("ab"), lambda n: n > "ab"),
        (ge("ab"), lambda n: n >= "ab"),
        (between("ab", "b"), lambda n: "ab" <= n <= "b"),
        (begins_with("ab"), lambda n: n.startswith("ab")),
        (begins_with("ab\U0010ffff"), lambda n: n.startswith("ab\U0010ffff")),
        (begins_with("ab%"), lambda n: n.startswith("ab%")),  # no LIKE: % and _ are plain characters
        (begins_with(""), lambda n: True),
    ]
    for cond, pred in cases:
        page = await store.query(D, Query(("f",), sort=cond))
        assert [d.name for d in page] == sorted(n for n in names if pred(n)), cond
        rev = await store.query(D, Query(("f",), sort=cond, reverse=True))
        assert [d.name for d in rev] == sorted((n for n in names if pred(n)), reverse=True), cond


async def test_begins_with_on_bytes_sort_keys(store: SqlStore) -> None:
    keys = [b"\x01", b"\x01\xff", b"\x01\xff\xff", b"\x02", b"\xff", b"\xff\x00"]
    await store.put_many(B, [Bin("t", 1, k) for k in keys])
    for prefix in (b"\x01\xff", b"\xff", b"\x01"):
        page = await store.query(B, Query(("t", 1), sort=begins_with(prefix)))
        assert [b.key for b in page] == [k for k in keys if k.startswith(prefix)], prefix


async def test_keyset_pages_cover_an_index_with_ties(store: SqlStore) -> None:
    docs = [Doc(f"f{i % 4}", f"n{i:03d}", owner="o", rank=i % 3) for i in range(40)]
    docs += [Doc("f9", f"x{i}", owner="other", rank=0) for i in range(5)]
    await store.put_many(D, docs)
    # Index order: its sort field, then the table key (partition, sort).
    expected = sorted((d for d in docs if d.owner == "o"), key=lambda d: (d.rank, d.folder, d.name))
    for reverse in (False, True):
        seen: list[Doc] = []
        q = Query(("o",), index="by_owner", limit=7, reverse=reverse)
        while True:
            page = await store.query(D, q)
            assert len(page) <= 7
            seen += page.items
            if page.cursor is None:
                break
            q = Query(q.partition, q.sort, q.index, q.limit, page.cursor, q.reverse)
        want = expected[::-1] if reverse else expected
        assert [(d.folder, d.name) for d in seen] == [(d.folder, d.name) for d in want]


async def test_query_with_condition_and_cursor(store: SqlStore) -> None:
    await store.put_many(D, [Doc("f", f"n{i:02d}") for i in range(30)])
    q = Query(("f",), sort=between("n05", "n24"), limit=6)
    names: list[str] = []
    pages = 0
    while True:
        page = await store.query(D, q)
        pages += 1
        names += [d.name for d in page]
        if page.cursor is None:
            break
        q = Query(q.partition, q.sort, q.index, q.limit, page.cursor)
    assert names == [f"n{i:02d}" for i in range(5, 25)]
    assert pages == 4  # 20 items in pages of 6; the last page knows it is last (limit + 1 probe)


async def test_foreign_or_forged_cursor_is_rejected(store: SqlStore) -> None:
    from tierstore.query import encode_cursor

    await store.put_many(D, [Doc("f", f"n{i}") for i in range(5)])
    q = Query(("f",), limit=2)
    page = await store.query(D, q)
    assert page.cursor is not None
    with pytest.raises(ValidationError):
        await store.query(D, Query(("g",), limit=2, cursor=page.cursor))
    with pytest.raises(ValidationError):
        await store.query(D, Query(("f",), limit=2, cursor=encode_cursor(q, [1, 2])))


async def test_page_size_bounds_a_query_without_limit(tmp_path: os.PathLike[str]) -> None:
    store = await open_store(url_of("sqlite", tmp_path, "page_size=3"))
    try:
        await store.put_many(D, [Doc("f", f"n{i}") for i in range(7)])
        page = await store.query(D, Query(("f",)))
        assert len(page) == 3 and page.cursor is not None
    finally:
        await store.aclose()


# -- limits ----------------------------------------------------------------------------------------


def test_key_rule_agrees_with_the_general_check(store: SqlStore) -> None:
    """``check_key`` runs on every cached read, with a shortcut for short texts: it refuses exactly what the
    general check refuses, one- and two-part keys, at and past the limits, with NUL, other types."""
    from tierstore.stores.sql.rows import check_sql_key

    postgres = store.name == "postgres"
    texts = ["a", "x" * 255, "x" * 256, "a\x00b", "é" * 255, "é" * 256, "\x00"]
    cases: list[tuple[Any, tuple[Any, ...]]] = [(K, (t,)) for t in texts]
    cases += [(D, (a, b)) for a in texts for b in texts]
    cases += [(F, (n,)) for n in (0, 2**63 - 1, 2**63, -(2**63), -(2**63) - 1)]
    refused = 0
    for schema, key in cases:
        try:
            check_sql_key(schema, key, postgres=postgres)
        except ValidationError:
            refused += 1
            with pytest.raises(ValidationError):
                store.check_key(schema, key)
        else:
            store.check_key(schema, key)
    assert refused == (46 if postgres else 28)  # the cases past a limit (a check refusing nothing passes above)


async def test_limits_are_checked_before_io(store: SqlStore) -> None:
    before = store.stats.round_trips
    with pytest.raises(ValidationError, match="255"):
        await store.get(K, ("x" * 256,))
    with pytest.raises(ValidationError, match="255"):
        await store.put(D, Doc("f", "n", owner="o" * 256))  # an index field has the key limit too
    with pytest.raises(ValidationError, match="64-bit"):
        await store.put(K, Kinds("big", n=2**63))
    with pytest.raises(ValidationError, match="64-bit"):
        await store.get(F, (2**64,))
    with pytest.raises(ValidationError):
        await store.transact([Put(Kinds("ok")), Put(Kinds("y" * 300))])
    if store.name == "postgres":
        with pytest.raises(ValidationError, match="NUL"):
            await store.put(K, Kinds("nul", text="a\x00b"))
        with pytest.raises(ValidationError, match="NUL"):
            await store.put(K, Kinds("nul", tags=["a\x00b"]))
    else:
        with pytest.raises(ValidationError, match="nan"):
            await store.put(K, Kinds("nan", f=math.nan))
    assert store.stats.round_trips == before
    assert (await store.get(K, ("x" * 255,))) is None  # the limit itself is fine
    stored = await store.put(K, Kinds("y" * 255, text="z" * 100_000))
    assert await store.get(K, ("y" * 255,)) == stored


async def test_special_floats_where_the_database_has_them(store: SqlStore) -> None:
    if store.name == "mysql":
        with pytest.raises(ValidationError):
            await store.put(K, Kinds("inf", f=math.inf))
        return
    await store.put(K, Kinds("inf", f=-math.inf))
    got = await store.get(K, ("inf",))
    assert got is not None and got.f == -math.inf
    if store.name == "postgres":
        await store.put(K, Kinds("nan", f=math.nan))
        got = await store.get(K, ("nan",))
        assert got is not None and math.isnan(got.f)


# -- scan and restore (resharding, backups) --------------------------------------------------------


async def test_scan_pages_the_table_in_key_order(store: SqlStore) -> None:
    items = [Bin(t, sh, bytes([b, 0xFF])) for t in ("b", "a", "é") for sh in (3, -1) for b in (9, 0, 255)]
    await store.put_many(B, items)
    seen: list[Bin] = []
    after = None
    while True:
        page = await store.scan(B, after=after, limit=4)
        seen += page
        if len(page) < 4:
            break
        after = B.key_of(page[-1])
    assert [B.key_of(b) for b in seen] == sorted(B.key_of(b) for b in items)
    with pytest.raises(ValidationError):
        await store.scan(B, limit=0)


async def test_restore_many_keeps_versions(store: SqlStore) -> None:
    await store.put(D, Doc("f", "a", rank=1))
    await store.put(D, Doc("f", "a", rank=2))  # version 2
    restored = [Doc("f", "a", rank=7, version=9)] + [Doc("g", f"n{i:04d}", version=3) for i in range(1200)]
    await store.restore_many(D, restored)  # three statements, one transaction
    got = await store.get(D, ("f", "a"))
    assert got is not None and (got.rank, got.version) == (7, 9)
    assert [d.version for d in await store.scan(D, after=("g", "n1196"), limit=10)] == [3, 3, 3]
    assert (await store.put(D, Doc("f", "a"))).version == 10  # versions continue from the restored one
    with pytest.raises(ValidationError):
        await store.restore_many(D, [Doc("x", "y"), Doc("x", "y")])
    await store.restore_many(F, [Frozen(id=3, payload=[1])])  # an entity without a version field
    assert await store.get(F, (3,)) == Frozen(id=3, payload=[1])


# -- round trips, errors, lifecycle ----------------------------------------------------------------


async def test_one_round_trip_per_operation(store: SqlStore) -> None:
    await store.put_many(D, [Doc("f", f"n{i:03d}") for i in range(100)])
    counts = {}
    for name, call in {
        "get": lambda: store.get(D, ("f", "n001")),
        "get_many": lambda: store.get_many(D, [("f", f"n{i:03d}") for i in range(100)]),
        "put": lambda: store.put(D, Doc("f", "n001")),
        "query": lambda: store.query(D, Query(("f",), limit=10)),
        "delete": lambda: store.delete(D, ("f", "n002")),
    }.items():
        before = store.stats.round_trips
        await call()
        counts[name] = store.stats.round_trips - before
    assert counts == {"get": 1, "get_many": 1, "put": 1, "query": 1, "delete": 1}
    assert store.stats.reads == 101 and store.stats.queries == 1


async def test_closed_store_refuses_work(store: SqlStore) -> None:
    await store.aclose()
    await store.aclose()  # idempotent
    with pytest.raises(StoreError):
        await store.put(K, Kinds("late"))
    with pytest.raises(StoreError):
        await store.open()


async def test_sql_error_is_a_store_error_with_context(store: SqlStore) -> None:
    class Missing(Entity, table=f"sqlt_{S}_missing"):
        id: PartitionKey[str]

    with pytest.raises(StoreError) as info:
        await store.get(schema_of(Missing), ("x",))
    assert info.value.entity == "Missing" and info.value.backend == store.name
    assert store.stats.errors == 1
    assert await store.get(K, ("x",)) is None  # the connection survived
