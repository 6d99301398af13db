"""The SQLite driver: reads in the loop next to a writer (WAL), a corrupted row, ``:memory:``, two stores on
one file, a missing directory.
"""

from __future__ import annotations

import asyncio
import os
import sqlite3

import pytest

from tierstore import StoreError, TransactionCanceled
from tierstore.query import Query
from tierstore.stores.base import Put
from tierstore.stores.sql import SqlStoreConfig

from _sql import D, Doc, K, Kinds, open_store, url_of


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


async def test_sqlite_missing_directory_is_a_store_error(tmp_path: os.PathLike[str]) -> None:
    store = SqlStoreConfig.from_url(f"sqlite+aiosqlite:///{tmp_path}/no/such/dir/x.db").build()
    with pytest.raises(StoreError, match="sqlite"):
        await store.open()
    await store.aclose()


@pytest.mark.sqlite
async def test_one_to_many_reads_a_small_answer_in_the_loop_and_a_large_one_in_a_worker(
    tmp_path: os.PathLike[str],
) -> None:
    from tierstore.stores.sql.drivers.sqlite import INLINE_ROWS

    store = await open_store(url_of("sqlite", tmp_path))
    try:
        await store.put_many(D, [Doc("small", f"d{i:04}", rank=i) for i in range(10)])
        await store.put_many(D, [Doc("big", f"d{i:04}", rank=i) for i in range(INLINE_ROWS + 20)])
        checker = sqlite3.connect(f"{tmp_path}/store.db", isolation_level=None)

        def reader_holds_no_snapshot() -> bool:
            checker.execute(f"UPDATE {D.table} SET rank = rank WHERE folder = 'small'")  # noqa: S608 - test table
            busy, _, _ = checker.execute("PRAGMA wal_checkpoint(TRUNCATE)").fetchone()
            return busy == 0

        for partitions, trips in ([("small",), ("none",)], 1), ([("small",), ("big",)], 2):
            before = store.stats.round_trips
            groups = await store.query_many(D, partitions)
            assert store.stats.round_trips - before == trips  # a large answer is read again, whole, in a worker
            for p, group in zip(partitions, groups, strict=True):
                page = await store.query(D, Query(p, limit=1000))
                assert group == page.items
            assert reader_holds_no_snapshot()
        assert [len(g) for g in await store.query_many(D, [("big",), ("small",)], limit=3)] == [3, 3]
        checker.close()
    finally:
        await store.aclose()
