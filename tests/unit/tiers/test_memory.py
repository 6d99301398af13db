from __future__ import annotations

import random
import time
from collections import OrderedDict

import pytest

from tierstore import ConfigError, MemoryTier
from tierstore.tiers.memory import MemoryTierConfig


def test_ttl_and_max_age(monkeypatch: pytest.MonkeyPatch) -> None:
    now = [1000.0]
    monkeypatch.setattr(time, "monotonic", lambda: now[0])
    tier = MemoryTier(ttl=5)
    tier.store("a", b"1", ttl=60)  # capped by the tier's max age
    tier.store("b", b"2", ttl=1)
    now[0] += 2
    assert tier.entry("a") is not None and tier.entry("b") is None
    now[0] += 4
    assert tier.entry("a") is None
    assert len(tier) == 0


def test_bounded_by_items_and_bytes() -> None:
    tier = MemoryTier(max_items=100, max_bytes=10**9)
    for i in range(1000):
        tier.store(f"k{i}", b"x" * 10)
    assert len(tier) <= 100
    tier = MemoryTier(max_items=10**6, max_bytes=50_000)
    for i in range(1000):
        tier.store(f"k{i}", b"x" * 200)
    assert tier.nbytes <= 50_000 and len(tier) > 50
    assert tier.stats.evictions > 0


def test_accounting_survives_churn() -> None:
    tier = MemoryTier(max_items=50, max_bytes=10**9)
    rng = random.Random(7)
    for _ in range(5000):
        k = f"k{rng.randrange(200)}"
        op = rng.random()
        if op < 0.5:
            tier.store(k, b"v" * rng.randrange(1, 50))
        elif op < 0.8:
            tier.entry(k)
        else:
            tier.invalidate(k)
        assert len(tier) <= 50
    expected = sum(e.size for e in list(tier._small.values()) + list(tier._main.values()))
    assert tier.nbytes == expected


def _zipf_keys(n: int, universe: int, s: float, seed: int) -> list[int]:
    rng = random.Random(seed)
    weights = [1 / (i + 1) ** s for i in range(universe)]
    return rng.choices(range(universe), weights=weights, k=n)


def test_s3fifo_beats_lru_on_zipf() -> None:
    capacity, universe = 500, 20_000
    keys = _zipf_keys(60_000, universe, 0.9, seed=1)
    tier = MemoryTier(max_items=capacity, max_bytes=10**9)
    hits = 0
    for k in keys:
        key = str(k)
        if tier.entry(key) is not None:
            hits += 1
        else:
            tier.store(key, b"v")
    lru: OrderedDict[int, None] = OrderedDict()
    lru_hits = 0
    for k in keys:
        if k in lru:
            lru_hits += 1
            lru.move_to_end(k)
        else:
            lru[k] = None
            if len(lru) > capacity:
                lru.popitem(last=False)
    assert hits > lru_hits * 1.05, (hits, lru_hits)


def test_config_from_url_and_validation() -> None:
    cfg = MemoryTierConfig.from_url("memory://?max_items=10&max_bytes=1MiB&ttl=250ms")
    assert cfg == MemoryTierConfig(max_items=10, max_bytes=2**20, ttl=0.25)
    assert isinstance(cfg.build(), MemoryTier)
    with pytest.raises(ConfigError):
        MemoryTierConfig.from_url("memory://?max_itemz=10")
    with pytest.raises(ConfigError):
        MemoryTier(max_items=0)
