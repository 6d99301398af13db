"""SQL schema generation, statement plans and SqlStoreConfig, without a database (dialects compile only)."""

from __future__ import annotations

import datetime
import math
from typing import Annotated, Any

import msgspec
import pytest
import sqlalchemy as sa
from sqlalchemy.dialects import mysql
from sqlalchemy.engine import Dialect
from sqlalchemy.ext.asyncio import create_async_engine

from tierstore import ConfigError, Entity, Index, PartitionKey, ValidationError, Version
from tierstore.backends import schema_of
from tierstore.config import store_config
from tierstore.stores.sql import SqlStoreConfig, metadata_for
from tierstore.stores.sql_schema import KEY_LENGTH, Plan, column_kind, successor, table_for


class Nested(msgspec.Struct):
    a: int


class Wide(
    Entity, table="unit_wide", partition_key="p", sort_key="s", indexes=[Index("by_label", "label", "rank")]
):
    s: str  # declared before the partition field: the key order must still be (p, s)
    p: str
    label: str
    rank: int = 0
    raw: bytes = b""
    score: float = 0.0
    flag: bool = False
    note: str | None = None
    items: list[Nested] = []
    when: datetime.datetime | None = None
    version: Version = 0


class ByBytes(Entity, table="unit_bytes"):
    id: PartitionKey[bytes]
    flag: bool = False


class KwOnly(Entity, table="unit_kw", kw_only=True):
    id: PartitionKey[int]
    tags: list[str] = []


def pg() -> Dialect:
    return create_async_engine("postgresql+asyncpg://u@h/db").dialect


def maria(is_mariadb: bool = True) -> Dialect:
    d = create_async_engine("mysql+aiomysql://u@h/db").dialect
    d.is_mariadb = is_mariadb
    return d


def lite() -> Dialect:
    return sa.create_engine("sqlite://").dialect


def ddl(entity: type[Entity], dialect: Dialect) -> str:
    table = metadata_for(entity).tables[schema_of(entity).table]
    parts = [str(sa.schema.CreateTable(table).compile(dialect=dialect))]
    parts += [str(sa.schema.CreateIndex(ix).compile(dialect=dialect)) for ix in table.indexes]
    return "\n".join(parts)


def plan(entity: type[Entity], dialect: Dialect, backend: str = "x") -> Plan[Any]:
    schema = schema_of(entity)
    return Plan(schema, table_for(schema, sa.MetaData()), dialect, backend)


# -- mapping ---------------------------------------------------------------------------------------


@pytest.mark.parametrize(
    ("tp", "expected"),
    [
        (str, ("str", False)),
        (int, ("int", False)),
        (bool, ("bool", False)),
        (float, ("float", False)),
        (bytes, ("bytes", False)),
        (str | None, ("str", True)),
        (Annotated[int, msgspec.Meta(ge=0)], ("int", False)),
        (Annotated[str, msgspec.Meta(max_length=3)] | None, ("str", True)),
        (list[int], ("json", False)),
        (list[int] | None, ("json", True)),
        (dict[str, Nested], ("json", False)),
        (tuple[int, str], ("json", False)),
        (int | str, ("json", False)),
        (Nested, ("json", False)),
        (datetime.datetime, ("json", False)),
        (Any, ("json", True)),
    ],
)
def test_column_kind(tp: Any, expected: tuple[str, bool]) -> None:
    assert column_kind(tp) == expected


def test_metadata_for_builds_one_column_per_field_and_the_key_in_key_order() -> None:
    md = metadata_for(Wide, ByBytes)
    table = md.tables["unit_wide"]
    assert [c.name for c in table.columns] == [f.name for f in schema_of(Wide).fields]
    assert [c.name for c in table.primary_key.columns] == ["p", "s"]
    assert {c.name for c in table.columns if c.nullable} == {"note", "when"}
    (ix,) = table.indexes
    assert ix.name == "ix_unit_wide_by_label" and [c.name for c in ix.columns] == ["label", "rank", "p", "s"]
    assert metadata_for(Wide, metadata=md) is md and md.tables["unit_wide"] is table  # idempotent


def test_ddl_postgres() -> None:
    text = ddl(Wide, pg())
    assert 'p VARCHAR(255) COLLATE "C" NOT NULL' in text
    assert 'label VARCHAR(255) COLLATE "C" NOT NULL' in text  # index fields are key-like
    assert "note TEXT" in text and "items JSONB NOT NULL" in text and "raw BYTEA NOT NULL" in text
    assert "score DOUBLE PRECISION" in text and "flag BOOLEAN" in text and "rank BIGINT" in text
    assert "CREATE INDEX ix_unit_wide_by_label ON unit_wide (label, rank, p, s)" in text


def test_ddl_mariadb_and_mysql_use_binary_no_pad_collations() -> None:
    text = ddl(Wide, maria())
    assert "p VARCHAR(255) CHARACTER SET utf8mb4 COLLATE utf8mb4_nopad_bin NOT NULL" in text
    assert "note LONGTEXT" in text and "raw LONGBLOB" in text and "items JSON" in text
    assert "ENGINE=InnoDB" in text and "CHARSET=utf8mb4" in text
    assert "COLLATE utf8mb4_0900_bin" in ddl(Wide, maria(is_mariadb=False))
    assert "id VARBINARY(255) NOT NULL" in ddl(ByBytes, maria())
    assert "COLLATE utf8mb4_0900_bin" in ddl(Wide, mysql.dialect())


def test_ddl_sqlite_keeps_json_as_text() -> None:
    text = ddl(Wide, lite())
    assert "items TEXT NOT NULL" in text  # a declared JSON type would have NUMERIC affinity
    assert "p VARCHAR(255) NOT NULL" in text


def test_long_index_names_are_cut_but_stay_distinct() -> None:
    class Long(
        Entity,
        table="t" * 60,
        indexes=[Index("i" * 40 + "a", "x"), Index("i" * 40 + "b", "x")],
    ):
        id: PartitionKey[str]
        x: str

    names = [ix.name for ix in metadata_for(Long).tables["t" * 60].indexes]
    assert len(set(names)) == 2 and all(n is not None and len(str(n)) <= 60 for n in names)


@pytest.mark.parametrize(
    ("prefix", "expected"),
    [
        ("ab", "ac"),
        ("a\U0010ffff", "b"),
        ("\U0010ffff", None),
        ("a\ud7ff", "a\ue000"),  # the surrogate block is skipped
        (b"ab", b"ac"),
        (b"a\xff", b"b"),
        (b"\xff\xff", None),
    ],
)
def test_successor(prefix: str | bytes, expected: str | bytes | None) -> None:
    assert successor(prefix) == expected


# -- plans -----------------------------------------------------------------------------------------


@pytest.mark.parametrize("dialect", [pg(), maria(), lite()], ids=["postgres", "mysql", "sqlite"])
def test_statements_bind_every_value(dialect: Dialect) -> None:
    p = plan(Wide, dialect)
    for sql in (p.get, p.delete, p.upsert, p.insert_new, p.update_expect, p.delete_expect, p.get_many(8)):
        assert sql is not None
        assert "'" not in sql.text  # no literal values: everything is a parameter
    assert p.get.names == ("k0", "k1")
    assert len(p.upsert.names) == len(p.cols)


def test_upserts_are_dialect_specific() -> None:
    assert "ON CONFLICT (p, s) DO UPDATE" in plan(Wide, pg()).upsert.text
    assert "RETURNING" in plan(Wide, pg()).upsert.text
    assert "ON CONFLICT (p, s) DO UPDATE" in plan(Wide, lite()).upsert.text
    text = plan(Wide, maria()).upsert.text
    assert "ON DUPLICATE KEY UPDATE" in text and "last_insert_id(" in text.lower()
    assert "last_insert_id" not in plan(Wide, maria()).upsert_many(3).text.lower()
    assert "ON CONFLICT (p, s) DO NOTHING" in plan(Wide, pg()).insert_new.text
    assert "ON DUPLICATE" not in plan(Wide, maria()).insert_new.text  # a plain INSERT: duplicates raise


def test_query_statements() -> None:
    sql, order = plan(Wide, pg()).query("by_label", "begins_with", True, False, True)
    assert order.cols == ("rank", "p", "s")
    assert "LIKE" not in sql.text and "(unit_wide.rank, unit_wide.p, unit_wide.s) >" in sql.text
    assert "ORDER BY unit_wide.rank ASC, unit_wide.p ASC, unit_wide.s ASC" in sql.text
    my, _ = plan(Wide, maria()).query("by_label", None, False, True, True)
    assert " OR " in my.text and "DESC" in my.text  # MySQL range-scans an expanded OR only
    tbl, order = plan(Wide, lite()).query(None, "between", False, False, False)
    assert order.cols == ("s",) and tbl.args({"p0": "x", "s0": "a", "s1": "b", "lim": 3})[:4] == ("x", "a", "b", 3)


def test_row_values_checks_sql_limits() -> None:
    p = plan(Wide, pg())
    ok = Wide("s", "p", "l", items=[Nested(1)])
    vals = p.row_values(ok)
    assert vals[p.position["items"]] == '[{"a":1}]'
    with pytest.raises(ValidationError, match="255"):
        p.row_values(Wide("s", "p", "l" * (KEY_LENGTH + 1)))
    with pytest.raises(ValidationError, match="64-bit"):
        p.row_values(Wide("s", "p", "l", rank=-(2**63) - 1))
    with pytest.raises(ValidationError, match="NUL"):
        p.row_values(Wide("s", "p", "l", note="\x00"))
    p.row_values(Wide("s", "p", "l", score=math.nan))  # PostgreSQL stores NaN
    with pytest.raises(ValidationError, match="nan"):
        plan(Wide, lite()).row_values(Wide("s", "p", "l", score=math.nan))
    plan(Wide, lite()).row_values(Wide("s", "p", "l", score=math.inf, note="\x00"))
    with pytest.raises(ValidationError, match="inf"):
        plan(Wide, maria()).row_values(Wide("s", "p", "l", score=math.inf))
    with pytest.raises(ValidationError, match="255"):
        plan(ByBytes, lite()).check_key((b"x" * 256,))


def test_decoders() -> None:
    p = plan(Wide, lite())
    row = ["s", "p", "l", 1, b"r", 0.5, 1, None, '[{"a":2}]', '"2026-01-02T03:04:05Z"', 3]
    got = p.decode(row)
    assert got.flag is True and got.items == [Nested(2)] and got.when is not None and got.when.year == 2026
    kw = plan(KwOnly, pg()).decode([7, '["a"]'])
    assert kw == KwOnly(id=7, tags=["a"])
    assert plan(ByBytes, pg()).decode((b"k", True)) == ByBytes(b"k", True)


# -- config ----------------------------------------------------------------------------------------


def test_config_from_url() -> None:
    cfg = SqlStoreConfig.from_url(
        "postgresql://app:pw@db:5432/main?pool_size=7&pool_timeout=2s&pool_recycle=1h&page_size=50"
        "&command_timeout=500ms&ssl=require"
    )
    assert (cfg.pool_size, cfg.pool_timeout, cfg.pool_recycle, cfg.page_size) == (7, 2.0, 3600.0, 50)
    assert cfg.command_timeout == 0.5 and cfg.backend == "postgres"
    assert cfg.url == "postgresql://app:pw@db:5432/main?ssl=require"  # own params consumed, driver's kept
    assert "pw" not in repr(cfg) and "***" in repr(cfg)
    lite_cfg = SqlStoreConfig.from_url("sqlite+aiosqlite:////tmp/x.db?synchronous=NORMAL&busy_timeout=1s")
    assert (lite_cfg.synchronous, lite_cfg.busy_timeout, lite_cfg.url) == ("normal", 1.0, "sqlite+aiosqlite:////tmp/x.db")
    assert SqlStoreConfig.from_url("mariadb://root@h/db").backend == "mysql"
    assert isinstance(store_config("mysql+aiomysql://root@h/db?pool_size=2"), SqlStoreConfig)


@pytest.mark.parametrize(
    "url",
    [
        "postgresql://h/db?pool_sise=3",  # typo
        "sqlite:///x.db?ssl=require",  # a driver option of another backend
        "mysql://h/db?command_timeout=1",
        "postgresql://h/db?pool_size=0",
        "sqlite:///x.db?synchronous=sometimes",
        "postgresql+psycopg://h/db",
        "oracle://h/db",
    ],
)
def test_config_rejects(url: str) -> None:
    with pytest.raises(ConfigError):
        SqlStoreConfig.from_url(url)


def test_config_errors_hide_the_password() -> None:
    with pytest.raises(ConfigError) as info:
        SqlStoreConfig.from_url("postgresql://u:hunter2@h/db?nope=1")
    assert "hunter2" not in str(info.value)


def test_config_is_frozen() -> None:
    cfg = SqlStoreConfig(url="sqlite://")
    with pytest.raises(AttributeError):
        cfg.pool_size = 3  # type: ignore[misc]
