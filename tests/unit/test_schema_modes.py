"""Schema modes (``create``/``verify``/``off``): the defaults per store, the URL parameter, the checks made
before any I/O, and what each mode does on an embedded store (SQLite, memory). The server stores' verification
is tested in tests/integration/stores/sql/test_verify.py."""

from __future__ import annotations

import pathlib
import sqlite3
from typing import Any

import pytest

import tierstore
from tierstore import ConfigError, Entity, MemoryStore, PartitionKey, SchemaMismatch, StoreError
from tierstore.db import split_schema_param


class Note(Entity, table="notes"):
    id: PartitionKey[str]
    text: str = ""


def _tables(path: pathlib.Path) -> set[str]:
    with sqlite3.connect(path) as conn:
        return {r[0] for r in conn.execute("SELECT name FROM sqlite_master WHERE type = 'table'")}


def test_defaults_are_create_for_embedded_stores_and_verify_for_servers(tmp_path: pathlib.Path) -> None:
    assert tierstore.connect("memory://").schema_mode == "create"
    assert tierstore.connect(f"sqlite+aiosqlite:///{tmp_path}/a.db").schema_mode == "create"
    assert tierstore.connect("postgresql+asyncpg://u@h/db").schema_mode == "verify"
    assert tierstore.connect("mysql+aiomysql://u@h/db").schema_mode == "verify"
    assert tierstore.connect("postgresql+asyncpg://u@h/db", schema="off").schema_mode == "off"
    assert tierstore.connect("memory://", create_tables=False).schema_mode == "off"
    assert tierstore.connect("postgresql+asyncpg://u@h/db", create_tables=True).schema_mode == "create"


def test_the_url_parameter_is_taken_off_the_url_and_the_rest_kept() -> None:
    url = "postgresql+asyncpg://u:pw@h/db?pool_size=3&schema=off&ssl=require"
    assert split_schema_param(url) == ("postgresql+asyncpg://u:pw@h/db?pool_size=3&ssl=require", "off")
    sqlite_url = "sqlite+aiosqlite:////abs/x.db"
    assert split_schema_param(f"{sqlite_url}?schema=create") == (sqlite_url, "create")
    assert split_schema_param("memory://") == ("memory://", None)
    db = tierstore.connect("postgresql+asyncpg://u@h/db?schema=create&pool_size=3")
    assert db.schema_mode == "create"
    assert db.store.config.pool_size == 3  # type: ignore[attr-defined]


@pytest.mark.parametrize(
    ("args", "kw", "needle"),
    [
        (("memory://?schema=sometimes",), {}, "schema must be one of create, verify, off"),
        (("memory://",), {"schema": "yes"}, "schema must be one of"),
        (("memory://?schema=create",), {"schema": "verify"}, "disagree"),
        (("memory://",), {"schema": "verify", "create_tables": True}, "disagree"),
        (("memory://",), {"create_tables": "no"}, "create_tables must be True or False"),
    ],
)
def test_bad_modes_are_config_errors_before_any_io(args: tuple[Any, ...], kw: dict[str, Any], needle: str) -> None:
    with pytest.raises(ConfigError, match=needle):
        tierstore.connect(*args, **kw)


class _Unverifiable:
    """A store without ``verify_schema`` (as a third-party store may be): everything else is a MemoryStore's.
    Delegation is by class-level properties, since runtime protocol checks on Python 3.12+ look attributes up
    statically (``__getattr__`` is not consulted)."""

    def __init__(self) -> None:
        self._inner = MemoryStore()


def _delegate(name: str) -> property:
    return property(lambda self: getattr(self._inner, name))


for _name in dir(MemoryStore()):
    if not _name.startswith("_") and _name not in ("verify_schema", "embedded"):
        setattr(_Unverifiable, _name, _delegate(_name))


def test_verify_needs_a_store_that_can_verify() -> None:
    store: Any = _Unverifiable()
    assert tierstore.connect(store).schema_mode == "create"
    with pytest.raises(ConfigError, match="cannot verify tables"):
        tierstore.connect(store, schema="verify")


async def test_verify_on_sqlite_reports_a_missing_table_and_creates_nothing(tmp_path: pathlib.Path) -> None:
    path = tmp_path / "v.db"
    async with tierstore.connect(f"sqlite+aiosqlite:///{path}?schema=verify") as db:
        with pytest.raises(SchemaMismatch) as info:
            await db.repository(Note).get("n1")
        [m] = info.value.mismatches
        assert (m.entity, m.table, m.problem) == ("Note", "notes", "the table does not exist")
        assert "CREATE TABLE notes" in m.fix and "alembic" in m.fix
        assert "notes" not in _tables(path)
        with pytest.raises(SchemaMismatch):
            await db.verify(Note)
        await db.create_tables(Note)
        await db.verify(Note)
        await db.repository(Note).put(Note("n1", "x"))
        assert await db.repository(Note).get("n1") == Note("n1", "x")


async def test_off_touches_nothing_and_a_missing_table_is_a_store_error(tmp_path: pathlib.Path) -> None:
    path = tmp_path / "o.db"
    async with tierstore.connect(f"sqlite+aiosqlite:///{path}", schema="off") as db:
        with pytest.raises(StoreError, match="no such table"):
            await db.repository(Note).get("n1")
    assert "notes" not in _tables(path)


async def test_create_creates_on_first_use(tmp_path: pathlib.Path) -> None:
    path = tmp_path / "c.db"
    async with tierstore.connect(f"sqlite+aiosqlite:///{path}") as db:
        assert await db.repository(Note).get("n1") is None
    assert "notes" in _tables(path)


async def test_memory_store_always_fits() -> None:
    async with tierstore.connect("memory://", schema="verify") as db:
        await db.verify(Note)
        assert await db.repository(Note).get("n1") is None
