"""Sparse indexes: an index field may be ``X | None``; items whose value is None are absent from the index, and
None is never a query value (a ValidationError before any I/O). The stores' side is the shipped contract
(``test_sparse_index_*`` in tests/contract/test_stores.py); here the declaration, the repository's checks and the
query cache."""

from __future__ import annotations

import typing

import pytest

import tierstore
from tierstore import ConfigError, Entity, Index, ValidationError, eq
from tierstore.backends import schema_of
from tierstore.model import PartitionKey, SortKey
from tierstore.model.schema import index_key_type


class Task(
    Entity, table="ts_sparse_tasks",
    indexes=[Index("by_owner", "owner", "due"), Index("by_team", ("team", "owner"))],
):
    project: PartitionKey[str]
    id: SortKey[str]
    owner: str | None = None
    due: typing.Optional[int] = None  # noqa: UP045  # the typing spelling is accepted too
    team: str = "core"


def test_optional_index_fields_make_the_index_sparse() -> None:
    s = schema_of(Task)
    assert s.sparse == {"owner", "due"}
    assert index_key_type(s.field_types["owner"]) is str and index_key_type(s.field_types["due"]) is int
    assert index_key_type(str | int | None) is None and index_key_type(float | None) is None


@pytest.mark.parametrize("tp", ["float | None", "str | int | None", "list[str] | None"])
def test_an_optional_index_field_still_needs_a_key_type(tp: str) -> None:
    with pytest.raises(ConfigError, match="must be str, int or bytes, or one of them"):
        type("X", (Entity,), {"__annotations__": {"a": PartitionKey[str], "b": eval(tp)}, "b": None},  # noqa: S307
             table="x", indexes=[Index("i", "b")])


async def test_a_query_skips_items_without_the_value_and_refuses_none() -> None:
    async with tierstore.connect("memory://") as db:
        tasks = db.repository(Task)
        await tasks.put_many([Task("p", "a", "ann", 3), Task("p", "b", None, 1), Task("p", "c", "ann", None),
                              Task("q", "d", "ann", 1)])
        assert [t.id for t in await tasks.query("ann", index="by_owner").all()] == ["d", "a"]
        assert [t.id for t in await tasks.query(("core", "ann"), index="by_team").all()] == ["a", "c", "d"]
        trips = db.store.stats.round_trips
        with pytest.raises(ValidationError, match="None is no key value"):
            tasks.query(None, index="by_owner")
        with pytest.raises(ValidationError, match="None is no key value"):
            tasks.query(("core", None), index="by_team")
        with pytest.raises(ValidationError, match="None is no key value"):
            tasks.query("ann", index="by_owner", sort=eq(None))
        with pytest.raises(ValidationError, match="is str, got int"):
            tasks.query(5, index="by_owner")
        assert db.store.stats.round_trips == trips  # refused before any I/O


async def test_the_query_cache_forgets_an_item_that_leaves_a_sparse_index() -> None:
    async with tierstore.connect("memory://", ["memory://"], query_cache=True) as db:
        tasks = db.repository(Task)
        await tasks.put_many([Task("p", "a", "ann", 3), Task("p", "b", "ann", 1)])
        assert [t.id for t in await tasks.query("ann", index="by_owner").all()] == ["b", "a"]
        trips = db.store.stats.round_trips
        assert [t.id for t in await tasks.query("ann", index="by_owner").all()] == ["b", "a"]
        assert db.store.stats.round_trips == trips  # served by the query cache
        await tasks.put(Task("p", "b", "ann", None), check_version=False)  # due cleared: out of by_owner
        assert [t.id for t in await tasks.query("ann", index="by_owner").all()] == ["a"]
        await tasks.update("p", "a", remove=["owner"])
        assert await tasks.query("ann", index="by_owner").all() == []
        assert (await tasks.get("p", "a")) == Task("p", "a", None, 3)
