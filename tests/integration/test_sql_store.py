"""SqlStore against real SQLite, PostgreSQL and MariaDB (markers ``sqlite``, ``postgres``, ``mysql``).

Tables carry a per-run suffix, so concurrent runs of this module never share rows; they are dropped when
the module finishes. Network faults come from ``tierstore.testing.FaultProxy`` in front of the real server.
"""

from __future__ import annotations

import asyncio
import datetime
import enum
import math
import os
import sqlite3
import uuid
from collections.abc import AsyncIterator, Iterator
from typing import Any

import msgspec
import pytest
import sqlalchemy as sa
from sqlalchemy.ext.asyncio import create_async_engine

from tierstore import (
    ConditionFailed,
    Entity,
    Index,
    PartitionKey,
    SortKey,
    StoreError,
    TransactionCanceled,
    ValidationError,
    Version,
)
from tierstore.backends import schema_of
from tierstore.query import Query, begins_with, between, eq, ge, gt, le, lt
from tierstore.stores.base import Delete, Put
from tierstore.stores.sql import SqlStore, SqlStoreConfig, metadata_for
from tierstore.testing.proxy import FaultProxy

from _servers import MYSQL_URL, PG_URL, require

S = uuid.uuid4().hex[:8]


class Color(enum.Enum):
    RED = "red"
    BLUE = "blue"


class Inner(msgspec.Struct):
    a: int
    b: list[str] = []


class Kinds(Entity, table=f"sqlt_{S}_kinds"):
    id: PartitionKey[str]
    n: int = 0
    f: float = 0.0
    flag: bool = False
    raw: bytes = b""
    text: str = ""
    maybe_int: int | None = None
    maybe_str: str | None = None
    tags: list[str] = []
    attrs: dict[str, int] = {}
    inner: Inner | None = None
    pair: tuple[int, str] = (0, "")
    when: datetime.datetime | None = None
    color: Color = Color.RED
    version: Version = 0


class Doc(Entity, table=f"sqlt_{S}_docs", indexes=[Index("by_owner", "owner", "rank")]):
    folder: PartitionKey[str]
    name: SortKey[str]
    owner: str = "nobody"
    rank: int = 0
    version: Version = 0


class Bin(Entity, table=f"sqlt_{S}_bins", partition_key=("tenant", "shard"), sort_key="key"):
    tenant: str
    shard: int
    key: bytes
    value: str = ""


class Frozen(Entity, table=f"sqlt_{S}_frozen", frozen=True, kw_only=True):
    id: PartitionKey[int]
    payload: list[int] = []


ENTITIES = (Kinds, Doc, Bin, Frozen)
BACKENDS = [
    pytest.param("sqlite", marks=pytest.mark.sqlite),
    pytest.param("postgres", marks=pytest.mark.postgres),
    pytest.param("mysql", marks=pytest.mark.mysql),
]
NETWORK = BACKENDS[1:]


def url_of(backend: str, tmp_path: os.PathLike[str], params: str = "") -> str:
    if backend == "sqlite":
        url = f"sqlite+aiosqlite:///{tmp_path}/store.db"
    else:
        url = PG_URL if backend == "postgres" else MYSQL_URL
        require(url, backend)
    return url + (("&" if "?" in url else "?") + params if params else "")


async def open_store(url: str) -> SqlStore:
    store = SqlStoreConfig.from_url(url).build()
    await store.open()
    await store.create_tables(*ENTITIES)
    for e in ENTITIES:
        await store.truncate(schema_of(e))
    return store


@pytest.fixture(scope="module", autouse=True)
def _drop_tables() -> Iterator[None]:
    yield

    async def drop(url: str) -> None:
        store = SqlStoreConfig.from_url(url).build()
        try:
            await store.open()
            await store.drop_tables(*ENTITIES)
        except StoreError:
            pass  # server gone: nothing to clean
        finally:
            await store.aclose()

    for url in (PG_URL, MYSQL_URL):
        asyncio.run(drop(url))


@pytest.fixture(params=BACKENDS)
async def store(request: pytest.FixtureRequest, tmp_path: os.PathLike[str]) -> AsyncIterator[SqlStore]:
    s = await open_store(url_of(request.param, tmp_path))
    try:
        yield s
    finally:
        await s.aclose()


K = schema_of(Kinds)
D = schema_of(Doc)
B = schema_of(Bin)
F = schema_of(Frozen)


# -- values ---------------------------------------------------------------------------------------


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


# -- reads ----------------------------------------------------------------------------------------


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


# -- writes and versions --------------------------------------------------------------------------


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
    with pytest.raises(ConditionFailed, match="found no item"):
        await store.put(K, Kinds("absent"), expect_version=0)
    got = await store.get(K, ("e",))
    assert got is not None and (got.n, got.version) == (2, 2)
    assert await store.get(K, ("absent",)) is None


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


# -- transactions ---------------------------------------------------------------------------------


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


# -- round trips, schema, lifecycle ---------------------------------------------------------------


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


async def _reflect(store: SqlStore, url: str, fn: Any) -> Any:
    engine = create_async_engine(url)
    try:
        async with engine.connect() as conn:
            return await conn.run_sync(fn)
    finally:
        await engine.dispose()


@pytest.mark.parametrize("backend", BACKENDS)
async def test_created_tables_match_metadata_for(backend: str, tmp_path: os.PathLike[str]) -> None:
    url = url_of(backend, tmp_path)
    store = await open_store(url)
    await store.ensure_schema(D)  # idempotent, also from a second store
    await store.aclose()
    store2 = await open_store(url)
    await store2.aclose()

    def inspect(conn: sa.Connection) -> Any:
        insp = sa.inspect(conn)
        cols = {c["name"]: c for c in insp.get_columns(D.table)}
        return insp.get_pk_constraint(D.table), insp.get_indexes(D.table), cols

    pk, indexes, cols = await _reflect(store, url, inspect)
    assert pk["constrained_columns"] == ["folder", "name"]
    assert [(i["name"], i["column_names"]) for i in indexes] == [
        (f"ix_{D.table}_by_owner", ["owner", "rank", "folder", "name"])
    ]
    table = metadata_for(Doc).tables[D.table]
    assert list(cols) == [c.name for c in table.columns]
    if backend == "mysql":
        assert cols["name"]["type"].collation in ("utf8mb4_nopad_bin", "utf8mb4_0900_bin")
    if backend == "postgres":
        assert cols["name"]["type"].collation == "C"


@pytest.mark.parametrize("backend", BACKENDS)
async def test_alembic_autogenerate_sees_no_difference(backend: str, tmp_path: os.PathLike[str]) -> None:
    """``metadata_for`` is what Alembic's ``target_metadata`` needs: the created schema compares equal."""
    pytest.importorskip("alembic", reason="alembic is not installed")
    from alembic.autogenerate import compare_metadata
    from alembic.migration import MigrationContext

    url = url_of(backend, tmp_path)
    store = await open_store(url)
    await store.aclose()
    target = metadata_for(*ENTITIES)

    def diff(conn: sa.Connection) -> Any:
        ctx = MigrationContext.configure(
            conn,
            opts={
                "compare_type": True,
                "include_name": lambda name, kind, parents: kind != "table" or name in target.tables,
            },
        )
        return compare_metadata(ctx, target)

    assert await _reflect(store, url, diff) == []


@pytest.mark.parametrize("backend", NETWORK)
async def test_connect_failure_names_backend_and_hides_password(backend: str) -> None:
    scheme = "postgresql+asyncpg" if backend == "postgres" else "mysql+aiomysql"
    store = SqlStoreConfig.from_url(f"{scheme}://user:s3cret@127.0.0.1:1/db?connect_timeout=2s").build()
    with pytest.raises(StoreError) as info:
        await store.open()
    text = str(info.value)
    assert "s3cret" not in text and "***" in text and backend in text
    with pytest.raises(StoreError):  # still failing, not half-open
        await store.open()
    with pytest.raises(StoreError):
        await store.get(K, ("x",))
    await store.aclose()


async def test_sqlite_missing_directory_is_a_store_error(tmp_path: os.PathLike[str]) -> None:
    store = SqlStoreConfig.from_url(f"sqlite+aiosqlite:///{tmp_path}/no/such/dir/x.db").build()
    with pytest.raises(StoreError, match="sqlite"):
        await store.open()
    await store.aclose()


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


# -- pools and faults (PostgreSQL, MariaDB) -------------------------------------------------------


def _proxied(url: str, port: int) -> str:
    return url.replace(f":{sa.make_url(url).port}/", f":{port}/", 1)


@pytest.mark.parametrize("backend", NETWORK)
async def test_lost_connections_are_replaced(backend: str, tmp_path: os.PathLike[str]) -> None:
    url = url_of(backend, tmp_path)
    u = sa.make_url(url)
    async with FaultProxy(u.host or "127.0.0.1", u.port or 0) as proxy:
        store = await open_store(_proxied(url, proxy.port))
        try:
            await store.put(K, Kinds("p"))
            await asyncio.gather(*(store.get(K, ("p",)) for _ in range(4)))  # several pooled connections
            await proxy.cut()  # like a server restart: every pooled connection is dead
            assert await store.get(K, ("p",)) is not None  # a read retries once on a new connection
            await proxy.cut()
            await asyncio.sleep(0.05)
            try:
                await store.put(K, Kinds("p", n=1))  # a write is not retried, but must fail cleanly
            except StoreError as exc:
                assert exc.backend == backend
            assert (await store.put(K, Kinds("p", n=2))).n == 2
        finally:
            await store.aclose()


@pytest.mark.parametrize("backend", NETWORK)
async def test_cancelled_operation_does_not_poison_the_pool(backend: str, tmp_path: os.PathLike[str]) -> None:
    url = url_of(backend, tmp_path)
    u = sa.make_url(url)
    async with FaultProxy(u.host or "127.0.0.1", u.port or 0) as proxy:
        store = await open_store(_proxied(url, proxy.port) + "?pool_size=2")
        try:
            await store.put(K, Kinds("q", n=1))
            proxy.blackhole()
            with pytest.raises(TimeoutError):
                await asyncio.wait_for(store.get(K, ("q",)), 0.3)
            with pytest.raises(TimeoutError):
                await asyncio.wait_for(store.put(K, Kinds("q", n=2)), 0.3)
            proxy.reset()
            # The hung connections were thrown away, not handed to the next caller mid-reply.
            got = await asyncio.gather(*(store.get(K, ("q",)) for _ in range(6)))
            assert all(g is not None and g.n == 1 for g in got)
        finally:
            await store.aclose()


@pytest.mark.parametrize("backend", NETWORK)
async def test_callers_wait_for_a_free_connection(backend: str, tmp_path: os.PathLike[str]) -> None:
    store = await open_store(url_of(backend, tmp_path, "pool_size=1&pool_timeout=20s"))
    try:
        await store.put(K, Kinds("w"))
        got = await asyncio.gather(*(store.get(K, ("w",)) for _ in range(20)))
        assert all(g is not None for g in got)
        assert store._driver._count == 1  # type: ignore[attr-defined]
    finally:
        await store.aclose()


# -- SQLite specifics ------------------------------------------------------------------------------


@pytest.mark.sqlite
async def test_sqlite_reads_do_not_wait_for_a_writer(tmp_path: os.PathLike[str]) -> None:
    url = url_of("sqlite", tmp_path)
    store = await open_store(url)
    try:
        await store.put(K, Kinds("r", n=1))
        other = sqlite3.connect(f"{tmp_path}/store.db", isolation_level=None)
        other.execute("BEGIN IMMEDIATE")
        other.execute(f"UPDATE {K.table} SET n = 2 WHERE id = 'r'")  # noqa: S608 - test table name
        got = await asyncio.wait_for(store.get(K, ("r",)), 1.0)  # WAL: the reader sees the last commit
        assert got is not None and got.n == 1
        many = await store.get_many(K, [("r",)])
        assert many[0] is not None and many[0].n == 1
        other.execute("COMMIT")
        got = await store.get(K, ("r",))
        assert got is not None and got.n == 2
        other.close()
    finally:
        await store.aclose()


@pytest.mark.sqlite
async def test_undecodable_row_is_a_store_error(tmp_path: os.PathLike[str]) -> None:
    store = await open_store(url_of("sqlite", tmp_path))
    try:
        await store.put(K, Kinds("bad"))
        other = sqlite3.connect(f"{tmp_path}/store.db", isolation_level=None)
        other.execute(f"UPDATE {K.table} SET tags = '{{not json' WHERE id = 'bad'")  # noqa: S608 - test table
        other.close()
        with pytest.raises(StoreError, match="does not decode") as info:
            await store.get(K, ("bad",))
        assert info.value.key == ("bad",) and info.value.entity == "Kinds"
        with pytest.raises(StoreError, match="does not decode"):
            await store.get_many(K, [("bad",)])
    finally:
        await store.aclose()


@pytest.mark.sqlite
async def test_sqlite_in_memory() -> None:
    store = await open_store("sqlite://")
    try:
        await store.put_many(D, [Doc("f", f"n{i}") for i in range(5)])
        assert len(await store.query(D, Query(("f",)))) == 5
        with pytest.raises(TransactionCanceled):
            await store.transact([Put(Doc("f", "x")), Put(Doc("f", "n1"), if_not_exists=True)])
        assert await store.get(D, ("f", "x")) is None
    finally:
        await store.aclose()


@pytest.mark.sqlite
async def test_sqlite_writes_from_two_stores_interleave(tmp_path: os.PathLike[str]) -> None:
    url = url_of("sqlite", tmp_path)
    a, b = await open_store(url), await open_store(url)
    try:
        await a.put(K, Kinds("s"))
        await asyncio.gather(*(s.put(K, Kinds("s")) for s in (a, b) for _ in range(10)))
        got = await a.get(K, ("s",))
        assert got is not None and got.version == 21
    finally:
        await a.aclose()
        await b.aclose()
