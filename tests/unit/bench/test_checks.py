"""The in-process checks (tierstore.bench.checks): L1 memory per entry, page memory, the Zipf policy."""

from __future__ import annotations

from tierstore.bench.checks import entry_memory, page_memory, zipf_policy
from tierstore.bench.data import Dataset


def test_zipf_policy_against_lru_at_each_capacity() -> None:
    data = Dataset(partitions=5, zipf_length=5_000)
    checks = zipf_policy(data, fractions=(0.01, 0.1))
    assert [c["capacity"] for c in checks] == [5, 50]
    for c in checks:
        assert c["check"] == "zipf_policy" and 0 < c["value"] < 1 and 0 < c["lru_hit_ratio"] < 1
        assert c["ok"] == (c["value"] >= c["lru_hit_ratio"])
        assert c["target"] == f">= LRU {c['lru_hit_ratio']:.4f}"


async def test_entry_memory_counts_bytes_per_cached_entry() -> None:
    check = await entry_memory(Dataset(partitions=2), 300)
    assert check["check"] == "l1_entry_bytes" and check["system"] == "tierstore:memory+memory"
    assert 180 <= check["encoded_bytes"] <= 240  # the envelope of a ~200-byte item
    assert check["value"] > 0 and check["hot_bytes_per_entry"] >= check["value"]
    assert "300 entries cached" in check["detail"]  # the first read (before measuring) filled one too


async def test_page_memory_iterates_every_item() -> None:
    check = await page_memory("tierstore:memory", "memory://", 1_000)
    assert check["check"] == "page_memory" and "iterating 1000 items in pages of 100" in check["detail"]
    assert 0 < check["iter_peak_bytes"] < check["all_bytes"]
    assert check["ok"] == (check["value"] <= 0.25)
