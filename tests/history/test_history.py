"""The history check: several processes × clients run random get/put/get_many/delete over a few keys on
PostgreSQL, through each tier configuration at once, while the cache servers are stopped, killed and
restarted (empty and with their data), the invalidation channel is cut and traffic is delayed; then every
operation is checked (``checker.py``) against what real time allows, and a table is printed.

CI runs a short schedule (each fault about twice); ``TIERSTORE_HISTORY_SECONDS=3600`` runs the same
schedule, cycled, for an hour. A stale read across processes is allowed only within the documented bound of
its configuration (docs/consistency.md); everything else — a stale read within a process, a read going back
in time, a lost write, a stale read beyond the bound — fails its test. The naive cache-aside setup runs in
the same processes and must be caught.
"""

from __future__ import annotations

import asyncio
import bisect
import itertools
import sys
from pathlib import Path

import pytest

from tierstore.testing.servers import with_params

from _servers import PG_URL, require

sys.path.insert(0, str(Path(__file__).resolve().parent))

from checker import Report, check, summary
from harness import FAULTS, History, SetupSpec, run_history, seconds_env
from workload import Op

pytestmark = [pytest.mark.postgres, pytest.mark.faults]

L1_AGE = 1.0  # the in-process tier's max age where no channel invalidates it (memory://?ttl=1s)
CHANNEL_BOUND = 0.25  # the L1 channel's delivery bound on a loaded CI machine (steady state: milliseconds)
# After a fault ends, a writer whose invalidation failed replays it when its breaker lets it through again
# (breaker_cooldown, 1 s by default) at its next operation; until then other processes may read the entry
# it could not remove. The writers here are busy; an idle or closed writer replays nothing.
RECOVERY = 2.0
LOG_POLL = 0.5  # CachePolicy(invalidation_log=): any process replays what a writer could not deliver

SETUPS = [
    SetupSpec("memory+redis", ("memory", "redis")),
    SetupSpec("redis", ("redis",)),
    SetupSpec("memcached", ("memcached",)),
    SetupSpec("memory+memcached", ("memory", "memcached"), l1_ttl=L1_AGE),
    SetupSpec("naive", (), naive=True, keys=2),  # hot keys: the race it does not guard is hit every second
]


class Bounds:
    """The documented bounds on a stale read across processes (docs/consistency.md), for one history.

    * A read that joins another read of its process already in flight returns what that read finds: stale
      by at most how long that read was in flight past the write (``joined``).
    * An in-process entry: by the channel's delivery bound (Redis), or without a channel by its max age
      plus the read that filled it.
    * A write made while a cache server was unreachable: until the writer reaches it again and replays
      (``outage``).
    """

    def __init__(self, hist: History) -> None:
        self.hist = hist
        tiers = hist.setup.tiers
        self.flat = CHANNEL_BOUND if "redis" in tiers else 0.0
        reads: dict[int, list[tuple[int, int]]] = {}
        for op in hist.ops:
            if op.kind == "get":
                reads.setdefault(op.proc, []).append((op.invoke, op.complete))
        self.invokes: dict[int, list[int]] = {}
        self.latest_end: dict[int, list[int]] = {}
        longest = 0.0
        for proc, rs in reads.items():
            rs.sort()
            self.invokes[proc] = [a for a, _ in rs]
            self.latest_end[proc] = list(itertools.accumulate((b for _, b in rs), max))
            longest = max(longest, max((b - a) / 1e9 for a, b in rs))
        if "memory" in tiers and "redis" not in tiers:
            self.flat = L1_AGE + longest
        # A write during which its process came to owe more invalidations, outside any injected fault too (a
        # round trip past its deadline on a loaded machine): the same as a write made during an outage.
        self.windows = list(hist.faults) + [("owed", op.complete, op.complete) for op in hist.ops if op.owed]

    def joined(self, op: Op, staleness: float) -> bool:
        """Was a read of this process in flight at ``op``'s invocation that began before the write it missed?"""
        written = op.invoke - int(staleness * 1e9)
        i = bisect.bisect_left(self.invokes[op.proc], written)
        return i > 0 and self.latest_end[op.proc][i - 1] >= op.invoke

    def outage(self, op: Op, staleness: float) -> bool:
        """Was the write it missed made while a cache server was down (or within a breaker cooldown after),
        or did a write leave invalidations owed, and the read made before the writer had reached the server
        again (``RECOVERY`` after the fault)?"""
        written = op.invoke - int(staleness * 1e9)
        slack = int(RECOVERY * 1e9)
        return any(s <= written <= e + slack and op.invoke <= e + slack for _, s, e in self.windows)

    def __call__(self, op: Op, staleness: float) -> bool:
        return staleness <= self.flat or self.joined(op, staleness) or self.outage(op, staleness)


@pytest.fixture(scope="module")
def histories() -> dict[str, tuple[History, Report]]:
    require(PG_URL, "postgres")
    for kind in ("redis-server", "memcached"):
        if not any((Path(d) / kind).exists() for d in ("/usr/bin", "/usr/local/bin")):
            pytest.skip(f"{kind} is not installed")
    store = with_params(PG_URL, pool_size=8)
    hists = asyncio.run(run_history(SETUPS, store, seconds=seconds_env(14.0), faults=tuple(FAULTS),
                                    policy={"invalidation_log": LOG_POLL}))
    # the naive setup is held to no bound at all: any stale read of it is what the checker must find
    out = {name: (h, check(h.ops, h.final, allow=None if h.setup.naive else Bounds(h))) for name, h in hists.items()}
    faults = next(iter(hists.values())).faults
    t0 = min(op.invoke for h in hists.values() for op in h.ops)
    print("\nfaults:", ", ".join(f"{f} at {(s - t0) / 1e9:.1f}s" for f, s, _ in faults))
    print(summary([(name, rep) for name, (_, rep) in out.items()]))
    owed = {name: sum(op.owed for op in h.ops) for name, h in hists.items()}
    print("writes that left invalidations owed:", ", ".join(f"{k} {v}" for k, v in owed.items()))
    for name, (h, rep) in out.items():
        by: dict[str, list[float]] = {}
        for v in rep.violations:
            when = h.fault_at(v.read.invoke) if v.read else "the end"
            by.setdefault(f"{v.kind} after {when}", []).append(v.staleness)
        if by and not h.setup.naive:
            print(f"{name}:", "; ".join(f"{k}: {len(s)} (max {max(s) * 1e3:.0f} ms)" for k, s in sorted(by.items())))
    return out


def _explain(hist: History, rep: Report) -> str:
    worst = sorted(rep.violations, key=lambda v: -v.staleness)[:5]
    return "\n".join(
        f"{v.kind} {v.key}: {v.staleness * 1e3:.1f} ms" + (f" after {hist.fault_at(v.read.invoke)}" if v.read else "")
        + f" ({v.detail})" for v in worst
    )


@pytest.mark.parametrize("name", [s.name for s in SETUPS if not s.naive])
def test_no_violation_beyond_the_documented_bounds(histories: dict[str, tuple[History, Report]], name: str) -> None:
    hist, rep = histories[name]
    assert rep.reads > 50 and rep.writes > 50, "the workload hardly ran"
    assert rep.failed == 0, "fail-open: no operation may fail while the caches are down"
    assert not rep.violations, f"{len(rep.violations)} violations beyond the bounds:\n" + _explain(hist, rep)


def test_the_checker_catches_a_naive_cache_aside_tier(histories: dict[str, tuple[History, Report]]) -> None:
    _, rep = histories["naive"]
    assert rep.reads > 50
    assert rep.count("stale") + rep.count("stale_same_process") + rep.count("read_your_writes") > 0
