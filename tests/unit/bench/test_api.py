"""The plugin API (tierstore.bench.api): the registry's rules, a system's floors, the driver's defaults."""

from __future__ import annotations

from collections.abc import Sequence

import pytest

from tierstore.bench.api import GET, GET_MANY, Driver, GetFn, GetManyFn, Registry, RunContext, SystemSpec, differences
from tierstore.bench.data import BenchItem, Dataset
from tierstore.bench.runner import Settings
from tierstore.bench.scenarios import Get


def test_registry_rejects_duplicates_and_bad_names() -> None:
    reg = Registry()
    spec = SystemSpec(name="raw:x", make=lambda ctx: Driver())
    reg.add_system(spec)
    with pytest.raises(ValueError, match="twice"):
        reg.add_system(spec)
    with pytest.raises(ValueError, match="tierstore:, raw: or peer:"):
        reg.add_system(SystemSpec(name="mine", make=lambda ctx: Driver()))
    reg.add_scenario(Get())
    with pytest.raises(ValueError, match="twice"):
        reg.add_scenario(Get())


def test_driver_defaults() -> None:
    class OnlyGet(Driver):
        caps = frozenset({GET})

        def getter(self) -> GetFn:
            async def get(pk: str, sk: str) -> BenchItem | None:
                return None

            return get

    driver = OnlyGet()
    assert driver.concurrent_getter().__qualname__ == driver.getter().__qualname__  # the plain get by default
    assert driver.counters() == {}
    with pytest.raises(NotImplementedError, match="OnlyGet has no get_many"):
        driver.batch_getter()
    for factory in (driver.putter, driver.pager, driver.joiner):
        with pytest.raises(NotImplementedError, match="OnlyGet has no"):
            factory()


async def test_driver_verify_compares_get_many_with_the_data_set() -> None:
    data = Dataset(partitions=2)

    class Holds(Driver):
        caps = frozenset({GET_MANY})

        def __init__(self, answer: list[BenchItem | None]) -> None:
            self.answer = answer

        def batch_getter(self) -> GetManyFn:
            async def get_many(keys: Sequence[tuple[str, str]]) -> list[BenchItem | None]:
                return self.answer

            return get_many

    right = [data.item(k) for k in data.many]
    assert await Holds(right).verify(data) is None
    wrong = [None, *right[1:]]
    assert await Holds(wrong).verify(data) == f"1 of 100 items differ from the data set, e.g. {data.many[0]}"
    assert await Driver().verify(data) is None  # nothing to compare without get_many
    assert differences(data, data.many[:1], [None]) is not None


def test_system_spec_floors() -> None:
    class Cached(Get):
        name = "cached"

    class Stored(Get):
        name = "stored"
        cached = False

    spec = SystemSpec(
        name="tierstore:x+y", make=lambda ctx: Driver(),
        store_floors={"*": ("raw:a", "raw:b"), "stored": ("raw:c",)}, cache_floors={"*": ("raw:b", "raw:d")},
    )
    assert spec.kind == "tierstore"
    assert spec.floors_for(Stored()) == ("raw:c",)
    assert spec.floors_for(Cached()) == ("raw:b", "raw:d")  # cached scenarios: the nearest tier's floors
    assert spec.all_floors() == ("raw:a", "raw:b", "raw:c", "raw:d")
    cache_off = SystemSpec(name="tierstore:x", make=lambda ctx: Driver(), store_floors={"*": ("raw:a",)})
    assert cache_off.floors_for(Cached()) == ("raw:a",)  # no tier: the store's floors for every scenario


def test_run_context_paths_are_in_its_workdir() -> None:
    ctx = RunContext(settings=Settings(), data=Dataset(partitions=1), env={}, workdir="/nonexistent-tsbench")
    assert ctx.path("a.db") == "/nonexistent-tsbench/a.db"
    assert len(ctx.run_id) == 10 and ctx.run_id != RunContext(ctx.settings, ctx.data, {}, "/nonexistent-tsbench").run_id
