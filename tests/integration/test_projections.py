"""Projections (``fields=``) on every store, with and without cache tiers: typed partial views checked before any
I/O, served by the caches like any read, and never leaving a partial item in a cache."""

from __future__ import annotations

import os
from typing import Any

import msgspec
import pytest

import tierstore
from tierstore import Entity, PartitionKey, SortKey, ValidationError, Version
from tierstore.query import ge

from _servers import STORES, TIERS, _marks, open_db


class Parcel(Entity, table="proj_parcels"):
    owner: PartitionKey[str]
    id: SortKey[str]
    weight: int = 0
    label: str | None = None
    body: bytes = b""
    tags: list[str] = []
    version: Version = 0


class Slim(msgspec.Struct):
    id: str
    weight: int


class Labelled(msgspec.Struct):
    label: str | None
    tags: list[str] = []


COMBOS = [
    pytest.param((s, t), id=f"{s}-{t}", marks=_marks(s, TIERS[t]))
    for s in STORES
    for t in ("none", "memory+redis")
    if t == "none" or s in ("sqlite", "dynamodb")
]


@pytest.fixture(params=COMBOS)
async def db(request: pytest.FixtureRequest, tmp_path: os.PathLike[str]) -> Any:
    store, tiers = request.param
    database = await open_db(store, TIERS[tiers], tmp_path, entities=(Parcel,))
    try:
        yield database
    finally:
        await database.aclose()


def trips(db: tierstore.Database) -> int:
    return int(db.store.stats.round_trips)


async def test_get_and_get_many_return_the_projection(db: tierstore.Database) -> None:
    parcels = db.repository(Parcel)
    await parcels.put_many([Parcel("ann", "p1", 5, "fragile", b"x" * 100, ["a"]), Parcel("ann", "p2", 7)])
    assert await parcels.get("ann", "p1", fields=Slim) == Slim("p1", 5)
    assert await parcels.get("ann", "p1", fields=Labelled) == Labelled("fragile", ["a"])
    assert await parcels.get("ann", "nope", fields=Slim) is None
    assert await parcels.get("ann", "p2", consistent=True, fields=Labelled) == Labelled(None, [])
    got = await parcels.get_many([("ann", "p2"), ("ann", "nope"), ("ann", "p1")], fields=Slim)
    assert got == [Slim("p2", 7), None, Slim("p1", 5)]


async def test_the_caches_hold_whole_items_only(db: tierstore.Database) -> None:
    parcels = db.repository(Parcel)
    whole = await parcels.put(Parcel("bob", "p1", 3, "l", b"body", ["t"]))
    assert await parcels.get("bob", "p1", fields=Slim) == Slim("p1", 3)  # a miss: the store is read
    before = trips(db)
    assert await parcels.get("bob", "p1") == whole  # the cache took the whole item, not the projection
    assert await parcels.get("bob", "p1", fields=Labelled) == Labelled("l", ["t"])
    if db.cache.tiers:
        assert trips(db) == before  # both served from the cached whole item
    updated = await parcels.update("bob", "p1", add={"weight": 1})
    assert await parcels.get("bob", "p1", fields=Slim) == Slim("p1", updated.weight)


async def test_queries_project_every_page(db: tierstore.Database) -> None:
    parcels = db.repository(Parcel)
    await parcels.put_many([Parcel("cy", f"p{i}", i, tags=["even"] if i % 2 == 0 else []) for i in range(7)])
    page = await parcels.query("cy", limit=3, fields=Slim)
    assert page.items == [Slim(f"p{i}", i) for i in range(3)] and page.cursor is not None
    rest = await parcels.query("cy", limit=3, cursor=page.cursor, fields=Slim)
    assert [s.id for s in rest.items] == ["p3", "p4", "p5"]
    heavy = await parcels.query("cy", sort=ge("p2"), where=Parcel.weight >= 4, reverse=True, fields=Slim).all()
    assert heavy == [Slim("p6", 6), Slim("p5", 5), Slim("p4", 4)]
    pages = [p.items async for p in parcels.query("cy", limit=4, fields=Labelled).pages()]
    assert [len(p) for p in pages] == [4, 3]
    everything = [x async for x in parcels.query("cy", fields=Labelled)]
    assert everything[0] == Labelled(None, ["even"]) and len(everything) == 7


async def test_a_projection_that_does_not_fit_fails_before_any_io() -> None:
    class Unknown(msgspec.Struct):
        id: str
        colour: str

    class Mistyped(msgspec.Struct):
        weight: str
        label: str

    class Empty(msgspec.Struct):
        pass

    store = tierstore.MemoryStore()
    async with tierstore.connect(store=store) as db:
        parcels = db.repository(Parcel)
        cases: list[tuple[Any, list[str]]] = [
            (Unknown, ["projection Unknown", "no field 'colour'"]),
            (Mistyped, ["weight is str in Mistyped, int in Parcel", "label is str in Mistyped"]),
            (Empty, ["no fields"]),
            (dict, ["msgspec.Struct"]),
            (Slim("a", 1), ["msgspec.Struct"]),
        ]
        for fields, words in cases:
            for call in (
                lambda f=fields: parcels.get("a", "b", fields=f),
                lambda f=fields: parcels.get_many([("a", "b")], fields=f),
                lambda f=fields: parcels.query("a", fields=f).all(),
            ):
                with pytest.raises(ValidationError) as info:
                    await call()
                for w in words:
                    assert w in str(info.value), (fields, str(info.value))
    assert store.stats.round_trips == 0
