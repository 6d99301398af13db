"""The ``Store`` seam: the store of record behind a repository.

A store takes validated input (keys are flat tuples checked by the schema) and returns decoded items.
It translates its client library's errors into tierstore errors; nothing else crosses this seam.
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass
from typing import TYPE_CHECKING, Any, Literal, Protocol, TypeVar, runtime_checkable

from tierstore.errors import ConfigError, Mismatch
from tierstore.model.schema import Key, Schema
from tierstore.query import Page, Query
from tierstore.stats import StoreStats

if TYPE_CHECKING:
    from tierstore.expressions.ast import Condition
    from tierstore.expressions.update import Changes

__all__ = [
    "SCHEMA_MODES",
    "Check",
    "Delete",
    "GetsByKey",
    "KeyRules",
    "Projects",
    "Put",
    "QueryMany",
    "Scannable",
    "ScatterGather",
    "SchemaMode",
    "SchemaVerifier",
    "Store",
    "Update",
    "WriteOp",
    "check_schema_mode",
]

T = TypeVar("T")
P = TypeVar("P")


@dataclass(frozen=True, slots=True)
class Put:
    """A transactional put. ``expect_version`` and ``if_not_exists`` as on ``Repository.put``."""

    item: Any
    if_not_exists: bool = False
    expect_version: int | None = None


@dataclass(frozen=True, slots=True)
class Delete:
    """A transactional delete of ``key`` (flat key tuple) of ``entity``."""

    entity: type[Any]
    key: Key
    expect_version: int | None = None


@dataclass(frozen=True, slots=True)
class Update:
    """A transactional partial update of ``key`` of ``entity``: ``changes`` (checked), under ``when``. The item
    must exist; its version advances by one. A store's ``transact`` returns ``None`` for it (DynamoDB's
    TransactWriteItems returns no items)."""

    entity: type[Any]
    key: Key
    changes: Changes
    when: Condition | None = None


@dataclass(frozen=True, slots=True)
class Check:
    """A transactional condition check: ``when`` must hold for what ``key`` of ``entity`` holds (a missing item
    has every field absent). Writes nothing; ``transact`` returns ``None`` for it."""

    entity: type[Any]
    key: Key
    when: Condition


WriteOp = Put | Delete | Update | Check


@runtime_checkable
class Store(Protocol):
    """The store of record. Every method may raise only tierstore errors."""

    name: str
    """Backend name for errors, stats and bench rows: ``memory``, ``sqlite``, ``postgres``, ``dynamodb``…"""
    stats: StoreStats

    async def open(self) -> None:
        """Connect (pools, clients). Called once by ``connect()`` before first use."""
        ...

    async def ensure_schema(self, schema: Schema[Any]) -> None:
        """Create the table and indexes of ``schema`` if they are missing. Idempotent."""
        ...

    async def truncate(self, schema: Schema[Any]) -> None:
        """Delete every item of the table (tests, resharding). The table stays."""
        ...

    async def get(self, schema: Schema[T], key: Key, *, consistent: bool = False) -> T | None: ...

    async def get_many(
        self, schema: Schema[T], keys: Sequence[Key], *, consistent: bool = False
    ) -> list[T | None]:
        """Results in request order; ``keys`` hold no duplicates."""
        ...

    async def put(
        self, schema: Schema[T], item: T, *, if_not_exists: bool = False, expect_version: int | None = None
    ) -> T:
        """Write ``item``; return it as stored (with the version field set to the stored version + 1).

        Raises ``ConditionFailed`` when ``if_not_exists`` finds an item or ``expect_version`` differs.
        """
        ...

    async def put_many(self, schema: Schema[T], items: Sequence[T]) -> list[T]:
        """Unconditional puts of distinct keys; returns the items as stored, in order."""
        ...

    async def delete(self, schema: Schema[Any], key: Key, *, expect_version: int | None = None) -> bool:
        """Delete; ``True`` if an item existed. ``expect_version`` fails with ``ConditionFailed``."""
        ...

    async def delete_many(self, schema: Schema[Any], keys: Sequence[Key]) -> None: ...

    async def query(self, schema: Schema[T], query: Query) -> Page[T]: ...

    async def transact(self, ops: Sequence[WriteOp]) -> list[Any]:
        """All or nothing; returns, per op, the stored item (``Put``) or ``None`` (``Delete``, ``Update``,
        ``Check``). ``Update`` and ``Check`` come only to a store with ``expressions = True``.

        Raises ``Unsupported`` where the store has no transactions, ``TransactionCanceled`` when a condition
        fails (nothing is written; its ``reasons`` say, per op, why it failed or ``None``).
        """
        ...

    async def aclose(self) -> None:
        """Release connections. Idempotent."""
        ...


@runtime_checkable
class KeyRules(Protocol):
    """A store whose keys obey a rule beyond the schema's (PostgreSQL text holds no NUL). The repository calls
    :meth:`check_key` before a read goes to the tiers, so a key the store would refuse is a ValidationError
    before any I/O, not a cached miss followed by a store error."""

    def check_key(self, schema: Schema[Any], key: Key) -> None: ...


@runtime_checkable
class Scannable(Protocol):
    """A store whose tables can be enumerated and restored exactly: what resharding needs."""

    async def scan(self, schema: Schema[T], *, after: Key | None = None, limit: int = 1000) -> list[T]:
        """Up to ``limit`` items of the table, in the store's scan order, after the item with key ``after``.

        Paging with ``after`` = the last key of the previous page enumerates every item once. The order is the
        key order where the store keeps one (SQL, memory); DynamoDB scans in its own hash order.
        """
        ...

    async def restore_many(self, schema: Schema[T], items: Sequence[T]) -> None:
        """Write ``items`` exactly as given (version fields kept, no conditions), replacing what is there."""
        ...


@runtime_checkable
class ScatterGather(Protocol):
    """A store over several shards that can run one query on every shard and merge the results."""

    async def scatter_gather(self, schema: Schema[T], query: Query, *, concurrency: int | None = None) -> list[T]:
        """``query`` on every shard, merged in sort-key order (then primary key), cut to ``query.limit``."""
        ...


@runtime_checkable
class Projects(Protocol):
    """A store that reads only some attributes of a query's items (``query(..., fields=Cls)``).

    Stores without it answer the whole items, which the repository cuts down to the projection.
    """

    async def query_projected(
        self, schema: Schema[Any], query: Query, cls: type[P], names: tuple[str, ...]
    ) -> Page[P]:
        """One page of ``query``, each item decoded straight into ``cls`` from its attributes ``names`` (fields
        of ``schema``'s entity, checked by the repository) — the store reads those plus the key attributes the
        page's cursor needs. A stored item whose read attributes do not decode raises as in :meth:`Store.query`
        (or is listed in ``Page.skipped`` for ``query.skip_undecodable``)."""
        ...


@runtime_checkable
class GetsByKey(Protocol):
    """A store whose batched read finds items by key anyway (SQL: rows carry their key columns): it answers a
    dict, which a join attaches from without building the ordered list and indexing it again.

    Stores without it are asked :meth:`Store.get_many`."""

    async def get_by_key(self, schema: Schema[T], keys: Sequence[Key]) -> dict[Key, T]:
        """The items of ``keys`` (validated flat tuples, without duplicates) that exist, by key as the store
        holds it; absent keys are left out. Raises as :meth:`Store.get_many`."""
        ...


@runtime_checkable
class QueryMany(Protocol):
    """A store that reads the items of many partitions in one request (one-to-many joins, ``Many``).

    Stores without it are asked one :meth:`Store.query` per partition (:func:`tierstore.backends.query_each`).
    """

    async def query_many(
        self,
        schema: Schema[T],
        partitions: Sequence[tuple[Any, ...]],
        *,
        index: str | None = None,
        limit: int | None = None,
        reverse: bool = False,
        concurrency: int = 16,
    ) -> list[list[T]]:
        """The items of each partition (of the table, or of ``index``), one list per partition in request
        order, each in the order of :meth:`Store.query` (descending if ``reverse``) and cut to its first
        ``limit`` items. ``partitions`` are validated flat tuples, without duplicates. A store that must send
        one request per partition sends at most ``concurrency`` at once."""
        ...


SchemaMode = Literal["create", "verify", "off"]
"""What a database does about the tables of an entity before its first I/O: ``create`` what is missing,
``verify`` that what exists fits (never creating or altering anything), or nothing (``off``)."""
SCHEMA_MODES: tuple[SchemaMode, ...] = ("create", "verify", "off")


def check_schema_mode(value: Any) -> SchemaMode:
    """``value`` if it is a schema mode, else a ``ConfigError`` naming the modes."""
    if value not in SCHEMA_MODES:
        raise ConfigError(f"schema must be one of {', '.join(SCHEMA_MODES)}; got {value!r}")
    return value  # type: ignore[no-any-return]


@runtime_checkable
class SchemaVerifier(Protocol):
    """A store that can check existing tables against entities without changing them (``schema="verify"``).

    A store that does not implement it is not verified, and its default schema mode is ``create``.
    """

    embedded: bool
    """``True`` for an in-process or file store (memory, SQLite): its default schema mode is ``create``;
    ``False`` for a server, whose tables are someone's to manage: the default is ``verify``."""

    async def verify_schema(self, schema: Schema[Any]) -> list[Mismatch]:
        """Every way the existing table (and its indexes) differs from what ``schema`` needs; empty if it fits.
        Reads the catalog only: creates and alters nothing."""
        ...
