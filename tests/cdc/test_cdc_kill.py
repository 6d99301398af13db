"""``kill -9`` of the invalidator process in the middle of a stream of foreign writes, then a restart: no
invalidation is lost (checkpoints), on each store.

The invalidator runs as ``tierstore invalidator`` in its own process. 60 items are cached in Redis with a
5-minute TTL, so a lost invalidation stays visible as a stale read. A foreign writer updates them one by one;
the invalidator is killed with SIGKILL once it has delivered some, the writes go on while it is dead, and it
is restarted on the same checkpoint. Every item must then read fresh within the bound. The control restarts
*without* the checkpoint (a new slot / no file) and must find stale items — the check can fail.
"""

from __future__ import annotations

import asyncio
import json
import os
import pathlib
import signal
import subprocess
import sys
import uuid
from typing import Any

import pytest

import tierstore
from _cdc import CdcItem, ForeignWriter, drop_slot, new_slot, server_url, source_url, store_url
from tierstore import CachePolicy

from _servers import REDIS_URL, require

ROOT = pathlib.Path(__file__).resolve().parents[2]
N = 60
FRESH_WITHIN = 10.0  # seconds after the restart for every item to read fresh (it takes well under 1 s)

CASES = [
    pytest.param("postgres", True, marks=[pytest.mark.postgres, pytest.mark.redis], id="postgres"),
    pytest.param("mysql", True, marks=[pytest.mark.mysql, pytest.mark.redis], id="mysql"),
    pytest.param("dynamodb", True, marks=[pytest.mark.dynamodb, pytest.mark.redis], id="dynamodb"),
    pytest.param("postgres", False, marks=[pytest.mark.postgres, pytest.mark.redis], id="control-postgres"),
    pytest.param("mysql", False, marks=[pytest.mark.mysql, pytest.mark.redis], id="control-mysql"),
    pytest.param("dynamodb", False, marks=[pytest.mark.dynamodb, pytest.mark.redis], id="control-dynamodb"),
]


class Sidecar:
    """One ``tierstore invalidator`` process."""

    def __init__(self, args: list[str], workdir: pathlib.Path, name: str) -> None:
        self.status = workdir / f"{name}.status.json"
        self.log = workdir / f"{name}.log"
        env = {**os.environ, "PYTHONPATH": os.pathsep.join([str(ROOT / "tests"), str(ROOT / "src")])}
        cmd = [sys.executable, "-m", "tierstore.cli", "invalidator", *args,
               "--status-file", str(self.status), "--status-every", "0.02"]
        with open(self.log, "ab") as log:
            self.proc = subprocess.Popen(cmd, env=env, stdout=log, stderr=log, stdin=subprocess.DEVNULL)

    def read_status(self) -> dict[str, Any] | None:
        try:
            return json.loads(self.status.read_text())  # type: ignore[no-any-return]
        except (OSError, ValueError):
            return None

    async def wait(self, predicate: Any, within: float, what: str) -> dict[str, Any]:
        loop = asyncio.get_running_loop()
        deadline = loop.time() + within
        while True:
            st = self.read_status()
            if st is not None and predicate(st):
                return st
            if self.proc.poll() is not None:
                raise AssertionError(f"invalidator exited ({self.proc.returncode}): {self.log.read_text()[-3000:]}")
            if loop.time() > deadline:
                raise AssertionError(f"timed out waiting for {what}; status {st}; log {self.log.read_text()[-2000:]}")
            await asyncio.sleep(0.02)

    def kill9(self) -> None:
        self.proc.send_signal(signal.SIGKILL)
        self.proc.wait(10)

    def stop(self) -> None:
        if self.proc.poll() is None:
            self.proc.terminate()
            try:
                self.proc.wait(15)
            except subprocess.TimeoutExpired:
                self.proc.kill()
                self.proc.wait(5)


@pytest.mark.parametrize(("store", "with_checkpoint"), CASES)
async def test_kill_9_mid_stream_then_restart_loses_no_invalidation(
    store: str, with_checkpoint: bool, tmp_path: pathlib.Path
) -> None:
    require(server_url(store), store)
    require(REDIS_URL, "redis")
    prefix = f"kill{uuid.uuid4().hex[:10]}"
    table_prefix = f"k{uuid.uuid4().hex[:8]}_" if store == "dynamodb" else ""
    cache_url = f"{REDIS_URL}{'&' if '?' in REDIS_URL else '?'}prefix={prefix}&timeout=1s"
    url = store_url(store, table_prefix)
    slots = [new_slot()]
    checkpoint = tmp_path / "checkpoint.json"

    def args(slot: str) -> list[str]:
        a = ["--store", url, "--source", source_url(store, table_prefix), "--cache", cache_url,
             "--entity", "_cdc:CdcItem", "--checkpoint", str(checkpoint), "--log-level", "WARNING"]
        if store == "postgres":
            a += ["--slot", slot, "--poll", "0.01"]
        elif store == "dynamodb":
            a += ["--enable-stream", "--poll", "0.02"]
        return a

    db = await tierstore.connect(url, [cache_url], policy=CachePolicy(ttl=300, ttl_jitter=0)).open()
    await db.create_tables(CdcItem)
    repo = db.repository(CdcItem)
    keys = [f"{prefix}-{i}" for i in range(N)]
    await repo.put_many([CdcItem(k, "v1") for k in keys])
    writer = await ForeignWriter(store, table_prefix).open()
    first = second = None
    try:
        first = Sidecar(args(slots[0]), tmp_path, "first")
        await first.wait(lambda st: st["status"] == "ok", 60, "the first invalidator to start")
        assert [i.name for i in await repo.get_many(keys)] == ["v1"] * N  # cached (Redis, 5 min)

        killed = asyncio.Event()

        async def write_all() -> None:
            for n, k in enumerate(keys):
                if n == N // 2:
                    # The second half is written only once the invalidator is dead, however fast it kept up
                    # with the first (on a loaded machine it may have taken all of it before the kill).
                    await killed.wait()
                await writer.set_item(k, "v2", 2)
                await asyncio.sleep(0.01)

        writing = asyncio.create_task(write_all())
        await first.wait(lambda st: st["changes"] >= 10, 30, "some invalidations before the kill")
        first.kill9()  # mid-stream: writes keep coming
        killed.set()
        assert not writing.done(), "the kill must land while foreign writes are still being made"
        await writing  # the rest is written while no invalidator runs
        stale_now = sum(1 for i in await repo.get_many(keys) if i is not None and i.name == "v1")
        assert stale_now > 0  # writes made while it was down are stale until someone invalidates them

        if not with_checkpoint:  # the control: forget where it was
            checkpoint.unlink(missing_ok=True)
            slots.append(new_slot())
        second = Sidecar(args(slots[-1]), tmp_path, "second")
        await second.wait(lambda st: st["status"] == "ok", 60, "the restarted invalidator")

        async def stale() -> list[str]:
            items = await repo.get_many(keys)
            return [k for k, i in zip(keys, items, strict=True) if i is None or i.name != "v2"]

        loop = asyncio.get_running_loop()
        deadline = loop.time() + (FRESH_WITHIN if with_checkpoint else 3.0)
        left = await stale()
        while left and loop.time() < deadline:
            await asyncio.sleep(0.05)
            left = await stale()
        if with_checkpoint:
            assert left == [], f"{len(left)} invalidations lost across kill -9: {left[:5]}"
        else:
            assert left, "without the checkpoint the writes made while the invalidator was dead must stay stale"
    finally:
        for sidecar in (first, second):
            if sidecar is not None:
                sidecar.stop()
        await writer.aclose()
        await db.aclose()
        if store == "postgres":
            for slot in slots:
                await drop_slot(slot)
