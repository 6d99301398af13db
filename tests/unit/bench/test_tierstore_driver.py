"""The tierstore systems' driver (tierstore.bench.tierstore_driver): the join's round trips, and verify()."""

from __future__ import annotations

from typing import Any

import tierstore
import tierstore.backends
from tierstore.bench.data import JOIN_PAGE, BenchItem, BenchOrder, Dataset
from tierstore.bench.floors.cache import DictJoinDriver
from tierstore.bench.scenarios import check_join, join_pairs
from tierstore.bench.tierstore_driver import TierstoreDriver


def _expected_orders(data: Dataset, pk: str) -> list[BenchOrder]:
    return [o for o in data.orders if o.pk == pk]


async def test_tierstore_join_is_one_query_and_one_batch() -> None:
    data = Dataset(partitions=3)
    driver = TierstoreDriver("memory://", [])
    await driver.open(data)
    try:
        join = driver.joiner()
        pk = data.order_partition_keys[1]
        before = driver.counters()["store"]
        page = await join(pk, JOIN_PAGE)
        assert driver.counters()["store"] - before == 2
        check_join(join_pairs(page), _expected_orders(data, pk), data)
        assert all(o.customer is not None for o in page.items)
    finally:
        await driver.aclose()


async def test_verify_notices_data_that_changed_under_a_system(tmp_path: Any) -> None:
    data = Dataset(partitions=3)
    driver = TierstoreDriver("memory://", ["memory://"])
    await driver.open(data)
    floor = DictJoinDriver("batch")
    await floor.open(data)
    try:
        assert await driver.verify(data) is None and await floor.verify(data) is None
        await driver.repo.get_many(data.many)  # cached now: the check must look past the tiers
        await driver.db.store.truncate(tierstore.backends.schema_of(BenchItem))  # another run reloads the table…
        reason = await driver.verify(data)
        assert reason is not None and "100 of 100 items differ" in reason
        floor._customers.clear()
        assert "customer" in (await floor.verify(data) or "")
    finally:
        await driver.aclose()
