"""Counters (stats.py): typed fields, serialised flat by ``as_dict()``; ``reset()`` zeroes every counter and
keeps the breakers' current states."""

from __future__ import annotations

from tierstore.backends import TierStats
from tierstore.stats import StoreStats


def test_every_counter_is_a_field_and_as_dict_is_flat() -> None:
    s = TierStats()
    s.hits += 2
    s.coalesced_max_keys = 64
    s.breakers["h:1"] = "open"
    d = s.as_dict()
    assert d["hits"] == 2 and d["coalesced_max_keys"] == 64 and d["breakers"] == {"h:1": "open"}
    assert "extra" not in d and all(not isinstance(v, dict) or k == "breakers" for k, v in d.items())
    d["breakers"]["h:1"] = "closed"
    assert s.breakers == {"h:1": "open"}  # a copy


def test_reset_zeroes_counters_and_keeps_breaker_states() -> None:
    s = TierStats()
    for name, value in s.as_dict().items():
        if isinstance(value, int):
            setattr(s, name, 5)
    s.breakers["h:1"] = "half_open"
    s.tier_breaker = "open"
    s.reset()
    assert all(v == 0 for v in s.as_dict().values() if isinstance(v, int))
    assert s.breakers == {"h:1": "half_open"} and s.tier_breaker == "open"


def test_store_stats_reset() -> None:
    s = StoreStats(round_trips=3, errors=1)
    s.reset()
    assert s == StoreStats()
