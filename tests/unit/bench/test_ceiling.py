"""The hit-ratio ceilings of ``--curves l1_capacity`` on hand-made traces, checked against values worked out by
hand and against an exhaustive search, with a broken MIN as the control the checks must reject."""

from __future__ import annotations

import functools
import heapq
import random
from collections.abc import Hashable, Sequence

import pytest

from tierstore.bench.ceiling import belady_hits, belady_ratio, lru_ratio, trace_top_k, zipf_top_k

TRACE = list("abcabdabcd")


def optimal_hits(trace: Sequence[Hashable], k: int) -> int:
    """The most hits any cache of ``k`` entries can get on ``trace``: every choice of what to keep, tried."""

    @functools.cache
    def best(i: int, cache: frozenset[Hashable]) -> int:
        if i == len(trace):
            return 0
        key = trace[i]
        if key in cache:
            return 1 + best(i + 1, cache)
        options = [best(i + 1, cache)]  # do not keep it
        grown = cache | {key}
        if len(grown) <= k:
            options.append(best(i + 1, grown))
        else:
            options += [best(i + 1, grown - {victim}) for victim in cache]
        return max(options)

    return best(0, frozenset())


def broken_min_hits(trace: Sequence[Hashable], k: int) -> int:
    """A MIN that must keep every key it reads (evicts among the others only): not the optimum."""
    never = len(trace) + 1
    nxt = [next((j for j in range(i + 1, len(trace)) if trace[j] == trace[i]), never) for i in range(len(trace))]
    cached: dict[Hashable, int] = {}
    hits = 0
    for i, key in enumerate(trace):
        if key in cached:
            hits += 1
        elif len(cached) >= k:
            victim = heapq.nlargest(1, cached, key=cached.__getitem__)[0]
            del cached[victim]
        cached[key] = nxt[i]
    return hits


def test_hand_worked_trace() -> None:
    # k=2: a b c(not kept) a✓ b✓ d(not kept) a✓ b✓ c d -> 4 hits; LRU thrashes; a and b are 6 reads of 10.
    assert belady_hits(TRACE, 2) == 4
    assert belady_ratio(TRACE, 2) == pytest.approx(0.4)
    assert lru_ratio(TRACE, 2) == 0.0
    assert trace_top_k(TRACE, 2) == pytest.approx(0.6)
    assert belady_hits(TRACE, 4) == 6  # every key fits: only the 4 first reads miss
    assert zipf_top_k(3, 1.0, 1) == pytest.approx(1 / (1 + 1 / 2 + 1 / 3))
    assert zipf_top_k(3, 1.0, 5) == pytest.approx(1.0)


def test_the_control_is_rejected() -> None:
    """The same checks catch a MIN that cannot decline to keep a key: 3 hits where 4 are possible."""
    assert broken_min_hits(TRACE, 2) == 3
    assert broken_min_hits(TRACE, 2) != optimal_hits(TRACE, 2)
    assert belady_hits(TRACE, 2) == optimal_hits(TRACE, 2)


@pytest.mark.parametrize("seed", range(6))
def test_min_is_the_optimum_and_bounds_lru(seed: int) -> None:
    rng = random.Random(seed)
    trace = [rng.choice("abcdef"[: 3 + seed % 4]) for _ in range(12)]
    for k in (1, 2, 3):
        assert belady_hits(trace, k) == optimal_hits(trace, k)
        assert lru_ratio(trace, k) <= belady_ratio(trace, k)


def test_bad_capacity_is_refused() -> None:
    with pytest.raises(ValueError):
        belady_hits(TRACE, 0)
    with pytest.raises(ValueError):
        zipf_top_k(0, 1.0, 1)
