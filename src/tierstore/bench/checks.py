"""Checks of the in-process tier and of query paging that a timed row cannot show.

- ``l1_entry_bytes``: memory per cached entry (tracemalloc, through the real repository read path) against the
  entry's encoded size; target ≤ 2 × encoded + 150 B.
- ``page_memory``: tracemalloc peak while iterating every page of a large partition (20+ pages), against the
  whole result held at once (and one page); iterating must hold about a page, not the result set.
- ``zipf_policy``: hit ratio of the in-process tier (S3-FIFO) against a plain LRU of the same capacity on the
  same Zipf key sequence, at two capacities.
"""

from __future__ import annotations

import gc
import random
import tracemalloc
from collections.abc import Sequence
from typing import Any

from tierstore.bench.api import Driver, RunContext, SystemSpec
from tierstore.bench.data import BenchItem, Dataset, LruReference, make_item
from tierstore.bench.progress import Progress

__all__ = ["entry_memory", "page_memory", "run_checks", "zipf_policy"]

PAGE = 100


async def run_checks(
    ctx: RunContext, opened: Sequence[tuple[SystemSpec, Driver]], progress: Progress
) -> list[dict[str, Any]]:
    """Every check that applies to what ran (the targets read off the rows are :mod:`tierstore.bench.targets`)."""
    from tierstore.bench.tierstore_driver import TierstoreDriver

    quick = ctx.settings.quick
    stores: dict[str, str] = {}
    for spec, driver in opened:
        if isinstance(driver, TierstoreDriver) and not driver.tier_urls:
            store = spec.name.split(":", 1)[1]
            if quick and store not in ("memory", "sqlite"):
                continue
            url = driver.store_url
            if store == "sqlite":
                url = "sqlite+aiosqlite:///" + ctx.path("check-pages.db")
            stores[store] = url
    tasks = 2 + len(stores)
    progress.begin("checks", tasks)
    checks: list[dict[str, Any]] = []
    try:
        progress.advance("l1 memory per entry")
        checks.append(await entry_memory(ctx.data, 2_000 if quick else 10_000))
        progress.advance("zipf policy")
        checks.extend(zipf_policy(ctx.data, fractions=(0.01, ctx.data.l1_fraction)))
        for store, url in stores.items():
            progress.advance(f"page memory {store}")
            try:
                checks.append(await page_memory(f"tierstore:{store}", url, 2_000 if quick else 10_000))
            except Exception as exc:
                progress.note(f"page memory check on {store} failed: {type(exc).__name__}: {exc}")
    finally:
        if tracemalloc.is_tracing():
            tracemalloc.stop()
    return checks


async def entry_memory(data: Dataset, n: int) -> dict[str, Any]:
    """Bytes per L1 entry after ``n`` reads that each fill the tier, via ``tierstore:memory+memory``."""
    import tierstore

    rng = random.Random(7)
    items = [make_item(rng, f"m{i // 100:04d}", f"s{i % 100:04d}", i) for i in range(n)]
    async with tierstore.connect("memory://", [f"memory://?max_items={n * 2}"]) as db:
        repo = db.repository(BenchItem)
        await repo.put_many(items)
        await repo.get(items[0].pk, items[0].sk)  # first-use allocations are not per entry
        encoded = sum(len(repo.codec.encode(i, repo.schema.cache_key(repo.schema.key_of(i)))) for i in items) / n
        keys = [(i.pk, i.sk) for i in items[1:]]
        del items
        gc.collect()
        tracemalloc.start()
        try:
            base = tracemalloc.get_traced_memory()[0]
            for pk, sk in keys:
                await repo.get(pk, sk)
            gc.collect()
            used = tracemalloc.get_traced_memory()[0] - base
            for _ in range(3):  # every entry hot: the tier keeps decoded objects as well
                for pk, sk in keys:
                    await repo.get(pk, sk)
            gc.collect()
            used_hot = tracemalloc.get_traced_memory()[0] - base
        finally:
            tracemalloc.stop()
        cached = len(db.cache.tiers[0])  # type: ignore[arg-type]
    per_entry = used / max(len(keys), 1)
    target = 2 * encoded + 150
    return {
        "check": "l1_entry_bytes",
        "system": "tierstore:memory+memory",
        "value": round(per_entry, 1),
        "target": f"<= {target:.0f} (2 x {encoded:.0f} B encoded + 150)",
        "ok": per_entry <= target,
        "detail": f"{cached} entries cached; envelope {encoded:.0f} B per item; "
        f"{used_hot / max(len(keys), 1):.0f} B per entry once hot (decoded object kept)",
        "encoded_bytes": round(encoded, 1),
        "hot_bytes_per_entry": round(used_hot / max(len(keys), 1), 1),
    }


async def page_memory(system: str, store_url: str, n: int, page: int = PAGE) -> dict[str, Any]:
    """tracemalloc peaks: iterating all pages of an ``n``-item partition vs one page vs the whole result."""
    import tierstore.backends

    rng = random.Random(11)
    async with tierstore.connect(store_url) as db:
        await db.create_tables(BenchItem)
        await db.store.truncate(tierstore.backends.schema_of(BenchItem))
        repo = db.repository(BenchItem)
        for start in range(0, n, 500):
            await repo.put_many([make_item(rng, "big", f"s{i:06d}", i) for i in range(start, min(n, start + 500))])
        await repo.query("big", limit=page)  # warm statement caches outside the measurement
        gc.collect()
        tracemalloc.start()
        try:
            page_held, page_peak = await _held(repo, page, whole=False)
            iter_peak, count = await _iterate_peak(repo, page)
            all_held, _ = await _held(repo, page, whole=True)
        finally:
            tracemalloc.stop()
        await db.store.truncate(tierstore.backends.schema_of(BenchItem))
    share = iter_peak / all_held if all_held else float("inf")
    return {
        "check": "page_memory",
        "system": system,
        "value": round(share, 3),
        "target": "<= 0.25 of the whole result (iteration holds a page, not the result)",
        "ok": count == n and share <= 0.25,
        "detail": (
            f"iterating {count} items in pages of {page}: peak {iter_peak / 1024:.0f} KiB "
            f"({iter_peak / max(page_held, 1):.1f} pages held); one page held {page_held / 1024:.0f} KiB, "
            f"peak {page_peak / 1024:.0f} KiB; whole result held {all_held / 1024:.0f} KiB"
        ),
        "iter_peak_bytes": iter_peak,
        "page_held_bytes": page_held,
        "page_peak_bytes": page_peak,
        "all_bytes": all_held,
    }


async def _held(repo: Any, page: int, *, whole: bool) -> tuple[int, int]:
    """Bytes still allocated while holding one page (or the whole result), and the peak while fetching it."""
    gc.collect()
    base = tracemalloc.get_traced_memory()[0]
    tracemalloc.reset_peak()
    held: Any = await repo.query("big", limit=page).all() if whole else await repo.query("big", limit=page)
    current, peak = tracemalloc.get_traced_memory()
    del held
    return current - base, peak - base


async def _iterate_peak(repo: Any, page: int) -> tuple[int, int]:
    gc.collect()
    base = tracemalloc.get_traced_memory()[0]
    tracemalloc.reset_peak()
    count = 0
    async for _ in repo.query("big", limit=page):
        count += 1
    return tracemalloc.get_traced_memory()[1] - base, count


def zipf_policy(data: Dataset, fractions: Sequence[float]) -> list[dict[str, Any]]:
    """S3-FIFO (``MemoryTier``) vs LRU hit ratios on ``data.zipf``, each capacity a fraction of the key space."""
    from tierstore.tiers.memory import MemoryTier

    n = len(data.items)
    seq = data.zipf
    keys = [f"k{i}" for i in range(n)]
    value = b"x" * 200
    out = []
    for fraction in fractions:
        capacity = max(1, int(n * fraction))
        tier = MemoryTier(max_items=capacity, max_bytes=1 << 40, ttl=1e9)
        entry, store = tier.entry, tier.store
        for i in seq:
            k = keys[i]
            if entry(k) is None:
                store(k, value)
        s3 = tier.stats.hits / len(seq)
        lru = LruReference(capacity)
        for i in seq:
            lru.access(i)
        out.append({
            "check": "zipf_policy",
            "system": "tierstore:memory (MemoryTier)",
            "value": round(s3, 4),
            "target": f">= LRU {lru.hit_ratio:.4f}",
            "ok": s3 >= lru.hit_ratio,
            "detail": (
                f"capacity {capacity} of {n} keys, {len(seq)} Zipf(s={data.zipf_s}) reads: "
                f"S3-FIFO {s3:.4f} vs LRU {lru.hit_ratio:.4f}"
            ),
            "lru_hit_ratio": round(lru.hit_ratio, 4),
            "capacity": capacity,
        })
    return out
