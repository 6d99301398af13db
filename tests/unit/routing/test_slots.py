"""``Router`` values: the pinned routing hash, printing and parsing, slot plans and minimal moves."""

from __future__ import annotations

import pickle

import pytest

from tierstore import ConfigError
from tierstore.model.schema import schema_of
from tierstore.routing import Router, hash_token, partition_token

from _models import Customer, Order

CUSTOMER = schema_of(Customer)
ORDER = schema_of(Order)


def test_hash_is_pinned() -> None:
    # The routing hash decides where data lives: it must never change. These values are the contract.
    assert hash_token("c1") == 4895413496900842574
    assert hash_token("acme,s1") == 12281863870094613773
    r = Router.uniform(["a", "b"])
    assert r.slot_of_token("c1") == 78
    assert r.slot_of(("acme", "s1")) == 269
    assert r.slot_of((7,)) == 898
    assert r.slot_of((b"\x00\xff",)) == 44


def test_partition_token_matches_schema() -> None:
    for partition in [("c1",), ("a b/é",), ("acme", "s1"), (7,), (b"\x01",)]:
        assert partition_token(partition) == CUSTOMER.partition_token(partition)


def test_uniform_is_printable_and_round_trips() -> None:
    r = Router.uniform(["pg-a", "pg-b"], slots=1024)
    assert str(r) == "pg-a=0-511,pg-b=512-1023"
    assert repr(r) == "Router('pg-a=0-511,pg-b=512-1023')"
    assert r.shards == ("pg-a", "pg-b")
    assert r.slot_counts() == {"pg-a": 512, "pg-b": 512}
    assert Router.parse(str(r)) == r
    assert Router.from_config(r.to_config()) == r
    assert Router.from_config({"shards": ["pg-a", "pg-b"]}) == r
    assert pickle.loads(pickle.dumps(r)) == r  # noqa: S301  # our own bytes: routers must pickle for workers
    assert hash(Router.parse(str(r))) == hash(r)
    assert r != Router.uniform(["pg-b", "pg-a"])
    three = Router.uniform(["a", "b", "c"], slots=10)
    assert str(three) == "a=0-3,b=4-6,c=7-9"


def test_parse_accepts_split_ranges_and_single_slots() -> None:
    r = Router.parse("a=0-1, b=2, a=3")
    assert r.slots == 4
    assert [r.shard_of_slot(i) for i in range(4)] == ["a", "a", "b", "a"]
    assert str(r) == "a=0-1,b=2,a=3"


@pytest.mark.parametrize(
    "spec",
    ["", "a", "a=0-3,b=3-5", "a=0-3,b=5-7", "a=1-3", "a=3-1", "a b=0-3", "a=0-70000", "a:0-3"],
)
def test_parse_rejects_bad_specs(spec: str) -> None:
    with pytest.raises(ConfigError):
        Router.parse(spec)


def test_uniform_rejects_bad_input() -> None:
    with pytest.raises(ConfigError):
        Router.uniform([])
    with pytest.raises(ConfigError):
        Router.uniform(["a", "a"])
    with pytest.raises(ConfigError):
        Router.uniform(["a", "b", "c"], slots=2)
    with pytest.raises(ConfigError):
        Router.from_config({"shards": ["a"], "hash": "crc32"})
    with pytest.raises(ConfigError):
        Router.from_config({"ranges": [[0, 3, "a"]], "slots": 8})


def test_colocation_customer_and_orders_share_a_shard() -> None:
    r = Router.uniform(["a", "b", "c"])
    for i in range(50):
        cid = f"cust-{i}"
        assert r.shard_for(CUSTOMER, (cid,)) == r.shard_for(ORDER, (cid, "o1")) == r.shard_for(ORDER, (cid, "o9"))


def test_plan_lists_moving_ranges_and_fraction() -> None:
    old = Router.uniform(["a", "b"])
    assert not old.plan(old)
    assert old.plan(old).fraction == 0
    new = old.with_shards(["a", "b", "c"])
    plan = old.plan(new)
    assert [str(m) for m in plan.moves] == ["slots 342-511: a -> c", "slots 853-1023: b -> c"]
    assert plan.slots_moving == 341
    assert plan.fraction == pytest.approx(341 / 1024)
    assert plan.sources == ("a", "b") and plan.targets == ("c",)
    assert plan.move_of(400) == plan.moves[0]
    assert plan.move_of(0) is None
    assert "33.3% of keys" in str(plan)
    assert new.slot_counts() == {"a": 342, "b": 341, "c": 341}
    with pytest.raises(ConfigError):
        old.plan(Router.uniform(["a", "b"], slots=512))
    # The naive alternative moves half the keys: with_shards exists for this.
    assert old.plan(Router.uniform(["a", "b", "c"])).slots_moving == 511


def test_with_shards_removing_a_shard_moves_only_its_slots() -> None:
    old = Router.uniform(["a", "b", "c"])
    new = old.with_shards(["a", "c"])
    plan = old.plan(new)
    assert all(m.source == "b" for m in plan.moves)
    assert plan.slots_moving == old.slot_counts()["b"]
    assert set(new.slot_counts().values()) == {512}


def test_grouping_and_slot_lookups() -> None:
    r = Router.uniform(["a", "b"], slots=8)
    keys = [(f"c{i}",) for i in range(20)]
    groups = r.group(CUSTOMER, keys)
    assert sorted(i for idx in groups.values() for i in idx) == list(range(20))
    for shard, idx in groups.items():
        assert idx == sorted(idx) and all(r.shard_for(CUSTOMER, keys[i]) == shard for i in idx)
        assert all(r.shards[r.shard_index_for(CUSTOMER, keys[i])] == shard for i in idx)
    assert r.slots_of("a") == [0, 1, 2, 3] and r.slots_of("b") == [4, 5, 6, 7] and r.slots_of("c") == []
    assert r.shard_of_slot(r.slot_for(ORDER, ("c1", "o1"))) == r.shard_for(ORDER, ("c1", "o1"))
