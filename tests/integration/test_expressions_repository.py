"""Updates, conditions and filters through the repository, with and without cache tiers, on every store: what
a read returns after each of them is what the store holds (the caches forget or take the returned item)."""

from __future__ import annotations

import os
from typing import Any

import pytest

import tierstore
from tierstore import ConditionFailed, Entity, NotFound, PartitionKey, SortKey, ValidationError, Version, attr

from _servers import STORES, TIERS, _marks, open_db


class Account(Entity, table="expr_repo_accounts"):
    owner: PartitionKey[str]
    id: SortKey[str]
    balance: int = 0
    status: str = "open"
    note: str | None = None
    tags: list[str] = []
    version: Version = 0


# Every store without tiers; the tiers' two write modes over SQLite (what the caches do after a write does not
# depend on the store, and the contract suite runs the same operations on every store).
COMBOS = [
    pytest.param((s, t, mode), id=f"{s}-{t}-{mode}", marks=_marks(s, TIERS[t]))
    for s in STORES
    for t, mode in (("none", "invalidate"), ("memory+redis", "invalidate"), ("memory+redis", "write_through"))
    if t == "none" or s == "sqlite"
]


@pytest.fixture(params=COMBOS)
async def accounts(request: pytest.FixtureRequest, tmp_path: os.PathLike[str]) -> Any:
    store, tiers, mode = request.param
    db = await open_db(store, TIERS[tiers], tmp_path, policy=tierstore.CachePolicy(write_mode=mode),
                       entities=(Account,))
    try:
        yield db.repository(Account)
    finally:
        await db.aclose()


async def test_update_is_seen_by_the_next_read(accounts: Any) -> None:
    repo = accounts
    await repo.put(Account("ann", "a1", balance=10, note="hi", tags=["x"]))
    assert (await repo.get("ann", "a1")).balance == 10  # cached now, where there are tiers
    new = await repo.update("ann", "a1", add={"balance": 5}, set={"status": "frozen"}, remove=["note"],
                            append={"tags": ["y"]})
    assert (new.balance, new.status, new.note, new.tags, new.version) == (15, "frozen", None, ["x", "y"], 2)
    assert await repo.get("ann", "a1") == new
    assert await repo.get("ann", "a1", consistent=True) == new


async def test_failed_conditions_leave_store_and_caches_alike(accounts: Any) -> None:
    repo = accounts
    stored = await repo.put(Account("ann", "a2", balance=3))
    assert await repo.get("ann", "a2") == stored
    with pytest.raises(ConditionFailed) as failed:
        await repo.update("ann", "a2", add={"balance": -5}, when=Account.balance >= 5)
    assert failed.value.current == stored
    with pytest.raises(ConditionFailed):
        await repo.put(Account("ann", "a2", balance=0), when=Account.status == "closed")
    with pytest.raises(ConditionFailed):
        await repo.delete("ann", "a2", when=Account.balance > 100)
    assert await repo.get("ann", "a2") == stored
    gone = await repo.delete("ann", "a2", when=Account.balance == 3)
    assert gone is True and await repo.get("ann", "a2") is None
    with pytest.raises(NotFound):
        await repo.update("ann", "a2", set={"status": "x"})
    assert await repo.get("ann", "a2") is None


async def test_filtered_queries_see_updates(accounts: Any) -> None:
    repo = accounts
    await repo.put_many([Account("bob", f"b{i}", balance=i) for i in range(6)])
    rich = repo.query("bob", where=Account.balance >= 4)
    assert [a.id for a in await rich.all()] == ["b4", "b5"]
    await repo.update("bob", "b1", add={"balance": 10})
    assert [a.id for a in await repo.query("bob", where=Account.balance >= 4).all()] == ["b1", "b4", "b5"]
    tagged = await repo.query("bob", where=attr(Account.tags).contains("vip")).all()
    assert tagged == []


async def test_bad_updates_fail_before_any_io() -> None:
    store = tierstore.MemoryStore()
    async with tierstore.connect(store=store) as db:
        repo = db.repository(Account)
        for kwargs, words in [
            ({"set": {"balance": "x"}}, ["Account.balance", "'x'"]),
            ({"set": {"owner": "x"}}, ["part of the key"]),
            ({"set": {"version": 3}}, ["version"]),
            ({"add": {"status": 1}}, ["Account.status", "int or float"]),
            ({"add": {"balance": 1.5}}, ["Account.balance", "1.5"]),
            ({"remove": ["balance"]}, ["cannot be None"]),
            ({"append": {"status": ["x"]}}, ["list field"]),
            ({"append": {"tags": [1]}}, ["Account.tags"]),
            ({"set": {"nope": 1}}, ["no field 'nope'"]),
            ({"set": {"balance": 1}, "add": {"balance": 1}}, ["twice"]),
            ({}, ["at least one change"]),
            ({"set": {"balance": 1}, "when": Account.status == 3}, ["Account.status"]),
        ]:
            with pytest.raises(ValidationError) as info:
                await repo.update("ann", "a1", **kwargs)
            for w in words:
                assert w in str(info.value), (kwargs, str(info.value))
    assert store.stats.round_trips == 0


async def test_scan_and_count_are_explicit_whole_table_reads(accounts: Any) -> None:
    repo = accounts
    await repo.put_many([Account(o, f"s{i}", balance=i) for o in ("cy", "dee") for i in range(7)])
    everything = [a async for a in repo.scan(page_size=3)]
    assert sorted((a.owner, a.id) for a in everything) == sorted((o, f"s{i}") for o in ("cy", "dee") for i in range(7))
    rich = sorted([(a.owner, a.id) async for a in repo.scan(where=Account.balance >= 5, page_size=4)])
    assert rich == [("cy", "s5"), ("cy", "s6"), ("dee", "s5"), ("dee", "s6")]
    assert await repo.count() == 14
    assert await repo.count(where=Account.balance < 2) == 4
    assert await repo.count("cy") == 7
    assert await repo.count("cy", sort=tierstore.ge("s3"), where=Account.balance <= 4) == 2
    with pytest.raises(ValidationError):
        repo.scan(where=Account.balance == "x")
    with pytest.raises(ValidationError):
        await repo.count(sort=tierstore.ge("s3"))


async def test_a_sharded_store_scans_only_when_told_to() -> None:
    sharded = tierstore.ShardedStoreConfig(router="m1=0-511,m2=512-1023", stores={"m1": "memory://", "m2": "memory://"})
    async with tierstore.connect(store=sharded.build()) as db:
        repo = db.repository(Account)
        await repo.put_many([Account(f"o{i}", "a", balance=i) for i in range(20)])
        with pytest.raises(tierstore.Unsupported, match="scatter_gather=True"):
            repo.scan()
        with pytest.raises(tierstore.Unsupported, match="scatter_gather=True"):
            await repo.count()
        assert await repo.count(scatter_gather=True) == 20
        assert await repo.count(where=Account.balance >= 15, scatter_gather=True) == 5
        assert await repo.count("o3") == 1  # one partition lives on one shard: no scatter


async def test_scatter_gather_filters_on_every_shard() -> None:
    sharded = tierstore.ShardedStoreConfig(router="m1=0-511,m2=512-1023", stores={"m1": "memory://", "m2": "memory://"})
    async with tierstore.connect(store=sharded.build()) as db:
        repo = db.repository(Account)
        await repo.put_many([Account(f"o{i}", "a", balance=i) for i in range(20)])
        got = await repo.scatter_gather("o7", where=Account.balance >= 5)
        assert [a.owner for a in got] == ["o7"]
        assert await repo.scatter_gather("o7", where=Account.balance < 5) == []
