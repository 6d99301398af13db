"""SQL Server and Oracle: their tables compile (``metadata_for`` DDL, for migrations), and the store refuses
them with a ConfigError saying why, before any I/O. Compiled only: no SQL Server or Oracle server runs here."""

from __future__ import annotations

import pytest
import sqlalchemy as sa
from sqlalchemy.dialects import mssql, oracle
from sqlalchemy.engine import Dialect

import tierstore
from tierstore import ConfigError, Entity
from tierstore.backends import schema_of
from tierstore.stores.sql import metadata_for
from tierstore.stores.sql.statements import Plan

from _sql import ByBytes, Wide


def ddl(entity: type[Entity], dialect: Dialect, target: str | None) -> str:
    table = metadata_for(entity, dialect=target).tables[schema_of(entity).table]
    parts = [str(sa.schema.CreateTable(table).compile(dialect=dialect))]
    parts += [str(sa.schema.CreateIndex(ix).compile(dialect=dialect)) for ix in table.indexes]
    return "\n".join(" ".join(p.split()) for p in parts)


@pytest.mark.parametrize("target", ["mssql", None])
def test_sql_server_ddl(target: str | None) -> None:
    text = ddl(Wide, mssql.dialect(), target)
    # keys compare by code unit (binary collation), not by the database's case-insensitive default
    assert "p NVARCHAR(255) COLLATE Latin1_General_100_BIN2 NOT NULL" in text
    assert "note NVARCHAR(max) NULL" in text and "items NVARCHAR(max) NOT NULL DEFAULT '[]'" in text
    assert "raw VARBINARY(max) NOT NULL" in text and "[when] DATETIMEOFFSET NULL" in text
    assert "flag BIT NOT NULL DEFAULT 0" in text and "rank BIGINT NOT NULL DEFAULT 0" in text
    assert "PRIMARY KEY (p, s)" in text
    assert "CREATE INDEX ix_unit_wide_by_label ON unit_wide (label, rank, p, s)" in text
    assert "id VARBINARY(255) NOT NULL" in ddl(ByBytes, mssql.dialect(), target)


@pytest.mark.parametrize("target", ["oracle", None])
def test_oracle_ddl(target: str | None) -> None:
    text = ddl(Wide, oracle.dialect(), target)
    assert "p VARCHAR2(255 CHAR) NOT NULL" in text  # compared bytewise (NLS_COMP=BINARY): code-point order
    assert "note NCLOB" in text and "items NCLOB DEFAULT '[]' NOT NULL" in text
    assert "TIMESTAMP WITH TIME ZONE" in text and "rank NUMBER(19) DEFAULT 0 NOT NULL" in text
    assert "CREATE INDEX ix_unit_wide_by_label ON unit_wide (label, rank, p, s)" in text
    assert "id RAW(255) NOT NULL" in ddl(ByBytes, oracle.dialect(), target)


@pytest.mark.parametrize("dialect", [mssql.dialect(), oracle.dialect()], ids=["mssql", "oracle"])
def test_the_store_has_no_statements_for_them(dialect: Dialect) -> None:
    schema = schema_of(Wide)
    table = metadata_for(Wide, dialect=dialect.name).tables[schema.table]
    with pytest.raises(ConfigError, match="MERGE"):
        Plan(schema, table, dialect, "sql")


@pytest.mark.parametrize("url", ["mssql+aioodbc://app:secret@db.example/app", "oracle+oracledb://app:secret@db/app"])
def test_their_urls_are_a_config_error_naming_what_is_missing(url: str) -> None:
    with pytest.raises(ConfigError) as info:
        tierstore.connect(url)
    text = str(info.value)
    assert "does not run on" in text and "upsert" in text and "MERGE" in text and "metadata_for" in text
    assert "secret" not in text
