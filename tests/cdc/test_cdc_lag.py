"""Foreign writes, then fresh reads in two other processes: the lag of change-data-capture invalidation.

Per store: ``tierstore invalidator`` runs as a sidecar process on the shared Redis tier; two reader processes
read every key in a loop through their in-process tier and Redis (TTLs of 5 minutes, so only invalidations
make them fresh); this process writes around tierstore (plain SQL / boto3). For every write and reader, the
lag is (first read returning the new value or a newer one) − (the write's commit acknowledged), on the
machine's monotonic clock shared by the processes. Asserted: every write is seen, and no read that *started*
more than ``BOUND`` seconds after a write's acknowledgement returned an older value.

``TIERSTORE_CDC_LAG_WRITES`` (default 150 per store, for CI) sets the number of writes; the figures in
docs/change-data-capture.md come from ``TIERSTORE_CDC_LAG_WRITES=1000``. ``TIERSTORE_CDC_LAG_REPORT=path``
appends each store's result as a JSON line.
"""

from __future__ import annotations

import asyncio
import json
import os
import pathlib
import subprocess
import sys
import time
import uuid
from typing import Any

import pytest

import tierstore
from _cdc import CdcItem, ForeignWriter, drop_slot, new_slot, server_url, source_url, store_url
from tierstore.cdc.metrics import percentile

from _servers import REDIS_URL, require

ROOT = pathlib.Path(__file__).resolve().parents[2]
WRITES = int(os.environ.get("TIERSTORE_CDC_LAG_WRITES", "150"))
KEYS = 50
BOUND = 3.0  # seconds: no stale read may start later than this after a write was acknowledged
PACE = 0.005  # seconds between writes (~150 writes/s with the writes' own latency)

STORES = [
    pytest.param("postgres", marks=[pytest.mark.postgres, pytest.mark.redis]),
    pytest.param("mysql", marks=[pytest.mark.mysql, pytest.mark.redis]),
    pytest.param("dynamodb", marks=[pytest.mark.dynamodb, pytest.mark.redis]),
]


def _spawn(cmd: list[str], env: dict[str, str], log: pathlib.Path, *, pipe: bool) -> subprocess.Popen[str]:
    with open(log, "w") as err:
        return subprocess.Popen(cmd, env=env, stdout=subprocess.PIPE if pipe else subprocess.DEVNULL, stderr=err,
                                text=True)


def _append(path: str, line: str) -> None:
    with open(path, "a") as f:
        f.write(line)


def analyse(writes: list[tuple[str, int, float]], readers: list[dict[str, dict[str, list[float]]]],
            bound: float) -> dict[str, Any]:
    """Lags (seconds) of every (write, reader) pair and the stale reads that started after ``bound``."""
    lags: list[float] = []
    unseen = 0
    stale_after_bound = 0
    for seen in readers:
        per_key = {k: {int(v): t for v, t in values.items()} for k, values in seen.items()}
        for k, v, acked in writes:
            values = per_key[k]
            firsts = [t[0] for u, t in values.items() if u >= v]
            if not firsts:
                unseen += 1
            else:
                lags.append(max(0.0, min(firsts) - acked))
            # A read of an older value that started after acked + bound is a stale read past the bound.
            stale_after_bound += sum(1 for u, t in values.items() if 0 <= u < v and t[1] > acked + bound)
    return {
        "pairs": len(writes) * len(readers),
        "unseen": unseen,
        "stale_after_bound": stale_after_bound,
        "p50_ms": None if not lags else round(1000 * (percentile(lags, 0.5) or 0), 2),
        "p99_ms": None if not lags else round(1000 * (percentile(lags, 0.99) or 0), 2),
        "max_ms": None if not lags else round(1000 * max(lags), 2),
    }


def test_the_checker_catches_stale_reads_and_unseen_writes() -> None:
    """The analysis on made-up traces: a correct trace passes; a stale read past the bound, and a write never
    seen, are both caught."""
    writes = [("a", 1, 10.0)]
    good = [{"a": {"0": [0.0, 10.05], "1": [10.1, 20.0]}}]
    r = analyse(writes, good, 0.5)
    assert r["unseen"] == 0 and r["stale_after_bound"] == 0 and r["p50_ms"] == pytest.approx(100.0)
    stale = [{"a": {"0": [0.0, 10.7], "1": [10.8, 20.0]}}]  # the old value read 0.7 s after the write
    assert analyse(writes, stale, 0.5)["stale_after_bound"] == 1
    never = [{"a": {"0": [0.0, 30.0]}}]
    assert analyse(writes, never, 0.5)["unseen"] == 1


@pytest.mark.parametrize("store", STORES)
async def test_lag_over_foreign_writes_with_two_reader_processes(store: str, tmp_path: pathlib.Path) -> None:
    require(server_url(store), store)
    require(REDIS_URL, "redis")
    prefix = f"lag{uuid.uuid4().hex[:10]}"
    table_prefix = f"l{uuid.uuid4().hex[:8]}_" if store == "dynamodb" else ""
    cache_url = f"{REDIS_URL}{'&' if '?' in REDIS_URL else '?'}prefix={prefix}&timeout=1s"
    url = store_url(store, table_prefix)
    slot = new_slot()
    env = {**os.environ, "PYTHONPATH": os.pathsep.join([str(ROOT / "tests"), str(ROOT / "src")])}
    keys = [f"{prefix}-{i}" for i in range(KEYS)]
    db = await tierstore.connect(url).open()
    await db.create_tables(CdcItem)
    await db.repository(CdcItem).put_many([CdcItem(k, "v0", 0) for k in keys])
    await db.aclose()
    writer = await ForeignWriter(store, table_prefix).open()
    procs: list[subprocess.Popen[str]] = []
    status = tmp_path / "status.json"
    try:
        inv_args = [sys.executable, "-m", "tierstore.cli", "invalidator", "--store", url,
                    "--source", source_url(store, table_prefix), "--cache", cache_url, "--entity", "_cdc:CdcItem",
                    "--checkpoint", str(tmp_path / "cp.json"), "--status-file", str(status),
                    "--status-every", "0.05", "--log-level", "WARNING"]
        if store == "postgres":
            inv_args += ["--slot", slot, "--poll", "0.01"]
        elif store == "dynamodb":
            inv_args += ["--enable-stream", "--poll", "0.02"]
        inv = _spawn(inv_args, env, tmp_path / "inv.log", pipe=False)
        procs.append(inv)
        deadline = time.monotonic() + 60
        while True:
            try:
                if json.loads(status.read_text())["status"] == "ok":
                    break
            except (OSError, ValueError):
                pass
            assert inv.poll() is None, (tmp_path / "inv.log").read_text()
            assert time.monotonic() < deadline, "the invalidator did not start"
            await asyncio.sleep(0.05)
        stop = tmp_path / "stop"
        outs = [tmp_path / f"reader{i}.json" for i in range(2)]
        procs += [
            _spawn([sys.executable, str(ROOT / "tests" / "cdc" / "lag_reader.py"), url, cache_url, json.dumps(keys),
                    str(stop), str(out)], env, pathlib.Path(str(out) + ".log"), pipe=True)
            for out in outs
        ]
        for p in procs[1:]:
            line = await asyncio.wait_for(asyncio.to_thread(p.stdout.readline), 60)  # type: ignore[union-attr]
            assert line.strip() == "ready", line
        writes: list[tuple[str, int, float]] = []
        for i in range(WRITES):
            k = keys[i % KEYS]
            v = i // KEYS + 1
            await writer.set_item(k, f"v{v}", v)
            writes.append((k, v, time.monotonic()))
            await asyncio.sleep(PACE)
        await asyncio.sleep(BOUND + 0.5)  # reads keep going past the bound of the last write
        stop.touch()
        for p in procs[1:]:
            assert await asyncio.to_thread(p.wait, 60) == 0
        readers = [json.loads(out.read_text()) for out in outs]  # small files, after the run
    finally:
        for p in procs:
            if p.poll() is None:
                p.terminate()
                try:
                    p.wait(15)
                except subprocess.TimeoutExpired:
                    p.kill()
        await writer.aclose()
        if store == "postgres":
            await drop_slot(slot)
    result = {"store": store, "writes": WRITES, "readers": 2, "bound_s": BOUND, **analyse(writes, readers, BOUND)}
    print(json.dumps(result))
    report = os.environ.get("TIERSTORE_CDC_LAG_REPORT")
    if report:
        _append(report, json.dumps(result) + "\n")
    assert result["unseen"] == 0, result
    assert result["stale_after_bound"] == 0, result
