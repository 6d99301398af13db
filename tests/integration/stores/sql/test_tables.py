"""The tables SqlStore creates on each database match ``metadata_for`` (columns, key, indexes, collations), so
Alembic autogenerate sees no difference.
"""

from __future__ import annotations

import os
from typing import Any

import pytest
import sqlalchemy as sa
from sqlalchemy.ext.asyncio import create_async_engine

from tierstore.stores.sql import SqlStore, metadata_for

from _sql import BACKENDS, ENTITIES, D, Doc, open_store, url_of


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
