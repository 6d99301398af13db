"""The contract suite: written once, run on every store × tier combination (see _servers.MATRIX)."""

from __future__ import annotations

import time

import pytest

import tierstore
from tierstore import (
    ConditionFailed,
    Database,
    TransactionCanceled,
    Unsupported,
    ValidationError,
    begins_with,
    between,
    eq,
    ge,
    gt,
    le,
    lt,
)

from _models import Blob, Customer, Event, Order


async def test_put_get_roundtrip_and_version(db: Database) -> None:
    customers = db.repository(Customer)
    stored = await customers.put(Customer("c1", "Ann", "ann@example.com", ["a", "b"]))
    assert stored.version == 1
    got = await customers.get("c1")
    assert got == stored
    again = await customers.put(Customer("c1", "Ann B", "ann@example.com", version=stored.version))
    assert again.version == 2
    assert await customers.get("c1") == again


async def test_missing_is_none_and_stays_correct_after_insert(db: Database) -> None:
    customers = db.repository(Customer)
    assert await customers.get("nobody") is None
    assert await customers.get("nobody") is None
    await customers.put(Customer("nobody", "Now here"))
    got = await customers.get("nobody")
    assert got is not None and got.name == "Now here"


async def test_read_your_writes_through_tiers(db: Database) -> None:
    orders = db.repository(Order)
    stored = await orders.put(Order("c1", "o1", 100))
    for total in (200, 300, 400):
        await orders.get("c1", "o1")  # warm every tier
        stored = await orders.put(Order("c1", "o1", total, version=stored.version))
        got = await orders.get("c1", "o1")
        assert got is not None and got.total_cents == total


async def test_delete(db: Database) -> None:
    orders = db.repository(Order)
    await orders.put(Order("c1", "o1", 100))
    assert await orders.get("c1", "o1") is not None
    assert await orders.delete("c1", "o1") is True
    assert await orders.get("c1", "o1") is None
    assert await orders.delete("c1", "o1") is False


async def test_get_many_in_request_order(db: Database) -> None:
    orders = db.repository(Order)
    await orders.put_many([Order("c1", f"o{i}", i) for i in range(5)] + [Order("c2", "o1", 99)])
    keys = [("c1", "o3"), ("c2", "o1"), ("c9", "zz"), ("c1", "o3"), ("c1", "o0")]
    for _ in range(2):  # cold, then warm
        got = await orders.get_many(keys)
        assert [None if g is None else (g.customer_id, g.order_id) for g in got] == [
            ("c1", "o3"), ("c2", "o1"), None, ("c1", "o3"), ("c1", "o0")
        ]
    assert await orders.get_many([]) == []


async def test_get_many_large_batch(db: Database) -> None:
    customers = db.repository(Customer)
    await customers.put_many([Customer(f"c{i:04d}", f"n{i}") for i in range(250)])
    got = await customers.get_many([f"c{i:04d}" for i in range(260)])
    assert [g.name if g else None for g in got] == [f"n{i}" for i in range(250)] + [None] * 10


async def test_put_many_and_delete_many(db: Database) -> None:
    orders = db.repository(Order)
    stored = await orders.put_many([Order("c1", f"o{i}", i) for i in range(30)])
    assert [s.version for s in stored] == [1] * 30
    await orders.delete_many([("c1", f"o{i}") for i in range(0, 30, 2)])
    got = await orders.get_many([("c1", f"o{i}") for i in range(30)])
    assert [g is not None for g in got] == [i % 2 == 1 for i in range(30)]
    with pytest.raises(ValidationError):
        await orders.put_many([Order("c1", "x", 1), Order("c1", "x", 2)])


async def test_query_pages_and_cursor(db: Database) -> None:
    orders = db.repository(Order)
    await orders.put_many([Order("c1", f"o{i:02d}", i) for i in range(25)] + [Order("c2", "o00", 0)])
    first = await orders.query("c1", limit=10)
    assert [o.order_id for o in first] == [f"o{i:02d}" for i in range(10)]
    assert first.cursor is not None
    second = await orders.query("c1", limit=10, cursor=first.cursor)
    assert [o.order_id for o in second] == [f"o{i:02d}" for i in range(10, 20)]
    seen = [o.order_id async for o in orders.query("c1", limit=7)]
    assert seen == [f"o{i:02d}" for i in range(25)]
    pages = [len(p) async for p in orders.query("c1", limit=10).pages()]
    assert sum(pages) == 25 and max(pages) <= 10
    rev = await orders.query("c1", reverse=True, limit=3)
    assert [o.order_id for o in rev] == ["o24", "o23", "o22"]
    rev2 = await orders.query("c1", reverse=True, limit=3, cursor=rev.cursor)
    assert [o.order_id for o in rev2] == ["o21", "o20", "o19"]
    with pytest.raises(ValidationError):
        await orders.query("c2", limit=10, cursor=first.cursor)  # cursor of another query


@pytest.mark.parametrize(
    ("cond", "expected"),
    [
        (eq("o05"), ["o05"]),
        (lt("o03"), ["o00", "o01", "o02"]),
        (le("o02"), ["o00", "o01", "o02"]),
        (gt("o17"), ["o18", "o19"]),
        (ge("o18"), ["o18", "o19"]),
        (between("o04", "o06"), ["o04", "o05", "o06"]),
        (begins_with("o1"), [f"o1{i}" for i in range(10)]),
    ],
)
async def test_query_sort_conditions(db: Database, cond: tierstore.SortCondition, expected: list[str]) -> None:
    orders = db.repository(Order)
    await orders.put_many([Order("c1", f"o{i:02d}", i) for i in range(20)] + [Order("c0", "o05", 1)])
    assert [o.order_id for o in await orders.query("c1", sort=cond).all()] == expected


async def test_query_begins_with_escapes_wildcards(db: Database) -> None:
    orders = db.repository(Order)
    await orders.put_many([Order("c1", "a%b", 1), Order("c1", "a_c", 2), Order("c1", "axb", 3), Order("c1", "a\\d", 4)])
    assert [o.order_id for o in await orders.query("c1", sort=begins_with("a%")).all()] == ["a%b"]
    assert [o.order_id for o in await orders.query("c1", sort=begins_with("a_")).all()] == ["a_c"]
    assert [o.order_id for o in await orders.query("c1", sort=begins_with("a\\")).all()] == ["a\\d"]


async def test_query_on_index(db: Database) -> None:
    orders = db.repository(Order)
    await orders.put_many(
        [Order(f"c{i % 3}", f"o{i:02d}", i, status="paid" if i % 2 else "new") for i in range(12)]
    )
    paid = await orders.query("paid", index="by_status").all()
    assert [o.order_id for o in paid] == [f"o{i:02d}" for i in range(1, 12, 2)]
    page = await orders.query("paid", index="by_status", limit=2, reverse=True)
    assert [o.order_id for o in page] == ["o11", "o09"]
    nxt = await orders.query("paid", index="by_status", limit=2, reverse=True, cursor=page.cursor)
    assert [o.order_id for o in nxt] == ["o07", "o05"]
    assert [o.order_id for o in await orders.query("new", index="by_status", sort=ge("o08")).all()] == [
        "o08", "o10"
    ]


async def test_if_not_exists(db: Database) -> None:
    customers = db.repository(Customer)
    await customers.put(Customer("c1", "first"), if_not_exists=True)
    with pytest.raises(ConditionFailed):
        await customers.put(Customer("c1", "second"), if_not_exists=True)
    got = await customers.get("c1")
    assert got is not None and got.name == "first"


async def test_optimistic_locking(db: Database) -> None:
    customers = db.repository(Customer)
    v1 = await customers.put(Customer("c1", "a"))
    v2 = await customers.put(Customer("c1", "b"), expect_version=v1.version)
    assert v2.version == v1.version + 1
    with pytest.raises(ConditionFailed):
        await customers.put(Customer("c1", "stale writer"), expect_version=v1.version)
    with pytest.raises(ConditionFailed):
        await customers.put(Customer("zz", "absent"), expect_version=1)
    got = await customers.get("c1")
    assert got is not None and got.name == "b"
    with pytest.raises(ConditionFailed):
        await customers.delete("c1", expect_version=v1.version)
    assert await customers.delete("c1", expect_version=v2.version) is True
    assert await customers.get("c1") is None


async def test_transaction_all_or_nothing(db: Database) -> None:
    customers = db.repository(Customer)
    orders = db.repository(Order)
    c = await customers.put(Customer("c1", "a"))
    await orders.put(Order("c1", "gone", 1))
    await orders.get("c1", "gone")  # cached
    try:
        async with db.transaction() as tx:
            tx.put(Customer("c1", "b"), expect_version=c.version)
            tx.put(Order("c1", "o1", 10), if_not_exists=True)
            tx.delete(Order, "c1", "gone")
    except Unsupported:
        pytest.skip(f"{db.store.name} has no transactions")
    assert (await customers.get("c1")).name == "b"  # type: ignore[union-attr]
    assert await orders.get("c1", "o1") is not None
    assert await orders.get("c1", "gone") is None
    with pytest.raises(TransactionCanceled) as info:
        async with db.transaction() as tx:
            tx.put(Order("c1", "o2", 20))
            tx.put(Customer("c1", "c"), expect_version=c.version)  # stale
    assert info.value.reasons[0] is None and info.value.reasons[1]
    assert await orders.get("c1", "o2") is None
    assert (await customers.get("c1")).name == "b"  # type: ignore[union-attr]
    with pytest.raises(ValidationError):
        async with db.transaction() as tx:
            tx.put(Order("c1", "o3", 1))
            tx.delete(Order, "c1", "o3")


async def test_composite_keys_and_ttl(db: Database) -> None:
    events = db.repository(Event)
    now = int(time.time())
    await events.put_many(
        [Event("t1", "s:1", i, {"n": i}) for i in range(5)]
        + [Event("t1", "s:2", 0), Event("t2", "s:1", 0), Event("t1", "s:1", 99, expires_at=now - 10)]
    )
    got = await events.get(("t1", "s:1"), 3)
    assert got is not None and got.payload == {"n": 3}
    assert await events.get(("t1", "s:1"), 99) is None  # expired
    assert [e.seq for e in await events.query(("t1", "s:1")).all()] == [0, 1, 2, 3, 4]
    assert [e.seq for e in await events.query(("t1", "s:1"), sort=between(1, 3)).all()] == [1, 2, 3]
    many = await events.get_many([(("t1", "s:2"), 0), (("t2", "s:1"), 0), (("t3", "x"), 0)])
    assert [m is not None for m in many] == [True, True, False]
    with pytest.raises(ValidationError):
        await events.get("t1", 1)  # partition needs two parts


async def test_int_keys_bytes_and_frozen(db: Database) -> None:
    blobs = db.repository(Blob)
    await blobs.put_many([Blob(i, bytes([i]) * i, (i, i + 1)) for i in range(1, 6)])
    got = await blobs.get(3)
    assert got == Blob(3, b"\x03\x03\x03", (3, 4))
    assert await blobs.get(3) == got
    assert await blobs.get(0) is None


async def test_awkward_key_strings(db: Database) -> None:
    orders = db.repository(Order)
    odd = ["a:b", "{x}", "sp ace", "é" * 10, "new\nline", "100%", "emoji-🙂", "a,b"]
    await orders.put_many([Order(k, k, i) for i, k in enumerate(odd)])
    for i, k in enumerate(odd):
        got = await orders.get(k, k)
        assert got is not None and got.total_cents == i
        assert [o.order_id for o in await orders.query(k).all()] == [k]


async def test_optional_and_nested_fields_roundtrip(db: Database) -> None:
    orders = db.repository(Order)
    await orders.put(Order("c1", "o1", 1, note=None))
    await orders.put(Order("c1", "o2", 2, note="gift"))
    assert (await orders.get("c1", "o1")).note is None  # type: ignore[union-attr]
    assert (await orders.get("c1", "o2")).note == "gift"  # type: ignore[union-attr]


async def test_mutating_a_result_never_corrupts_the_cache(db: Database) -> None:
    customers = db.repository(Customer)
    await customers.put(Customer("c1", "Ann", tags=["x"]))
    first = await customers.get("c1")
    assert first is not None
    first.name = "MUTATED"
    first.tags.append("MUTATED")
    second = await customers.get("c1")
    assert second is not None and second.name == "Ann" and second.tags == ["x"]


async def test_cache_saves_store_round_trips(db: Database) -> None:
    customers = db.repository(Customer)
    await customers.put(Customer("c1", "Ann"))
    await customers.get("c1")
    before = db.store.stats.round_trips
    for _ in range(5):
        assert await customers.get("c1") is not None
    used = db.store.stats.round_trips - before
    if db.cache.tiers:
        assert used == 0
    else:
        assert used == 5


async def test_consistent_read_bypasses_cache(db: Database) -> None:
    customers = db.repository(Customer)
    await customers.put(Customer("c1", "Ann"))
    await customers.get("c1")
    before = db.store.stats.round_trips
    assert await customers.get("c1", consistent=True) is not None
    assert db.store.stats.round_trips == before + 1


async def test_bad_input_is_rejected_before_io(db: Database) -> None:
    customers = db.repository(Customer)
    orders = db.repository(Order)
    await customers.get("warm")  # table exists; from here on nothing may reach the store
    before = db.store.stats.round_trips
    bad_calls = [
        lambda: customers.get(123),
        lambda: customers.get(""),
        lambda: customers.get("c1", "unexpected sort"),
        lambda: orders.get("c1"),
        lambda: orders.get("c1", 5),
        lambda: customers.put(Order("c1", "o1", 1)),  # type: ignore[arg-type]
        lambda: customers.put(Customer("c1", 5)),  # type: ignore[arg-type]
        lambda: customers.put(Customer("", "x")),
        lambda: orders.put(Order("c1", "o1", "ten")),  # type: ignore[arg-type]
        lambda: customers.put(Customer("c1", "x"), expect_version=-1),
        lambda: customers.get_many(["ok", 7]),
        lambda: orders.get_many(["c1"]),
        lambda: orders.query("c1", limit=0),
        lambda: orders.query("c1", index="nope"),
        lambda: orders.query("c1", cursor="garbage!!"),
        lambda: orders.query(5),
        lambda: orders.query("c1", sort=between(1, 2)),
        lambda: customers.delete_many([None]),
    ]
    for call in bad_calls:
        with pytest.raises(ValidationError):
            await call()
    assert db.store.stats.round_trips == before
