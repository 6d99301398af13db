"""The hand-written join floors (tierstore.bench.floors.join) on the embedded clients: the same work, in the
round trips each mode promises."""

from __future__ import annotations

from typing import Any

import pytest

from tierstore.bench.data import JOIN_PAGE, BenchOrder, Dataset
from tierstore.bench.floors.cache import DictJoinDriver
from tierstore.bench.floors.join import JoinFloor
from tierstore.bench.floors.sql_sqlite import AiosqliteJoinDriver, Sqlite3JoinDriver
from tierstore.bench.scenarios import check_join, join_pairs


def _expected_orders(data: Dataset, pk: str) -> list[BenchOrder]:
    return [o for o in data.orders if o.pk == pk]


@pytest.mark.parametrize("mode", ["batch", "n+1"])
@pytest.mark.parametrize("client", ["dict", "sqlite3", "aiosqlite"])
async def test_join_floors_do_the_same_work(tmp_path: Any, client: str, mode: str) -> None:
    data = Dataset(partitions=3)
    driver: JoinFloor
    if client == "dict":
        driver = DictJoinDriver(mode)
    elif client == "sqlite3":
        driver = Sqlite3JoinDriver(str(tmp_path / "j.db"), mode)
    else:
        driver = AiosqliteJoinDriver(str(tmp_path / "j.db"), mode)
    await driver.open(data)
    try:
        join = driver.joiner()
        for pk in data.order_partition_keys:
            before = driver.counters()["store"]
            pairs = join_pairs(await join(pk, JOIN_PAGE))
            check_join(pairs, _expected_orders(data, pk), data)
            # batch: the page query + one read of the 90 distinct customers; n+1: + one read per order
            assert driver.counters()["store"] - before == (2 if mode == "batch" else 1 + JOIN_PAGE)
        assert join_pairs(await join("o9999", JOIN_PAGE)) == []  # no orders: no customer read
    finally:
        await driver.aclose()


def test_join_floor_modes() -> None:
    with pytest.raises(ValueError, match="join mode"):
        DictJoinDriver("n+2")
    assert DictJoinDriver("n+1").tag == "nplus1"
