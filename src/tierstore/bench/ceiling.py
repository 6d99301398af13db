"""Hit-ratio ceilings of a cache of ``k`` entries: the static top-k and Belady's offline optimum.

An in-process tier that fills on demand can do no better than Belady's MIN on the same trace (it evicts, on a
miss, the entry whose next use is farthest in the future — the new key included, so a key that is not worth
keeping is not kept). The static top-k ceiling is what a cache pinned to the ``k`` most popular keys would hit:
from the distribution (``zipf_top_k``: the probability mass of the ``k`` most likely ranks, no cold start) or
from the trace itself (``trace_top_k``). ``lru_ratio`` is the plain LRU on the same trace, the usual baseline.

Hand-written: a few dozen lines over ``heapq`` and ``collections``; no maintained library computes MIN on an
arbitrary trace without pulling in a simulator framework.
"""

from __future__ import annotations

import heapq
from collections import Counter, OrderedDict
from collections.abc import Hashable, Sequence

__all__ = ["belady_hits", "belady_ratio", "lru_ratio", "trace_top_k", "zipf_top_k"]


def _check(k: int) -> None:
    if k < 1:
        raise ValueError("a cache holds at least one entry (k >= 1)")


def zipf_top_k(n: int, s: float, k: int) -> float:
    """The probability that one Zipf(``s``) draw over ``n`` ranks falls in the ``k`` most likely ones."""
    _check(k)
    if n < 1:
        raise ValueError("n must be >= 1")
    weights = [1.0 / (r + 1) ** s for r in range(n)]
    return float(sum(weights[: min(k, n)]) / sum(weights))


def trace_top_k(trace: Sequence[Hashable], k: int) -> float:
    """The share of ``trace`` that reads one of its ``k`` most frequent keys (a static cache, warm)."""
    _check(k)
    if not trace:
        return 0.0
    return sum(c for _, c in Counter(trace).most_common(k)) / len(trace)


def belady_hits(trace: Sequence[Hashable], k: int) -> int:
    """Hits of Belady's MIN with ``k`` entries over ``trace``, starting cold (each first read is a miss)."""
    _check(k)
    n = len(trace)
    never = n + 1  # the next use of a key read no more: farther than any real position
    next_use = [never] * n
    last: dict[Hashable, int] = {}
    for i in range(n - 1, -1, -1):
        next_use[i] = last.get(trace[i], never)
        last[trace[i]] = i
    cached: dict[Hashable, int] = {}  # key -> its next use
    heap: list[tuple[int, int, Hashable]] = []  # (-next use, tiebreak, key); stale entries skipped lazily
    hits = 0
    for i, key in enumerate(trace):
        if key in cached:
            hits += 1
        cached[key] = next_use[i]
        heapq.heappush(heap, (-next_use[i], i, key))
        while len(cached) > k:
            neg, _, victim = heapq.heappop(heap)
            if cached.get(victim) == -neg:
                del cached[victim]
    return hits


def belady_ratio(trace: Sequence[Hashable], k: int) -> float:
    """:func:`belady_hits` over the trace's length."""
    return belady_hits(trace, k) / len(trace) if trace else 0.0


def lru_ratio(trace: Sequence[Hashable], k: int) -> float:
    """Hit ratio of a cold LRU of ``k`` entries over ``trace``."""
    _check(k)
    entries: OrderedDict[Hashable, None] = OrderedDict()
    hits = 0
    for key in trace:
        if key in entries:
            entries.move_to_end(key)
            hits += 1
        else:
            entries[key] = None
            if len(entries) > k:
                entries.popitem(last=False)
    return hits / len(trace) if trace else 0.0
