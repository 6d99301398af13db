"""The history checker: which reads of a recorded history returned a value that was already overwritten.

Writes of one key are ordered by the store (PostgreSQL commits them one at a time). The checker does not
know that order, only what real time implies: a write ``A`` is certainly older than ``B`` when ``A``
completed before ``B`` was invoked (``A`` committed before ``B`` did). A read may return the value of any
*candidate* write of its value — the put of its token, or for "absent" any delete (or the initial
state) — that is invoked before the read completes. The read is **stale** when every candidate was
certainly overwritten before the read was invoked; its staleness is how long before the read's invocation
the freshest candidate was overwritten (when the overwriting write completed).

Kinds of violation:

* ``stale`` — stale, and the overwriting write was made by another process;
* ``stale_same_process`` — made by another client of this process;
* ``read_your_writes`` — made by this very client (it wrote, then read an older value);
* ``monotonic`` — a client read a value certainly older than one it had read before (a later read went
  back in time);
* ``lost_write`` — the final store state is certainly older than an acknowledged write.

A write that raised has an unknown outcome: it counts as a candidate (it may have happened) but never as
an overwrite (it may not have). Reads that raised check nothing.
"""

from __future__ import annotations

import bisect
import math
from collections import defaultdict
from collections.abc import Callable, Iterable, Sequence
from dataclasses import dataclass, field
from typing import Any

INF = math.inf
KINDS = ("stale", "stale_same_process", "read_your_writes", "monotonic", "lost_write")


@dataclass
class Violation:
    kind: str
    key: str
    staleness: float  # seconds the value had been overwritten when the read was invoked
    read: Any
    detail: str = ""


@dataclass
class Report:
    ops: int = 0
    failed: int = 0
    reads: int = 0
    writes: int = 0
    violations: list[Violation] = field(default_factory=list)
    allowed: list[Violation] = field(default_factory=list)  # stale within a documented bound

    def count(self, kind: str, *, allowed: bool = False) -> int:
        return sum(1 for v in (self.allowed if allowed else self.violations) if v.kind == kind)

    def max_staleness(self, *, allowed: bool = False) -> float:
        return max((v.staleness for v in (self.allowed if allowed else self.violations)), default=0.0)

    def table(self, title: str = "") -> str:
        head = f"{'history':<34} {'ops':>8} {'failed':>7} " + " ".join(f"{k:>10}" for k in _SHORT) + \
            f" {'max stale':>10} {'in bound':>9} {'max':>8}"
        row = f"{title[:34]:<34} {self.ops:>8} {self.failed:>7} " + " ".join(
            f"{self.count(k):>10}" for k in KINDS) + f" {self.max_staleness() * 1e3:>8.1f}ms" + \
            f" {len(self.allowed):>9} {self.max_staleness(allowed=True) * 1e3:>6.1f}ms"
        return head + "\n" + row

    def merge(self, other: Report) -> None:
        self.ops += other.ops
        self.failed += other.failed
        self.reads += other.reads
        self.writes += other.writes
        self.violations += other.violations
        self.allowed += other.allowed


_SHORT = ("stale", "stale/proc", "ryw", "monotonic", "lost")


class _Writes:
    """The writes of one key, indexed for the checks."""

    def __init__(self, puts: list[Any], deletes: list[Any]) -> None:
        self.by_token = {w.w: w for w in puts}
        acked = sorted((w for w in puts + deletes if w.ok), key=lambda w: w.invoke)
        self.acked_invoke = [w.invoke for w in acked]
        # suffix minimum of completion over writes sorted by invocation: the first certain overwrite
        self.suffix_min: list[tuple[float, Any]] = [(INF, None)] * (len(acked) + 1)
        for i in range(len(acked) - 1, -1, -1):
            w = acked[i]
            nxt = self.suffix_min[i + 1]
            self.suffix_min[i] = (w.complete, w) if w.complete < nxt[0] else nxt
        dels = sorted(deletes, key=lambda d: d.invoke)
        self.del_invoke = [d.invoke for d in dels]
        # prefix maximum of completion (INF for a delete that raised) over deletes sorted by invocation
        self.del_prefix_max: list[float] = []
        best = -INF
        for d in dels:
            best = max(best, d.complete if d.ok else INF)
            self.del_prefix_max.append(best)

    def overwritten(self, complete: float) -> tuple[float, Any]:
        """When (and by which write) a write that completed at ``complete`` was first certainly overwritten."""
        i = bisect.bisect_right(self.acked_invoke, complete)
        return self.suffix_min[i]

    def candidate_complete(self, token: int, before: float) -> float | None:
        """The completion time of the freshest candidate write of ``token`` invoked before ``before``
        (None: no write of that value could have been seen — the read returned a value never written)."""
        if token == 0:
            i = bisect.bisect_left(self.del_invoke, before)
            latest_delete = self.del_prefix_max[i - 1] if i else -INF
            return max(latest_delete, -INF)  # the initial state: absent, "completed" at -inf
        w = self.by_token.get(token)
        if w is None or w.invoke >= before:
            return None
        return w.complete if w.ok else INF


def check(
    ops: Iterable[Any], final: dict[str, int], *, allowance: float = 0.0,
    allow: Callable[[Any, float], bool] | None = None,
) -> Report:
    """Check a history (``ops``: :class:`~workload.Op`-like records) and the final store state ``final``
    (key -> token, 0 for absent). A stale read across processes whose staleness is at most ``allowance``
    seconds is counted in ``Report.allowed`` rather than as a violation; ``allow(op, staleness)`` may also
    excuse one, and a read going back in time by ``staleness`` (a configuration whose reads may be stale
    within a bound may also go back within it). Nothing excuses staleness within a process."""
    def excused(op: Any, staleness: float) -> bool:
        return staleness <= allowance or (allow is not None and allow(op, staleness))

    ops = list(ops)
    report = Report(ops=len(ops), failed=sum(1 for op in ops if not op.ok))
    puts: dict[str, list[Any]] = defaultdict(list)
    deletes: dict[str, list[Any]] = defaultdict(list)
    for op in ops:
        if op.kind == "put":
            puts[op.keys[0]].append(op)
            report.writes += 1
        elif op.kind == "delete":
            deletes[op.keys[0]].append(op)
            report.writes += 1
    keys = set(puts) | set(deletes) | set(final) | {k for op in ops for k in op.keys}
    writes = {k: _Writes(puts[k], deletes[k]) for k in keys}
    # per client and key: (completion time of the freshest candidate, read) of its previous reads
    last_seen: dict[tuple[int, int, str], float] = {}
    reads = sorted((op for op in ops if op.kind == "get" and op.ok), key=lambda op: op.invoke)
    report.reads = len(reads)
    for op in reads:
        for key, tok in zip(op.keys, op.seen, strict=True):
            ws = writes[key]
            cand = ws.candidate_complete(tok, op.complete)
            if cand is None:
                report.violations.append(Violation("stale", key, 0.0, op, f"token {tok} was never written"))
                continue
            at, by = ws.overwritten(cand)
            stale = at < op.invoke
            if stale:
                staleness = (op.invoke - at) / 1e9
                if by.proc != op.proc:
                    kind = "stale"
                elif by.client == op.client:
                    kind = "read_your_writes"
                else:
                    kind = "stale_same_process"
                v = Violation(kind, key, staleness, op, f"overwritten by {by.kind} {by.w} of p{by.proc}c{by.client}")
                if kind == "stale" and excused(op, staleness):
                    report.allowed.append(v)
                else:
                    report.violations.append(v)
            ck = (op.proc, op.client, key)
            prev = last_seen.get(ck, -INF)
            if cand < prev and not stale:
                # went back: what this read returned was overwritten before a value this client read earlier
                # was even written
                v = Violation("monotonic", key, (prev - cand) / 1e9, op)
                (report.allowed if excused(op, v.staleness) else report.violations).append(v)
            if tok != 0:
                last_seen[ck] = max(prev, ws.by_token[tok].invoke)
    for key in keys:
        tok = final.get(key, 0)
        ws = writes[key]
        cand = ws.candidate_complete(tok, INF)
        at, by = (INF, None) if cand is None else ws.overwritten(cand)
        if cand is None or at < INF:
            report.violations.append(Violation("lost_write", key, 0.0, None, f"final token {tok}, overwritten by {by}"))
    return report


def summary(reports: Sequence[tuple[str, Report]]) -> str:
    lines = []
    for i, (title, rep) in enumerate(reports):
        t = rep.table(title)
        lines.append(t if i == 0 else t.split("\n", 1)[1])
    return "\n".join(lines)
