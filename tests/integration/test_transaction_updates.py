"""``tx.update`` and ``tx.check`` on every store, with and without cache tiers: a commit applies every action and
the next (cached) read sees it; a failed condition or a missing item cancels the whole transaction, names the
action and why, and leaves store and caches alike."""

from __future__ import annotations

import os
from typing import Any

import pytest

import tierstore
from tierstore import Entity, PartitionKey, SortKey, TransactionCanceled, Unsupported, ValidationError, Version

from _servers import STORES, TIERS, _marks, open_db


class Wallet(Entity, table="tx_upd_wallets"):
    owner: PartitionKey[str]
    id: SortKey[str]
    balance: int = 0
    status: str = "open"
    note: str | None = None
    tags: list[str] = []
    version: Version = 0


class Limit(Entity, table="tx_upd_limits"):
    owner: PartitionKey[str]
    frozen: bool = False


COMBOS = [
    pytest.param((s, t, mode), id=f"{s}-{t}-{mode}", marks=_marks(s, TIERS[t]))
    for s in STORES
    for t, mode in (("none", "invalidate"), ("memory+redis", "invalidate"), ("memory+redis", "write_through"))
    if t == "none" or s in ("sqlite", "dynamodb")
]


@pytest.fixture(params=COMBOS)
async def db(request: pytest.FixtureRequest, tmp_path: os.PathLike[str]) -> Any:
    store, tiers, mode = request.param
    database = await open_db(store, TIERS[tiers], tmp_path, policy=tierstore.CachePolicy(write_mode=mode),
                             entities=(Wallet, Limit))
    try:
        yield database
    finally:
        await database.aclose()


async def test_a_commit_applies_updates_under_checks(db: tierstore.Database) -> None:
    wallets, limits = db.repository(Wallet), db.repository(Limit)
    await wallets.put_many([Wallet("ann", "a", balance=10, note="n", tags=["x"]), Wallet("ann", "b", balance=1)])
    await limits.put(Limit("ann"))
    assert (await wallets.get("ann", "a")).balance == 10  # cached now, where there are tiers
    assert (await wallets.get("ann", "b")).balance == 1
    cached_limit = await limits.get("ann")
    async with db.transaction() as tx:
        tx.check(Limit, "ann", when=Limit.frozen == False)  # noqa: E712  (a condition, not a comparison)
        tx.update(Wallet, "ann", "a", add={"balance": -4}, remove=["note"], append={"tags": ["y"]},
                  when=Wallet.balance >= 4)
        tx.update(Wallet, "ann", "b", add={"balance": 4}, set={"status": "topped"})
        made = tx.put(Wallet("ann", "c", balance=7))
    assert tx.results[:2] == [None, None] and made.result().version == 1
    a, b = await wallets.get("ann", "a"), await wallets.get("ann", "b")
    assert (a.balance, a.note, a.tags, a.version) == (6, None, ["x", "y"], 2)
    assert (b.balance, b.status, b.version) == (5, "topped", 2)
    assert await wallets.get("ann", "a", consistent=True) == a
    assert await wallets.get("ann", "b", consistent=True) == b
    assert await limits.get("ann") == cached_limit  # a check writes nothing


async def test_a_failed_condition_cancels_everything(db: tierstore.Database) -> None:
    wallets, limits = db.repository(Wallet), db.repository(Limit)
    before = await wallets.put_many([Wallet("bob", "a", balance=3), Wallet("bob", "b", balance=0)])
    await limits.put(Limit("bob", frozen=True))
    assert [await wallets.get("bob", k) for k in ("a", "b")] == before
    with pytest.raises(TransactionCanceled) as canceled:
        async with db.transaction() as tx:
            tx.update(Wallet, "bob", "b", add={"balance": 5})
            tx.update(Wallet, "bob", "a", add={"balance": -5}, when=Wallet.balance >= 5)
            tx.check(Limit, "bob", when=Limit.frozen == False)  # noqa: E712
            tx.put(Wallet("bob", "new"))
    exc = canceled.value
    assert exc.reasons[0] is None and exc.reasons[3] is None
    assert exc.reasons[1] and "Wallet.balance >= 5" in exc.reasons[1]
    assert exc.reasons[2] and "Limit.frozen == False" in exc.reasons[2]
    message = str(exc)
    assert "action 2 of 4 (update Wallet ('bob', 'a'))" in message
    assert "action 3 of 4 (check Limit ('bob',))" in message
    assert [await wallets.get("bob", k) for k in ("a", "b", "new")] == [*before, None]
    assert await wallets.get_many([("bob", "a"), ("bob", "b")], consistent=True) == before


async def test_an_update_of_a_missing_item_or_a_check_of_one_cancels(db: tierstore.Database) -> None:
    wallets = db.repository(Wallet)
    await wallets.put(Wallet("cy", "a", balance=1))
    with pytest.raises(TransactionCanceled) as canceled:
        async with db.transaction() as tx:
            tx.update(Wallet, "cy", "a", add={"balance": 1})
            tx.update(Wallet, "cy", "gone", add={"balance": 1})
    assert canceled.value.reasons[0] is None
    assert canceled.value.reasons[1] == "update of an item that does not exist"
    with pytest.raises(TransactionCanceled) as canceled:
        async with db.transaction() as tx:
            tx.update(Wallet, "cy", "a", add={"balance": 1})
            tx.check(Limit, "cy", when=Limit.owner.exists())
    assert canceled.value.reasons[1] and "(no item)" in canceled.value.reasons[1]
    assert (await wallets.get("cy", "a")).balance == 1
    async with db.transaction() as tx:  # a missing item holds a condition on absent fields
        tx.check(Limit, "cy", when=Limit.owner.not_exists())
        tx.update(Wallet, "cy", "a", add={"balance": 1})
    assert (await wallets.get("cy", "a")).version == 2


async def test_bad_actions_fail_when_added() -> None:
    store = tierstore.MemoryStore()
    async with tierstore.connect(store=store) as db:
        tx = db.transaction()
        for call, words in [
            (lambda: tx.update(Wallet, "a", "b", set={"balance": "x"}), ["Wallet.balance"]),
            (lambda: tx.update(Wallet, "a", "b", set={"owner": "x"}), ["part of the key"]),
            (lambda: tx.update(Wallet, "a", "b"), ["at least one change"]),
            (lambda: tx.update(Wallet, "a", set={"balance": 1}), ["sort"]),
            (lambda: tx.update(Wallet, "a", "b", add={"balance": 1}, when=Wallet.status == 1), ["Wallet.status"]),
            (lambda: tx.check(Wallet, "a", "b", when=Limit.frozen == True), ["Limit"]),  # noqa: E712
            (lambda: tx.check(Wallet, "a", "b", when=None), ["needs a condition"]),  # type: ignore[arg-type]
            (lambda: tx.check("Wallet", "a", when=Wallet.balance == 1), ["entity class"]),  # type: ignore[arg-type]
        ]:
            with pytest.raises(ValidationError) as info:
                call()
            for w in words:
                assert w in str(info.value), (words, str(info.value))
        tx.update(Wallet, "a", "b", add={"balance": 1})
        with pytest.raises(ValidationError, match="once"):
            tx.check(Wallet, "a", "b", when=Wallet.balance == 1)
        assert len(tx.ops) == 1
    assert store.stats.round_trips == 0


async def test_a_store_without_conditions_refuses_them_when_added() -> None:
    class Plain(tierstore.MemoryStore):
        expressions = False

    async with tierstore.connect(store=Plain()) as db:
        tx = db.transaction()
        with pytest.raises(Unsupported, match="does not evaluate conditions"):
            tx.check(Wallet, "a", "b", when=Wallet.balance == 1)
        with pytest.raises(Unsupported, match="does not evaluate conditions"):
            tx.update(Wallet, "a", "b", add={"balance": 1})
        assert tx.ops == []
