"""Helpers of the SQL store tests (tests/unit/stores/sql, tests/integration/stores/sql): sample entities,
dialects that compile without a server, and a store opened on each backend.

Tables of the integration entities carry a per-run suffix, so concurrent runs never share rows.
"""

from __future__ import annotations

import datetime
import enum
import os
import uuid
from typing import Any

import msgspec
import pytest
import sqlalchemy as sa
from sqlalchemy.engine import Dialect
from sqlalchemy.ext.asyncio import create_async_engine

from tierstore import Entity, Index, PartitionKey, SortKey, Version
from tierstore.backends import schema_of
from tierstore.stores.sql import SqlStore, SqlStoreConfig
from tierstore.stores.sql.statements import Plan
from tierstore.stores.sql.tables import table_for

from _servers import MYSQL_URL, PG_URL, require

# -- unit: entities and dialects (no database) -----------------------------------------------------


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


def plan(entity: type[Entity], dialect: Dialect, backend: str = "x") -> Plan[Any]:
    schema = schema_of(entity)
    return Plan(schema, table_for(schema, sa.MetaData()), dialect, backend)


# -- integration: entities and stores on real databases --------------------------------------------

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


K = schema_of(Kinds)
D = schema_of(Doc)
B = schema_of(Bin)
F = schema_of(Frozen)
