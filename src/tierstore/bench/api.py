"""The plugin API of the harness: what someone adding a system or a workload imports.

A *system* (``tierstore:postgres+memory``, ``raw:asyncpg``, ``peer:cashews``) is a :class:`SystemSpec`: a name,
what it needs to run (modules, reachable servers, a probe) and a factory for its :class:`Driver`. A *scenario*
(``get``, ``get_many_100``…) is a :class:`Scenario`: the driver capabilities it needs and how to build one
timed operation from a driver. Both are registered in a :class:`Registry`; the runner
(:mod:`tierstore.bench.runner`) runs every selected scenario on every open driver that has the capabilities.
New backends add rows by registering a system (and, for a raw floor, a driver); new workloads by registering a
scenario. Nothing here names a backend, and nothing here times anything.
"""

from __future__ import annotations

import os
import uuid
from collections.abc import Awaitable, Callable, Mapping, Sequence
from dataclasses import dataclass, field
from typing import TYPE_CHECKING, Any, ClassVar

from tierstore.bench.data import BenchItem, Dataset

if TYPE_CHECKING:
    from tierstore.bench.runner import Settings

__all__ = [
    "CACHE",
    "CONCURRENT",
    "GET",
    "GET_MANY",
    "JOIN",
    "JOIN_MANY",
    "L1",
    "PUT",
    "QUERY",
    "UPDATE",
    "Cell",
    "Driver",
    "GetFn",
    "GetManyFn",
    "JoinFn",
    "JoinManyFn",
    "Op",
    "PageFn",
    "PutFn",
    "Registry",
    "RunContext",
    "Scenario",
    "SystemSpec",
    "UpdateFn",
    "differences",
]

# Driver capabilities a scenario may require.
GET = "get"
GET_MANY = "get_many"
PUT = "put"
QUERY = "query"
CONCURRENT = "concurrent"  # get() may be awaited by many tasks at once
L1 = "l1"  # an in-process tier whose hits and misses are counted (l1_hits / l1_misses)
CACHE = "cache"  # any cache tier in front of the store (invalidate() works)
JOIN = "join"  # a page of orders joined to their customers (BenchOrder.customer)
JOIN_MANY = "join_many"  # the children of several accounts (BenchAccount.visits, one-to-many)
UPDATE = "update"  # an atomic increment of one item's amount_cents, returning the new item where the system can

Op = Callable[[int], Awaitable[Any]]
GetFn = Callable[[str, str], Awaitable[BenchItem | None]]
GetManyFn = Callable[[Sequence[tuple[str, str]]], Awaitable[Sequence[BenchItem | None]]]
PutFn = Callable[[BenchItem], Awaitable[Any]]
PageFn = Callable[[str, int], Awaitable[Any]]
JoinFn = Callable[[str, int], Awaitable[Any]]
JoinManyFn = Callable[[list[Any]], Awaitable[Any]]
UpdateFn = Callable[[str, str, int], Awaitable[Any]]


class Driver:
    """One system under test: opened once, loaded with the data set, then asked for operations.

    Capabilities (``caps``) say which operation factories work. Factories return the most direct callable
    (``repo.get`` itself, not a wrapper), so the harness measures the system and not an extra frame.
    ``counters()`` returns cumulative counters; the harness takes differences around the timed part. Known
    names: ``store`` (round trips to the store of record), ``tier`` (round trips to remote cache tiers),
    ``l1_hits`` and ``l1_misses``, ``query_cache_hits`` and ``query_cache_misses``.
    """

    caps: frozenset[str] = frozenset()

    async def open(self, data: Dataset) -> None:
        """Connect, create what is needed and load ``data``."""

    async def aclose(self) -> None:
        """Release everything ``open`` acquired. Must not raise."""

    def counters(self) -> dict[str, int]:
        return {}

    async def verify(self, data: Dataset) -> str | None:
        """After the timed part: ``None`` if the system still holds the data set, else what differs.

        Server tables outlive a run and some are shared by name, so another run or test on the same server
        (say, ``--partitions 2``) can reload them halfway through this one; the rows of a system that fails
        are dropped. By default ``get_many`` of the ``get_many_100`` keys is compared with the data set.
        """
        if GET_MANY not in self.caps:
            return None
        got = await self.batch_getter()(data.many)
        return differences(data, data.many, got)

    def _unsupported(self, what: str) -> NotImplementedError:
        return NotImplementedError(f"{type(self).__name__} has no {what}")

    def getter(self) -> GetFn:
        raise self._unsupported("get")

    def concurrent_getter(self) -> GetFn:
        """A ``get`` that many tasks may await at once (a pool where the plain one holds one connection)."""
        return self.getter()

    def batch_getter(self) -> GetManyFn:
        raise self._unsupported("get_many")

    def putter(self) -> PutFn:
        raise self._unsupported("put")

    def updater(self) -> UpdateFn:
        """``updater()(pk, sk, delta)``: add ``delta`` to the item's ``amount_cents`` in place (no read first)."""
        raise self._unsupported("update")

    def pager(self) -> PageFn:
        """``pager()(partition, limit)``: the first page of one partition, ordered by sort key."""
        raise self._unsupported("query")

    def joiner(self) -> JoinFn:
        """``joiner()(order_partition, limit)``: the first page of one order partition with every order's
        customer; the result is a tierstore ``Page`` whose items have ``customer`` loaded, or a list of
        ``(order, customer)`` pairs (see :func:`tierstore.bench.scenarios.join_pairs`)."""
        raise self._unsupported("join")

    def many_joiner(self) -> JoinManyFn:
        """``many_joiner()(accounts)``: the visits of every account of the list (``BenchAccount.visits``); the
        result is the accounts with ``visits`` loaded, or a list of ``(account, visits)`` pairs (see
        :func:`tierstore.bench.scenarios.many_pairs`)."""
        raise self._unsupported("join_many")

    async def clear_cache(self) -> None:
        """Empty the cache tiers (``zipf_read`` starts cold, like its LRU reference)."""
        raise self._unsupported("cache")

    async def invalidate(self, pk: str, sk: str) -> None:
        """Make every tier forget one key, as a write through the repository would."""
        raise self._unsupported("cache")


class Scenario:
    """One workload. Subclasses set the class attributes and implement :meth:`prepare`.

    ``cached``: the scenario reads keys a warm cache holds, so a tierstore system is compared with the floor
    of its nearest tier rather than of its store. ``concurrency``: tasks running the operation at once.
    ``round_trips``: the counters summed into ``round_trips_per_op``.
    """

    name: ClassVar[str]
    needs: ClassVar[frozenset[str]]
    description: ClassVar[str] = ""
    cached: ClassVar[bool] = False
    concurrency: ClassVar[int] = 1
    round_trips: ClassVar[tuple[str, ...]] = ("store", "tier")

    async def begin(self, driver: Driver, ctx: RunContext) -> None:
        """Called once per driver before its first round."""

    def prepare(self, driver: Driver, data: Dataset) -> Op:
        """The operation: ``op(i)`` does the ``i``-th unit of work and returns an awaitable."""
        raise NotImplementedError

    def finish(self, driver: Driver, cell: Cell, ctx: RunContext) -> dict[str, Any]:
        """Extra keys for the result row, after the last round."""
        return {}


@dataclass(frozen=True, slots=True, kw_only=True)
class SystemSpec:
    """A named system: how to tell whether it can run here, and how to build its driver.

    ``store_floors`` / ``cache_floors`` map a scenario name (or ``"*"``) to the systems this one is compared
    with, primary first: cached scenarios use the nearest tier's floors, the others the store's.
    """

    name: str
    make: Callable[[RunContext], Driver]
    description: str = ""
    servers: tuple[str, ...] = ()
    modules: tuple[str, ...] = ()
    probe: Callable[[RunContext], str | None] | None = None
    store_floors: Mapping[str, tuple[str, ...]] = field(default_factory=dict)
    cache_floors: Mapping[str, tuple[str, ...]] = field(default_factory=dict)
    quick: bool = True

    @property
    def kind(self) -> str:
        return self.name.split(":", 1)[0]

    def floors_for(self, scenario: Scenario) -> tuple[str, ...]:
        table = self.cache_floors if scenario.cached and self.cache_floors else self.store_floors
        return table.get(scenario.name, table.get("*", ()))

    def all_floors(self) -> tuple[str, ...]:
        names: dict[str, None] = {}
        for table in (self.store_floors, self.cache_floors):
            for floors in table.values():
                names.update(dict.fromkeys(floors))
        return tuple(names)


@dataclass(slots=True)
class Registry:
    """Systems and scenarios by name, in registration order (which is the order of the table)."""

    systems: dict[str, SystemSpec] = field(default_factory=dict)
    scenarios: dict[str, Scenario] = field(default_factory=dict)

    def add_system(self, spec: SystemSpec) -> None:
        if spec.name in self.systems:
            raise ValueError(f"system {spec.name!r} is registered twice")
        if spec.kind not in ("tierstore", "raw", "peer"):
            raise ValueError(f"system names start with tierstore:, raw: or peer:, got {spec.name!r}")
        self.systems[spec.name] = spec

    def add_scenario(self, scenario: Scenario) -> None:
        if scenario.name in self.scenarios:
            raise ValueError(f"scenario {scenario.name!r} is registered twice")
        self.scenarios[scenario.name] = scenario


@dataclass(slots=True)
class RunContext:
    """What drivers and scenarios share during one run."""

    settings: Settings
    data: Dataset
    env: Mapping[str, str]
    workdir: str
    run_id: str = field(default_factory=lambda: uuid.uuid4().hex[:10])
    setup_times: dict[str, float] = field(default_factory=dict)

    def path(self, name: str) -> str:
        return os.path.join(self.workdir, name)


@dataclass(slots=True)
class Cell:
    """Everything measured for one system × scenario, summed over rounds."""

    system: str
    scenario: str
    samples: list[float] = field(default_factory=list)  # ns per op (batch means when batch > 1)
    ops: int = 0
    wall_ns: int = 0
    cpu_ns: int = 0
    counters: dict[str, int] = field(default_factory=dict)
    spans: list[range] = field(default_factory=list)  # op indexes of the timed parts
    next_index: int = 0
    batch: int = 1
    rounds: int = 0
    elapsed: float = 0.0  # seconds spent on the cell, warm-up and bookkeeping included
    extras: dict[str, Any] = field(default_factory=dict)


def differences(data: Dataset, keys: Sequence[tuple[str, str]], got: Sequence[BenchItem | None]) -> str | None:
    """``None`` if ``got`` are the data set's items of ``keys``, else a short description of what differs."""
    bad = [k for k, item in zip(keys, got, strict=True) if item != data.item(k)]
    if not bad:
        return None
    return f"{len(bad)} of {len(keys)} items differ from the data set, e.g. {bad[0]}"
