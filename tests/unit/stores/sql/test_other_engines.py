"""SQL Server and Oracle: their tables compile (``metadata_for`` DDL, for migrations), so do the store's key
statements (MERGE upserts, OFFSET/FETCH pages), and the store refuses their URLs with a ConfigError saying
why, before any I/O. Compiled only: no SQL Server or Oracle server runs here."""

from __future__ import annotations

import pytest
import sqlalchemy as sa
from sqlalchemy.dialects import mssql, oracle
from sqlalchemy.engine import Dialect

import tierstore
from tierstore import ConfigError, Entity
from tierstore.backends import schema_of
from tierstore.stores.sql import metadata_for
from tierstore.stores.sql.merge import MergeStatements
from tierstore.stores.sql.statements import Plan

from _sql import ByBytes, Wide

DIALECTS = [mssql.dialect(), oracle.dialect()]
IDS = ["mssql", "oracle"]


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


def statements(entity: type[Entity], dialect: Dialect) -> MergeStatements:
    schema = schema_of(entity)
    return MergeStatements(schema, metadata_for(entity, dialect=dialect.name).tables[schema.table], dialect)


def flat(text: str) -> str:
    return " ".join(text.split())


def marks(dialect: Dialect, n: int) -> list[str]:
    """The first ``n`` positional parameter markers the dialect renders."""
    return ["?"] * n if dialect.name == "mssql" else [f":{i}" for i in range(1, n + 1)]


@pytest.mark.parametrize("dialect", DIALECTS, ids=IDS)
def test_upsert_is_a_merge_with_every_value_bound(dialect: Dialect) -> None:
    st = statements(Wide, dialect)
    ncols = len(st.cols)
    for rows in (1, 3):
        sql = st.upsert if rows == 1 else st.upsert_many(rows)
        text = flat(sql.text)
        assert text.startswith("MERGE INTO unit_wide")
        on = text.index("tgt.p = src.p AND tgt.s = src.s")
        matched = text.index("WHEN MATCHED THEN UPDATE SET")
        assert on < matched < text.index("WHEN NOT MATCHED THEN INSERT")
        assert "tgt.version = tgt.version + 1" in text and "tgt.label = src.label" in text
        assert "tgt.p = src." not in text[matched:]  # keys are matched on, never updated
        assert sql.names == tuple(f"r{r}_{j}" for r in range(rows) for j in range(ncols))
        assert "'" not in text  # no literal: every value is a parameter
        if dialect.name == "mssql":
            assert text.count("?") == rows * ncols and "WITH (HOLDLOCK)" in text
            assert text.endswith("OUTPUT inserted.p, inserted.s, inserted.version;")
        else:
            assert f":{rows * ncols} " in text and f":{rows * ncols + 1}" not in text
            assert text.count("FROM dual") == rows and "RETURNING" not in text and "OUTPUT" not in text
    assert st.returning is (dialect.name == "mssql")


@pytest.mark.parametrize("dialect", DIALECTS, ids=IDS)
def test_insert_if_absent_is_a_merge_without_when_matched(dialect: Dialect) -> None:
    st = statements(Wide, dialect)
    text = flat(st.insert_new.text)
    assert text.startswith("MERGE INTO unit_wide") and "WHEN NOT MATCHED THEN INSERT" in text
    assert "WHEN MATCHED" not in text and "OUTPUT" not in text
    assert st.insert_new.names == tuple(f"r0_{j}" for j in range(len(st.cols)))


@pytest.mark.parametrize("dialect", DIALECTS, ids=IDS)
def test_key_reads_writes_and_versioned_update(dialect: Dialect) -> None:
    st = statements(Wide, dialect)
    k = marks(dialect, 3)
    assert flat(st.get.text).endswith(f"WHERE unit_wide.p = {k[0]} AND unit_wide.s = {k[1]}")
    assert st.get.names == ("k0", "k1")
    locked = flat(st.get_locked.text)
    assert ("FROM unit_wide WITH (UPDLOCK, ROWLOCK)" in locked) if dialect.name == "mssql" else locked.endswith(
        "FOR UPDATE"
    )
    delete = flat(st.delete.text)
    assert delete.startswith("DELETE FROM unit_wide")
    assert delete.endswith(f"unit_wide.p = {k[0]} AND unit_wide.s = {k[1]}")
    assert st.delete_expect is not None and st.delete_expect.names == ("k0", "k1", "expect")
    assert flat(st.delete_expect.text).endswith(f"AND unit_wide.version = {k[2]}")
    assert st.update_expect is not None and st.select_version is not None
    upd = flat(st.update_expect.text)
    assert upd.startswith("UPDATE unit_wide SET label=") and "WHERE unit_wide.p =" in upd
    assert st.update_expect.names[-3:] == ("k0", "k1", "expect")
    assert "v_version" in st.update_expect.names and "v_p" not in st.update_expect.names
    many = st.get_many(2)
    assert many.names == ("k0_0", "k0_1", "k1_0", "k1_1")  # composite keys: an OR of key equalities
    assert " OR " in many.text and "IN" not in many.text
    assert st.delete_many(2).names == many.names and st.select_versions(2).names == many.names
    assert flat(statements(ByBytes, dialect).get_many(3).text).endswith(f"IN ({', '.join(marks(dialect, 3))})")


@pytest.mark.parametrize("dialect", DIALECTS, ids=IDS)
def test_query_pages_with_offset_fetch_and_an_expanded_cursor(dialect: Dialect) -> None:
    st = statements(Wide, dialect)
    sql = st.query("by_label", "between", False, True, True)
    text = flat(sql.text)
    assert "ORDER BY unit_wide.rank DESC, unit_wide.p DESC, unit_wide.s DESC" in text
    assert text.endswith(f"FETCH FIRST {'?' if dialect.name == 'mssql' else ':7'} ROWS ONLY")
    assert ("OFFSET 0 ROWS" in text) is (dialect.name == "mssql") and "LIMIT" not in text and "TOP" not in text
    assert "(unit_wide.rank < " in text and "unit_wide.rank = " in text  # no row-value comparison
    assert "(unit_wide.rank, " not in text
    assert sql.names[0] == "p0" and sql.names[-1] == "lim" and "s1" in sql.names
    args = sql.args({"p0": "x", "s0": 1, "s1": 5, "c0": 3, "c1": "p", "c2": "s", "lim": 10})
    assert args[0] == "x" and args[-1] == 10
    assert flat(st.query(None, None, False, False, False).text).startswith("SELECT unit_wide.s, unit_wide.p")
    with pytest.raises(tierstore.ValidationError):
        st.query(None, "like", False, False, False)


@pytest.mark.parametrize("dialect", DIALECTS, ids=IDS)
def test_restores_copy_the_version_and_scans_page_in_key_order(dialect: Dialect) -> None:
    st = statements(Wide, dialect)
    text = flat(st.replace_many(2).text)
    assert text.startswith("MERGE INTO unit_wide") and "WHEN NOT MATCHED THEN INSERT" in text
    assert "tgt.version = src.version" in text and "tgt.version + 1" not in text and "OUTPUT" not in text
    assert st.replace_many(2).names == tuple(f"r{r}_{j}" for r in range(2) for j in range(len(st.cols)))
    scan = st.scan(True)
    text = flat(scan.text)
    assert "WHERE unit_wide.p > " in text and "ORDER BY unit_wide.p, unit_wide.s" in text
    assert text.endswith(f"FETCH FIRST {'?' if dialect.name == 'mssql' else ':3'} ROWS ONLY")
    assert scan.names == (("a0", "a0", "a1", "lim") if dialect.name == "mssql" else ("a0", "a1", "lim"))
    assert "WHERE" not in st.scan(False).text and st.scan(False).names == ("lim",)
