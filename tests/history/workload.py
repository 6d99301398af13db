"""The history workload: one process of random get/put/get_many/delete over a few keys, every operation
recorded with its invoke and complete times.

Times come from ``time.monotonic_ns()``, which on Linux is CLOCK_MONOTONIC: one clock for every process of
the machine, so operations of different processes can be ordered by it. Each put writes a token unique to
the run (``w``: process, client and sequence number), so a read tells exactly which write it saw.

Run as a script by the harness: ``python workload.py CONFIG_JSON OUT_PATH``; it prints ``ready`` once its
databases are open, starts when it reads a line on stdin, and writes the history (msgspec JSON lines) to
OUT_PATH when done.
"""

from __future__ import annotations

import asyncio
import os
import random
import sys
import time
from pathlib import Path
from typing import Any

import msgspec

import tierstore
from tierstore import CachePolicy, Entity, PartitionKey, Version
from tierstore.config import store_config


class HItem(Entity, table="ts_history"):
    id: PartitionKey[str]
    w: int  # the token of the put that wrote this value: unique in a run
    version: Version = 0


class Op(msgspec.Struct, array_like=True):
    """One operation on the database of ``setup``. ``kind``: ``get``, ``put`` or ``delete``; ``seen``: the
    tokens read, one per key (0 = absent); ``ok``: False when it raised (a write that raised may or may not
    have happened)."""

    setup: str
    proc: int
    client: int
    kind: str
    keys: list[str]
    invoke: int
    complete: int
    w: int = 0
    seen: list[int] = []
    ok: bool = True
    error: str = ""
    owed: bool = False  # more invalidations kept for replay after this write than before it (a tier missed them)


class Setup(msgspec.Struct, kw_only=True):
    """One database of the run: its tiers (URLs) and its keys (no other setup touches them)."""

    name: str
    tiers: list[str]
    keys: list[str]
    naive_redis: str = ""  # a Redis URL: the naive cache-aside tier of naive.py instead of ``tiers``


class Config(msgspec.Struct, kw_only=True):
    store: str
    setups: list[Setup]
    seconds: float
    clients: int
    proc: int
    seed: int
    policy: dict[str, Any] = {}


def token(proc: int, client: int, seq: int) -> int:
    return (proc + 1) * 10**12 + (client + 1) * 10**9 + seq


async def client_loop(cfg: Config, setup: Setup, repo: tierstore.Repository[HItem], client: int, stop: float,
                      out: list[Op]) -> None:
    rnd = random.Random(f"{cfg.seed}/{setup.name}/{cfg.proc}/{client}")
    keys = setup.keys
    name = setup.name
    now = time.monotonic_ns
    undelivered = repo.cache.undelivered
    seq = 0

    while now() < stop:
        r = rnd.random()
        if r < 0.45:
            key = rnd.choice(keys)
            op = Op(name, cfg.proc, client, "get", [key], now(), 0)
            try:
                item = await repo.get(key)
                op.seen = [0 if item is None else item.w]
            except Exception as exc:
                op.ok, op.error = False, repr(exc)
        elif r < 0.6:
            ks = rnd.sample(keys, min(3, len(keys)))
            op = Op(name, cfg.proc, client, "get", ks, now(), 0)
            try:
                items = await repo.get_many(ks)
                op.seen = [0 if i is None else i.w for i in items]
            except Exception as exc:
                op.ok, op.error = False, repr(exc)
        elif r < 0.92:
            key = rnd.choice(keys)
            seq += 1
            w = token(cfg.proc, client, seq)
            op = Op(name, cfg.proc, client, "put", [key], now(), 0, w=w)
            owed = undelivered()
            try:
                await repo.put(HItem(id=key, w=w), check_version=False)  # last writer wins: the checked model
            except Exception as exc:
                op.ok, op.error = False, repr(exc)
            op.owed = undelivered() > owed
        else:
            key = rnd.choice(keys)
            op = Op(name, cfg.proc, client, "delete", [key], now(), 0)
            owed = undelivered()
            try:
                await repo.delete(key)
            except Exception as exc:
                op.ok, op.error = False, repr(exc)
            op.owed = undelivered() > owed
        op.complete = now()
        out.append(op)


async def run(cfg: Config, out_path: str) -> None:
    # One store (one connection pool) per process, shared by every setup's database: the run holds a few
    # connections of a PostgreSQL server other suites use too.
    store = store_config(cfg.store).build()
    await store.open()
    dbs: list[tierstore.Database] = []
    try:
        repos = []
        for setup in cfg.setups:
            tiers: list[Any] = list(setup.tiers)
            if setup.naive_redis:
                from naive import NaiveRedisTier

                tiers = [NaiveRedisTier(setup.naive_redis, prefix=setup.name.replace("+", "_"))]
            db = tierstore.connect(store, tiers, policy=CachePolicy(**cfg.policy), schema="create")
            dbs.append(db)
            await db.open()
            repo = db.repository(HItem)
            await repo.get(setup.keys[0])  # open connections and the L1 channel before the clock starts
            repos.append(repo)
        print("ready", flush=True)
        await asyncio.to_thread(sys.stdin.readline)  # "go": every process starts at once
        stop = time.monotonic_ns() + int(cfg.seconds * 1e9)
        ops: list[Op] = []
        await asyncio.gather(*(
            client_loop(cfg, setup, repo, c, stop, ops)
            for setup, repo in zip(cfg.setups, repos, strict=True) for c in range(cfg.clients)
        ))
    finally:
        for db in dbs:
            await db.aclose()
        await store.aclose()
    enc = msgspec.json.Encoder()
    await asyncio.to_thread(Path(out_path).write_bytes, b"".join(enc.encode(op) + b"\n" for op in ops))


if __name__ == "__main__":
    sys.path.insert(0, os.path.dirname(os.path.abspath(__file__)))
    asyncio.run(run(msgspec.json.decode(sys.argv[1].encode(), type=Config), sys.argv[2]))
