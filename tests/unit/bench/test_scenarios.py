"""The built-in scenarios (tierstore.bench.scenarios): the join check, and join_100 run on the embedded systems."""

from __future__ import annotations

from typing import Any

import pytest

from tierstore.bench.api import JOIN, Driver, JoinFn, SystemSpec
from tierstore.bench.builtin import default_registry
from tierstore.bench.data import BenchOrder, Dataset
from tierstore.bench.runner import Settings, run
from tierstore.bench.scenarios import check_join
from tierstore.bench.targets import evaluate


def _expected_orders(data: Dataset, pk: str) -> list[BenchOrder]:
    return [o for o in data.orders if o.pk == pk]


def test_check_join_catches_wrong_results() -> None:
    data = Dataset(partitions=2)
    orders = _expected_orders(data, data.order_partition_keys[0])
    right = [(o, data.item((o.customer_pk, o.customer_sk))) for o in orders]
    check_join(right, orders, data)
    with pytest.raises(AssertionError, match="expected"):
        check_join(right[:-1], orders, data)  # an order missing
    with pytest.raises(AssertionError, match="customer"):
        check_join([*right[:-1], (orders[-1], None)], orders, data)  # a customer not attached
    wrong = data.items[0] if data.items[0] != right[0][1] else data.items[1]
    with pytest.raises(AssertionError, match="customer"):
        check_join([(orders[0], wrong), *right[1:]], orders, data)  # somebody else's customer


class _WrongJoinDriver(Driver):
    caps = frozenset({JOIN})

    def joiner(self) -> JoinFn:
        async def join(pk: str, limit: int) -> list[Any]:
            return []

        return join


async def test_join_100_on_the_embedded_systems(tmp_path: Any) -> None:
    reg = default_registry({})
    reg.add_system(SystemSpec(name="raw:wrong-join", make=lambda ctx: _WrongJoinDriver()))
    settings = Settings(
        systems=("tierstore:memory", "tierstore:memory+memory", "raw:wrong-join"), scenarios=("join_100",),
        duration=0.04, rounds=1, partitions=3, checks=False, progress=False,
    )
    rep = await run(settings, reg, env={})
    rows = {r["system"]: r for r in rep.rows}
    assert set(rows) == {"tierstore:memory", "tierstore:memory+memory", "raw:dict-join-batch", "raw:dict-join-n+1"}
    assert rows["tierstore:memory"]["round_trips_per_op"] == 2.0
    assert rows["tierstore:memory+memory"]["round_trips_per_op"] == 1.0  # the page query; customers from L1
    assert rows["raw:dict-join-batch"]["round_trips_per_op"] == 2.0
    assert rows["raw:dict-join-n+1"]["round_trips_per_op"] == 101.0
    assert rows["tierstore:memory"]["floor"] == "raw:dict-join-batch"
    assert set(rows["tierstore:memory"]["ratios"]) == {"raw:dict-join-batch", "raw:dict-join-n+1"}
    reasons = {(s["system"], s.get("scenario")): s["reason"] for s in rep.skipped}
    assert reasons[("raw:wrong-join", "join_100")].startswith("AssertionError: join returned orders []")
    checks = {(c["check"], c["system"]): c for c in evaluate(rep.rows)}
    vs = checks[("join_vs_hand_batch", "tierstore:memory")]
    assert vs["value"] == rows["tierstore:memory"]["ratio_vs_floor"] and "raw:dict-join-batch" in vs["detail"]
    assert checks[("join_round_trips", "tierstore:memory")]["ok"] is True
    assert ("join_vs_hand_batch", "tierstore:memory+memory") not in checks  # cache-off rows only
