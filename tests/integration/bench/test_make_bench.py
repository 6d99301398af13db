"""``make bench`` on a machine whose servers run: it leaves their databases and keys untouched.

The command is read from the Makefile's ``bench`` target and run in a subprocess with every ``TIERSTORE_*`` URL
pointing at the live test servers. Before it runs, each database holds a table of the user's and a row in the
very table the benchmark's own systems use (``tsbench_items``), and Redis holds a key of the user's; afterwards
all of them are still there, unchanged, and no table or key was added. With ``--servers`` the run does use the
servers, and writes only to ``tsbench*`` tables and keys: the user's table and key are still untouched.
"""

from __future__ import annotations

import asyncio
import json
import os
import re
import shlex
import subprocess
import sys
import uuid
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest
import sqlalchemy as sa
from sqlalchemy.ext.asyncio import create_async_engine

import tierstore
from tierstore.bench.data import BenchItem

from _servers import MYSQL_URL, PG_URL, REDIS_URL, require

ROOT = Path(__file__).resolve().parents[3]
USER_TABLE = "user_sentinel_orders"
SENTINEL = BenchItem(
    pk="sentinel-user-row", sk="s0", name="kept", email="kept@example.com", status="x", amount_cents=1,
    quantity=1, score=0.5, created_at=1, note="a row the benchmark must not delete",
)


def make_bench_command() -> list[str]:
    """The recipe of the Makefile's ``bench`` target, with ``$(VENV)/bin/tierstore`` as this interpreter."""
    text = (ROOT / "Makefile").read_text()
    recipe = re.search(r"^bench:.*\n\t(.+)$", text, re.MULTILINE)
    assert recipe is not None, "the Makefile has no bench target"
    words = shlex.split(recipe.group(1))
    assert words[0] == "$(VENV)/bin/tierstore", words
    return [sys.executable, "-m", "tierstore.cli", *words[1:]]


def test_the_make_bench_recipe_is_the_quick_embedded_run() -> None:
    cmd = make_bench_command()
    assert cmd[3:] == ["bench", "--quick", "--json", "bench-quick.json"]


async def _tables(url: str) -> dict[str, int]:
    """Every table of the URL's database and its row count."""
    engine = create_async_engine(url)
    try:
        async with engine.connect() as conn:
            names = await conn.run_sync(lambda c: sa.inspect(c).get_table_names())
            counts = {}
            for name in names:
                q = sa.text(f"SELECT COUNT(*) FROM {engine.dialect.identifier_preparer.quote(name)}")  # noqa: S608
                counts[name] = int((await conn.execute(q)).scalar_one())
            return counts
    finally:
        await engine.dispose()


async def _plant(url: str) -> None:
    """A table of the user's with a row, and the sentinel row in the benchmark's own items table."""
    engine = create_async_engine(url)
    try:
        async with engine.begin() as conn:
            await conn.execute(sa.text(f"DROP TABLE IF EXISTS {USER_TABLE}"))
            await conn.execute(sa.text(f"CREATE TABLE {USER_TABLE} (id INTEGER PRIMARY KEY, note VARCHAR(40))"))
            await conn.execute(sa.text(f"INSERT INTO {USER_TABLE} VALUES (1, 'mine')"))  # noqa: S608
    finally:
        await engine.dispose()
    async with tierstore.connect(url) as db:
        await db.create_tables(BenchItem)
        await db.repository(BenchItem).put(SENTINEL)


async def _check(url: str) -> None:
    engine = create_async_engine(url)
    try:
        async with engine.connect() as conn:
            rows = (await conn.execute(sa.text(f"SELECT id, note FROM {USER_TABLE}"))).all()  # noqa: S608
            assert [tuple(r) for r in rows] == [(1, "mine")], url
    finally:
        await engine.dispose()
    async with tierstore.connect(url) as db:
        assert await db.repository(BenchItem).get(SENTINEL.pk, SENTINEL.sk) == SENTINEL, url


async def _drop(url: str) -> None:
    engine = create_async_engine(url)
    try:
        async with engine.begin() as conn:
            await conn.execute(sa.text(f"DROP TABLE IF EXISTS {USER_TABLE}"))
    finally:
        await engine.dispose()
    async with tierstore.connect(url) as db:
        await db.repository(BenchItem).delete(SENTINEL.pk, SENTINEL.sk)


def _redis() -> Any:
    import redis

    return redis.Redis.from_url(REDIS_URL)


@pytest.fixture
def planted() -> Iterator[str]:
    """The sentinels in PostgreSQL, MariaDB and Redis; yields the Redis key. Removed afterwards."""
    require(PG_URL, "postgres")
    require(MYSQL_URL, "mysql")
    require(REDIS_URL, "redis")
    key = f"user-sentinel-{uuid.uuid4().hex[:8]}"
    for url in (PG_URL, MYSQL_URL):
        asyncio.run(_plant(url))
    r = _redis()
    r.set(key, b"mine")
    try:
        yield key
    finally:
        r.delete(key)
        r.close()
        for url in (PG_URL, MYSQL_URL):
            asyncio.run(_drop(url))


def _run(cmd: list[str], cwd: Path) -> subprocess.CompletedProcess[str]:
    env = {**os.environ, "TIERSTORE_PG_URL": PG_URL, "TIERSTORE_MYSQL_URL": MYSQL_URL, "TIERSTORE_REDIS_URL": REDIS_URL}
    return subprocess.run(cmd, cwd=cwd, env=env, capture_output=True, text=True, timeout=600, check=False)


def _tsbench_keys(r: Any) -> set[bytes]:
    return set(r.scan_iter(match=b"tsbench*", count=1000))


@pytest.mark.postgres
@pytest.mark.mysql
@pytest.mark.redis
def test_make_bench_leaves_running_servers_untouched(planted: str, tmp_path: Path) -> None:
    before = {url: asyncio.run(_tables(url)) for url in (PG_URL, MYSQL_URL)}
    r = _redis()
    keys_before = _tsbench_keys(r)
    # The Makefile's command as is, with short cells so the test stays quick (the selection does not depend on it).
    res = _run([*make_bench_command(), "--duration", "0.01"], tmp_path)
    assert res.returncode == 0, res.stdout[-3000:] + res.stderr[-3000:]

    for url in (PG_URL, MYSQL_URL):
        asyncio.run(_check(url))
        assert asyncio.run(_tables(url)) == before[url], f"make bench changed the database of {url}"
    assert r.get(planted) == b"mine"
    assert not _tsbench_keys(r) - keys_before, "make bench wrote to Redis"  # (earlier runs' keys may expire)
    r.close()

    doc = json.loads((tmp_path / "bench-quick.json").read_text())
    ran = {row["system"] for row in doc["results"]}
    assert "tierstore:sqlite" in ran and "tierstore:memory+memory" in ran
    assert not any(s in ran for s in ("tierstore:postgres", "tierstore:mariadb", "raw:asyncpg", "raw:aiomysql"))
    reasons = {s["system"]: s["reason"] for s in doc["skipped"]}
    assert "--servers" in reasons["tierstore:postgres"]
    # Not a terminal: one line per timed cell on stderr.
    cells = [line for line in res.stderr.splitlines() if line.startswith("bench ")]
    assert len(cells) == len(doc["results"]), res.stderr[-2000:]
    assert "not run, they need a server" in res.stderr


@pytest.mark.postgres
@pytest.mark.mysql
@pytest.mark.redis
def test_servers_when_asked_write_only_their_own_tables_and_keys(planted: str, tmp_path: Path) -> None:
    before = {url: asyncio.run(_tables(url)) for url in (PG_URL, MYSQL_URL)}
    cmd = [
        sys.executable, "-m", "tierstore.cli", "bench", "--servers", "--systems",
        "tierstore:postgres+memory+redis,tierstore:mariadb", "--scenarios", "get,put", "--duration", "0.01",
        "--partitions", "2", "--no-checks", "--json", "servers.json",
    ]
    res = _run(cmd, tmp_path)
    assert res.returncode == 0, res.stdout[-3000:] + res.stderr[-3000:]
    doc = json.loads((tmp_path / "servers.json").read_text())
    ran = {row["system"] for row in doc["results"]}
    assert {"tierstore:postgres+memory+redis", "tierstore:mariadb", "raw:asyncpg", "raw:aiomysql"} <= ran

    r = _redis()
    assert r.get(planted) == b"mine"
    r.close()
    for url in (PG_URL, MYSQL_URL):
        after = asyncio.run(_tables(url))
        changed = {t for t in set(after) | set(before[url]) if after.get(t) != before[url].get(t)}
        assert all(t.startswith("tsbench") for t in changed), (url, changed)
        assert after[USER_TABLE] == 1
