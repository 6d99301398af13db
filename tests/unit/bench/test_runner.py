"""The runner (tierstore.bench.runner): selection, and whole runs on fake systems — rows, floors, skips, JSON."""

from __future__ import annotations

import asyncio
import json
from collections.abc import Sequence
from typing import Any

import pytest

from tierstore.bench.api import GET, GET_MANY, Driver, GetFn, GetManyFn, Op, Registry, RunContext, Scenario, SystemSpec
from tierstore.bench.builtin import default_registry
from tierstore.bench.data import BenchItem, Dataset
from tierstore.bench.report import REQUIRED_KEYS, format_report, write_json
from tierstore.bench.runner import Settings, run, select
from tierstore.bench.scenarios import Get


def test_select() -> None:
    reg = default_registry({})
    systems, scenarios = select(reg, Settings())
    assert {s.kind for s in systems} == {"tierstore"}
    assert [s.name for s in scenarios] == list(reg.scenarios)
    quick, _ = select(reg, Settings(quick=True))
    assert {s.name for s in quick} < {s.name for s in systems}
    assert "tierstore:sqlite+memory" in {s.name for s in quick}
    picked, only = select(reg, Settings(systems=("raw:sqlite?", "peer:cashews"), scenarios=("get", "put")))
    assert [s.name for s in picked] == ["raw:sqlite3", "peer:cashews"]
    assert [s.name for s in only] == ["get", "put"]
    with pytest.raises(ValueError, match="unknown scenario"):
        select(reg, Settings(scenarios=("gets",)))
    with pytest.raises(ValueError, match="no system matches"):
        select(reg, Settings(systems=("nothing:*",)))


class FakeDriver(Driver):
    """get() costs ``delay`` seconds; get_many() fails when asked to."""

    caps = frozenset({GET, GET_MANY})

    def __init__(self, delay: float, *, fail_open: bool = False, fail_many: bool = False) -> None:
        self.delay = delay
        self.fail_open = fail_open
        self.fail_many = fail_many
        self.trips = 0
        self.closed = False

    async def open(self, data: Dataset) -> None:
        if self.fail_open:
            raise ConnectionError("refused by fake")

    async def aclose(self) -> None:
        self.closed = True

    def counters(self) -> dict[str, int]:
        return {"store": self.trips}

    async def verify(self, data: Dataset) -> str | None:
        return None  # holds no data to check

    def getter(self) -> GetFn:
        async def get(pk: str, sk: str) -> BenchItem | None:
            self.trips += 1
            await asyncio.sleep(self.delay)
            return None

        return get

    def batch_getter(self) -> GetManyFn:
        async def get_many(keys: Sequence[tuple[str, str]]) -> list[BenchItem | None]:
            if self.fail_many:
                raise RuntimeError("get_many exploded")
            self.trips += 1
            return [None] * len(keys)

        return get_many


class GetManyScenario(Scenario):
    name = "get_many_100"
    needs = frozenset({GET_MANY})
    cached = True

    def prepare(self, driver: Driver, data: Dataset) -> Op:
        get_many = driver.batch_getter()
        return lambda i: get_many(data.many)


def _fake_registry(drivers: dict[str, FakeDriver]) -> Registry:
    reg = Registry()
    reg.add_scenario(Get())
    reg.add_scenario(GetManyScenario())
    reg.add_system(SystemSpec(
        name="tierstore:fake", make=lambda ctx: drivers["tierstore:fake"],
        store_floors={"*": ("raw:fast", "raw:slow")},
    ))
    reg.add_system(SystemSpec(name="raw:fast", make=lambda ctx: drivers["raw:fast"]))
    reg.add_system(SystemSpec(name="raw:slow", make=lambda ctx: drivers["raw:slow"]))
    reg.add_system(SystemSpec(name="raw:broken", make=lambda ctx: drivers["raw:broken"]))
    reg.add_system(SystemSpec(name="raw:absent", make=lambda ctx: Driver(), modules=("no_such_module_tsbench",)))

    def bad_make(ctx: RunContext) -> Driver:
        raise ValueError("cannot build")

    reg.add_system(SystemSpec(name="raw:unbuildable", make=bad_make))
    return reg


async def test_run_rows_ratios_and_skips(tmp_path: Any) -> None:
    drivers = {
        "tierstore:fake": FakeDriver(0.002),
        "raw:fast": FakeDriver(0.001, fail_many=True),
        "raw:slow": FakeDriver(0.004),
        "raw:broken": FakeDriver(0.001, fail_open=True),
    }
    settings = Settings(
        duration=0.03, rounds=2, partitions=2, checks=False, progress=False,
        systems=("tierstore:*", "raw:broken", "raw:absent", "raw:unbuildable"),
    )
    rep = await run(settings, _fake_registry(drivers), env={})
    rows = {(r["scenario"], r["system"]): r for r in rep.rows}
    # floors were added because tierstore:fake ran; the broken and absent ones were skipped with reasons
    assert set(rows) == {
        ("get", "tierstore:fake"), ("get", "raw:fast"), ("get", "raw:slow"),
        ("get_many_100", "tierstore:fake"), ("get_many_100", "raw:slow"),
    }
    reasons = {(s["system"], s.get("scenario")): s["reason"] for s in rep.skipped}
    assert reasons[("raw:broken", None)] == "setup failed: ConnectionError: refused by fake"
    assert reasons[("raw:absent", None)] == "module no_such_module_tsbench is not installed"
    assert reasons[("raw:unbuildable", None)] == "setup failed: ValueError: cannot build"
    assert reasons[("raw:fast", "get_many_100")] == "RuntimeError: get_many exploded"
    assert all(d.closed for d in drivers.values())
    get = rows[("get", "tierstore:fake")]
    assert get["rounds"] == 2 and get["round_trips_per_op"] == 1.0
    assert get["floor"] == "raw:fast"
    assert get["ratio_vs_floor"] == pytest.approx(get["p50_us"] / rows[("get", "raw:fast")]["p50_us"], abs=1e-3)
    assert set(get["ratios"]) == {"raw:fast", "raw:slow"}
    assert get["ratios"]["raw:slow"] < 1 < get["ratios"]["raw:fast"]
    # the primary floor has no get_many row: the next floor present is used
    assert rows[("get_many_100", "tierstore:fake")]["floor"] == "raw:slow"
    assert rows[("get", "raw:fast")]["ratio_vs_floor"] is None

    path = tmp_path / "out.json"
    write_json(rep, str(path))
    doc = json.loads(path.read_text())
    assert set(doc) == {"results", "skipped", "checks", "meta"}
    for row in doc["results"]:
        for key in REQUIRED_KEYS:
            assert key in row
        assert isinstance(row["ops_per_s"], float) and row["ops_per_s"] > 0
    text = format_report(rep)
    assert "tierstore:fake" in text and "Skipped:" in text and "refused by fake" in text


class _ChangedDriver(FakeDriver):
    async def verify(self, data: Dataset) -> str | None:
        return "3 of 100 items differ from the data set, e.g. ('p0001', 's0002')"


async def test_rows_of_a_system_whose_data_changed_are_discarded(tmp_path: Any) -> None:
    drivers = {
        "tierstore:fake": FakeDriver(0.001),
        "raw:fast": _ChangedDriver(0.001),
        "raw:slow": FakeDriver(0.002),
        "raw:broken": FakeDriver(0.001, fail_open=True),
    }
    settings = Settings(duration=0.02, rounds=1, partitions=2, checks=False, progress=False, scenarios=("get",))
    rep = await run(settings, _fake_registry(drivers), env={})
    assert {r["system"] for r in rep.rows} == {"tierstore:fake", "raw:slow"}
    assert rep.rows[0]["floor"] == "raw:slow"
    reasons = {s["system"]: s["reason"] for s in rep.skipped}
    assert reasons["raw:fast"].startswith("results discarded, its data changed during the run")
    assert "3 of 100 items differ" in reasons["raw:fast"]
