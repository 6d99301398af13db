"""Conditions on nested fields through the repository on every store: filters, ``when=`` of writes and updates
read inside Struct and ``dict`` fields (the SQL stores inside the JSON column); a leaf SQL cannot compare is
``Unsupported`` before any I/O."""

from __future__ import annotations

import os
from typing import Any

import msgspec
import pytest

import tierstore
from tierstore import ConditionFailed, Entity, PartitionKey, SortKey, Unsupported, attr

from _servers import STORES, TIERS, _marks, open_db


class Place(msgspec.Struct, rename="camel"):
    city_name: str
    floor: int = 0
    blob: bytes = b""
    labels: list[str] = []


class Site(Entity, table="nested_cond_sites"):
    owner: PartitionKey[str]
    id: SortKey[str]
    place: Place | None = None
    counts: dict[str, int] = {}


@pytest.fixture(params=[pytest.param(s, marks=_marks(s, ())) for s in STORES])
async def db(request: pytest.FixtureRequest, tmp_path: os.PathLike[str]) -> Any:
    database = await open_db(request.param, TIERS["none"], tmp_path, entities=(Site,))
    try:
        yield database
    finally:
        await database.aclose()


async def test_filters_and_conditions_on_nested_fields(db: tierstore.Database) -> None:
    sites = db.repository(Site)
    await sites.put_many([
        Site("o", "s1", Place("Oslo", 3), {"visits": 5}),
        Site("o", "s2", Place("Rome", 1)),
        Site("o", "s3"),
    ])
    place, counts = attr(Site.place), attr(Site.counts)
    assert [s.id for s in await sites.query("o", where=place.city_name == "Oslo").all()] == ["s1"]
    assert [s.id for s in await sites.query("o", where=~(place.floor >= 2)).all()] == ["s2", "s3"]
    assert [s.id for s in await sites.query("o", where=counts.visits.exists()).all()] == ["s1"]
    assert [s.id for s in await sites.query("o", where=place.city_name.begins_with("R")).all()] == ["s2"]
    updated = await sites.update("o", "s2", set={"counts": {"visits": 1}}, when=place.floor == 1)
    assert updated.counts == {"visits": 1}
    with pytest.raises(ConditionFailed):
        await sites.update("o", "s1", set={"counts": {}}, when=counts.visits < 5)
    assert await sites.count("o", where=counts.visits >= 1) == 2


async def test_a_leaf_sql_cannot_compare_is_unsupported_before_any_io(db: tierstore.Database) -> None:
    if not db.store.name.startswith(("sqlite", "postgres", "mysql", "mariadb")):
        pytest.skip("only the SQL stores refuse these leaves")
    sites = db.repository(Site)
    before = db.store.stats.round_trips
    for cond in (attr(Site.place).blob == b"x", attr(Site.place).labels.contains("x")):
        with pytest.raises(Unsupported, match="str, int, float and bool"):
            await sites.query("o", where=cond).all()
    assert db.store.stats.round_trips == before
