"""Column kinds, generated tables, indexes and DDL per dialect, without a database (dialects compile only)."""

from __future__ import annotations

import datetime
from typing import Annotated, Any

import msgspec
import pytest
import sqlalchemy as sa
from sqlalchemy.dialects import mysql, postgresql
from sqlalchemy.engine import Dialect

from tierstore import ConfigError, Entity, Index, PartitionKey
from tierstore.backends import schema_of
from tierstore.stores.sql import SqlStoreConfig, metadata_for
from tierstore.stores.sql.tables import check_mysql_key_size, column_kind

from _sql import ByBytes, Nested, Wide, lite, maria, pg


def ddl(entity: type[Entity], dialect: Dialect) -> str:
    table = metadata_for(entity).tables[schema_of(entity).table]
    parts = [str(sa.schema.CreateTable(table).compile(dialect=dialect))]
    parts += [str(sa.schema.CreateIndex(ix).compile(dialect=dialect)) for ix in table.indexes]
    return "\n".join(parts)


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
        (datetime.datetime, ("datetime", False)),
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
    assert "note TEXT" in text and "items JSONB DEFAULT '[]' NOT NULL" in text and "raw BYTEA NOT NULL" in text
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
    assert "items TEXT DEFAULT '[]' NOT NULL" in text  # a declared JSON type would have NUMERIC affinity
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


def test_mysql_key_size_is_checked_before_the_ddl() -> None:
    class Wider(Entity, table="unit_wider", partition_key="a", sort_key="b", indexes=[Index("by_cd", "c", "d")]):
        a: str
        b: str
        c: str
        d: str

    check_mysql_key_size(schema_of(Wide))  # (p, s) and (label, rank, p, s) fit 3072 bytes
    with pytest.raises(ConfigError, match="index by_cd"):
        check_mysql_key_size(schema_of(Wider))  # c, d, a, b: 4 × 1020 bytes


def test_renamed_fields_are_column_names_keyed_by_field() -> None:
    class Renamed(Entity, table="unit-renamed", rename="camel"):
        customer_id: PartitionKey[str]
        display_name: str = msgspec.field(default="", name="name")

    t = metadata_for(Renamed).tables["unit-renamed"]
    assert [(c.key, c.name) for c in t.columns] == [("customer_id", "customerId"), ("display_name", "name")]
    assert [c.name for c in t.primary_key.columns] == ["customerId"]
    ddl = str(sa.schema.CreateTable(t).compile(dialect=postgresql.dialect()))
    assert 'CREATE TABLE "unit-renamed"' in ddl and '"customerId"' in ddl


def test_two_entities_on_one_sql_table_are_a_config_error() -> None:
    class First(Entity, table="unit_shared"):
        id: PartitionKey[str]
        a: int = 0

    class Second(Entity, table="unit_shared"):
        id: PartitionKey[str]
        b: str = ""

    with pytest.raises(ConfigError, match="an SQL table holds one entity"):
        metadata_for(First, Second)


def test_sql_table_names_are_checked_before_any_io() -> None:
    class Dotted(Entity, table="app.orders"):
        id: PartitionKey[str]

    with pytest.raises(ConfigError, match="pg_schema"):
        metadata_for(Dotted)


@pytest.mark.parametrize(
    ("url", "needle"),
    [
        ("mysql+aiomysql://u@h/db?pg_schema=app", "unknown parameter"),
        ("postgresql+asyncpg://u@h/db?pg_schema=app;drop", "must be a schema name"),
    ],
)
def test_pg_schema_is_checked(url: str, needle: str) -> None:
    with pytest.raises(ConfigError, match=needle):
        SqlStoreConfig.from_url(url)
    assert SqlStoreConfig.from_url("postgresql+asyncpg://u@h/db?pg_schema=app").pg_schema == "app"


def test_number_and_bool_defaults_become_server_defaults() -> None:
    t = metadata_for(Wide).tables["unit_wide"]
    ddl = " ".join(str(sa.schema.CreateTable(t).compile(dialect=postgresql.dialect())).split())
    assert "rank BIGINT DEFAULT 0 NOT NULL" in ddl
    assert "flag BOOLEAN DEFAULT false NOT NULL" in ddl
    assert "score DOUBLE PRECISION DEFAULT 0.0 NOT NULL" in ddl
    assert "note TEXT," in ddl and "label VARCHAR(255) COLLATE \"C\" NOT NULL" in ddl  # no default on text


class Defaults(Entity, table="unit_defaults"):
    id: PartitionKey[str]
    label: str = "it's a \\ default: x"
    tags: list[str] = []
    at: datetime.datetime = datetime.datetime(2026, 1, 1, tzinfo=datetime.UTC)
    day: datetime.date = datetime.date(2026, 1, 2)
    made: datetime.datetime = msgspec.field(default_factory=lambda: datetime.datetime.now(datetime.UTC))


def _ddl_for(target: str, dialect: Dialect) -> str:
    table = metadata_for(Defaults, dialect=target).tables["unit_defaults"]
    return str(sa.schema.CreateTable(table).compile(dialect=dialect))


def test_defaults_become_column_defaults_per_database() -> None:
    text = _ddl_for("postgresql", pg())
    assert "label TEXT DEFAULT 'it''s a \\ default: x' NOT NULL" in text
    assert "tags JSONB DEFAULT '[]' NOT NULL" in text
    assert "at TIMESTAMP WITH TIME ZONE DEFAULT '2026-01-01T00:00:00.000000+00:00' NOT NULL" in text
    assert "day DATE DEFAULT '2026-01-02' NOT NULL" in text
    assert "made TIMESTAMP WITH TIME ZONE NOT NULL" in text  # a factory's value is not a constant
    maria_text = _ddl_for("mariadb", maria())
    assert "label LONGTEXT CHARACTER SET utf8mb4 NOT NULL DEFAULT 'it''s a \\\\ default: x'" in maria_text
    assert "at DATETIME(6) NOT NULL DEFAULT '2026-01-01 00:00:00.000000'" in maria_text
    # MySQL 8 takes defaults on TEXT/JSON columns as expressions only
    mysql_text = _ddl_for("mysql", maria(is_mariadb=False))
    assert "label LONGTEXT CHARACTER SET utf8mb4 NOT NULL DEFAULT ('it''s a \\\\ default: x')" in mysql_text
    assert "tags JSON NOT NULL DEFAULT ('[]')" in mysql_text
    assert "at TEXT DEFAULT '2026-01-01T00:00:00.000000+00:00' NOT NULL" in _ddl_for("sqlite", lite())


def test_a_connected_dialect_tells_mariadb_from_mysql() -> None:
    key = metadata_for(Defaults, dialect=maria()).tables["unit_defaults"].c.id.type
    assert getattr(key, "collation", None) == "utf8mb4_nopad_bin"
    key = metadata_for(Defaults, dialect=maria(is_mariadb=False)).tables["unit_defaults"].c.id.type
    assert getattr(key, "collation", None) == "utf8mb4_0900_bin"
    with pytest.raises(ConfigError, match="postgresql, mysql, mariadb, sqlite"):
        metadata_for(Defaults, dialect="db2")
