"""Values one layer accepts and another cannot hold: each is a ValidationError before any I/O, or it is
encoded so that every layer round-trips it. Run on every store × tier (regressions of defects found by a
black-box review)."""

from __future__ import annotations

import math
import uuid

import pytest

import tierstore
from _values import Ranked, Sample
from tierstore import ValidationError

pytestmark = pytest.mark.asyncio(loop_scope="session")

SQL = {"sqlite", "postgres", "mysql"}
Env = tuple[tierstore.Database, str, str]


def _round_trips(db: tierstore.Database) -> tuple[int, int]:
    """Round trips so far to the store and to the network tiers."""
    return db.store.stats.round_trips, sum(getattr(t.stats, "round_trips", 0) for t in db.cache.tiers)


def _id() -> str:
    return uuid.uuid4().hex[:12]


async def _cold_and_warm(repo: tierstore.Repository[Sample], key: str) -> list[Sample | None]:
    return [await repo.get(key), await repo.get(key), *(await repo.get_many([key, key]))]


async def test_an_integer_beyond_64_bits_is_refused_or_reads_back_through_every_tier(vdb: Env) -> None:
    db, store, _ = vdb
    repo = db.repository(Sample)
    item = Sample(_id(), n=10**20, meta={"big": -(10**30)})
    if store in SQL:
        with pytest.raises(ValidationError, match="64-bit"):
            await repo.put(item)
        assert await repo.get(item.id) is None
        return
    stored = await repo.put(item)
    assert stored.n == 10**20
    for got in await _cold_and_warm(repo, item.id):
        assert got == stored
    # a batch holding one such item is not failed as a whole
    other = await repo.put(Sample(_id(), n=1))
    assert await repo.get_many([other.id, item.id]) == [other, stored]


async def test_nan_nested_in_a_json_value_is_refused_or_reads_back(vdb: Env) -> None:
    db, store, _ = vdb
    repo = db.repository(Sample)
    for bad in ([1.0, math.nan], [math.inf], [-math.inf, 2.0]):
        item = Sample(_id(), readings=bad)
        if store == "memory":
            await repo.put(item)
            for got in await _cold_and_warm(repo, item.id):
                assert got is not None and len(got.readings) == len(bad)
                assert all(math.isnan(a) if math.isnan(b) else a == b for a, b in zip(got.readings, bad, strict=True))
            continue
        with pytest.raises(ValidationError, match=r"readings|NaN"):
            await repo.put(item)
        assert await repo.get(item.id) is None
        page = await repo.query(item.id)
        assert page.items == []


@pytest.mark.parametrize("text", ["\ud800", "a\udfffb", "ok \udc80"])
async def test_a_lone_surrogate_in_a_value_or_key_is_a_validation_error(vdb: Env, text: str) -> None:
    db, _, _ = vdb
    repo = db.repository(Sample)
    key = _id()
    for item in (Sample(key, s=text), Sample(key, tags=["x", text]), Sample(key, meta={text: 1})):
        with pytest.raises(ValidationError, match="surrogate"):
            await repo.put(item)
    assert await repo.get(key) is None
    for call in (lambda: repo.get(text), lambda: repo.get_many([text]), lambda: repo.delete(text),
                 lambda: repo.put(Sample(text)), lambda: repo.get(text, consistent=True),
                 lambda: repo.get_many([key, text], consistent=True)):
        with pytest.raises(ValidationError, match="surrogate"):
            await call()


async def test_nesting_a_thousand_levels_deep_is_a_validation_error(vdb: Env) -> None:
    db, _, _ = vdb
    repo = db.repository(Sample)
    deep: list[object] = []
    for _ in range(1200):
        deep = [deep]
    key = _id()
    with pytest.raises(ValidationError, match="nested more than 256"):
        await repo.put(Sample(key, meta={"d": deep}))
    assert await repo.get(key) is None


@pytest.mark.parametrize("arg", [None, 5, "abc", b"abc"])
async def test_batch_calls_take_only_iterables(vdb: Env, arg: object) -> None:
    db, _, _ = vdb
    repo = db.repository(Sample)
    for call in (repo.get_many, repo.delete_many, repo.put_many):
        with pytest.raises(ValidationError, match="iterable"):
            await call(arg)  # type: ignore[arg-type]
    with pytest.raises(ValidationError, match="iterable"):
        await repo.get_many(arg, consistent=True)  # type: ignore[arg-type]


async def test_a_nul_in_a_postgresql_key_is_refused_before_any_io(vdb: Env) -> None:
    db, store, _ = vdb
    repo = db.repository(Sample)
    key = f"nul\x00{_id()}"
    if store != "postgres":  # the other stores hold it
        stored = await repo.put(Sample(key, s="x"))
        assert await repo.get(key) == stored
        return
    before = _round_trips(db)
    for call in (lambda: repo.get(key), lambda: repo.get_many([key]), lambda: repo.get(key, consistent=True),
                 lambda: repo.put(Sample(key)), lambda: repo.delete(key), lambda: repo.delete_many([key])):
        with pytest.raises(ValidationError, match="NUL"):
            await call()
    assert _round_trips(db) == before


async def test_dynamodb_index_key_sizes_are_checked_before_any_request(vdb: Env) -> None:
    db, store, _ = vdb
    repo = db.repository(Ranked)
    player = _id()
    for board in ("b" * 2049, "é" * 1025):  # 2,049 and 2,050 UTF-8 bytes: over the 2,048 B partition key limit
        item = Ranked(player, "g1", board=board)
        if store != "dynamodb":
            continue
        before = db.store.stats.round_trips
        with pytest.raises(ValidationError, match="index by_board"):
            await repo.put(item)
        assert db.store.stats.round_trips == before
    if store == "dynamodb":
        with pytest.raises(ValidationError, match="index by_board"):
            await repo.put(Ranked(player, "g1", board=""))  # an empty index key is refused too
        ok = await repo.put(Ranked(player, "g1", board="é" * 1024))  # exactly 2,048 B
        assert await repo.get(player, "g1") == ok
