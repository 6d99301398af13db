"""A reader process for the lag test: reads every key in a loop through tierstore (in-process + Redis
tiers) and records, per key and value, when it was first seen and the start of the last read returning it.

Usage: python lag_reader.py STORE_URL CACHE_URL KEYS_JSON STOP_FILE OUT_JSON
Prints ``ready`` once every key is cached; writes OUT_JSON after STOP_FILE appears.
"""

from __future__ import annotations

import asyncio
import json
import os
import sys
import time


async def main(store_url: str, cache_url: str, keys_json: str, stop_file: str, out_json: str) -> None:
    import tierstore
    from _cdc import CdcItem
    from tierstore import CachePolicy

    keys: list[str] = json.loads(keys_json)
    policy = CachePolicy(ttl=300, ttl_jitter=0)  # without invalidations, stale for minutes: lag is the cdc's
    db = await tierstore.connect(store_url, ["memory://?max_items=10000&ttl=300s", cache_url], policy=policy).open()
    repo = db.repository(CdcItem)
    seen: dict[str, dict[int, list[float]]] = {k: {} for k in keys}
    now = time.monotonic
    try:
        for k in keys:
            item = await repo.get(k)
            assert item is not None
            seen[k][item.n] = [now(), now()]
        print("ready", flush=True)
        next_check = now() + 0.05
        while True:
            for k in keys:
                start = now()
                item = await repo.get(k)
                end = now()
                value = -1 if item is None else item.n
                rec = seen[k].get(value)
                if rec is None:
                    seen[k][value] = [end, start]
                else:
                    rec[1] = start
            if end >= next_check:
                next_check = end + 0.05
                if _exists(stop_file):
                    break
            await asyncio.sleep(0.002)
    finally:
        await db.aclose()
    _dump(out_json, {k: {str(v): t for v, t in values.items()} for k, values in seen.items()})


def _exists(path: str) -> bool:
    return os.path.exists(path)


def _dump(path: str, doc: object) -> None:
    with open(path, "w") as f:
        json.dump(doc, f)


if __name__ == "__main__":
    asyncio.run(main(*sys.argv[1:6]))
