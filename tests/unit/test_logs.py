"""Logs: one ``tierstore.*`` tree, bounded arguments, and a dead tier that does not log per operation.

The dead tier is a Redis URL on a port nobody listens on, with breakers that never open, so every read and
write really fails on it. The throttle's clock is replaced by one the test moves: no sleeping."""

from __future__ import annotations

import logging
import pathlib
import re
import socket

import pytest

import tierstore
from tierstore import CachePolicy, Entity, PartitionKey
from tierstore import logs as tlogs

SRC = pathlib.Path(__file__).resolve().parents[2] / "src" / "tierstore"


class Thing(Entity, table="log_things"):
    id: PartitionKey[str]
    n: int = 0


def _closed_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return int(s.getsockname()[1])


class Clock:
    def __init__(self) -> None:
        self.t = 1000.0

    def __call__(self) -> float:
        return self.t


@pytest.fixture
def clock(monkeypatch: pytest.MonkeyPatch) -> Clock:
    c = Clock()
    monkeypatch.setattr(tlogs, "_now", c)
    for name in list(logging.Logger.manager.loggerDict):  # a fresh memory of what was logged
        for f in logging.getLogger(name).filters:
            if isinstance(f, tlogs.Throttle):
                f._kinds.clear()
    return c


async def _traffic(db: tierstore.Database, n: int) -> None:
    things = db.repository(Thing)
    for i in range(n):
        await things.put(Thing(f"k{i % 5}", i))
        await things.get(f"k{(i + 1) % 5}")
        await things.get_many([f"k{i % 5}", f"missing{i}"])


DEAD = {
    "redis": "redis://127.0.0.1:{port}/0?timeout=50ms&connect_timeout=50ms&coherence=false&breaker_failures=1000000",
    "memcached": "memcached://127.0.0.1:{port}?timeout=50ms&connect_timeout=50ms&breaker_failures=1000000",
}


def _dead_db(kind: str) -> tierstore.Database:
    pytest.importorskip({"redis": "redis", "memcached": "aiomcache"}[kind])
    url = DEAD[kind].format(port=_closed_port())
    return tierstore.connect("memory://", ["memory://", url], policy=CachePolicy(breaker_failures=1_000_000))


def _warnings(caplog: pytest.LogCaptureFixture) -> list[logging.LogRecord]:
    return [r for r in caplog.records if r.levelno >= logging.WARNING and r.name.startswith("tierstore")]


@pytest.mark.parametrize("kind", sorted(DEAD))
async def test_a_dead_tier_logs_each_failure_once_then_a_summary(
    kind: str, clock: Clock, caplog: pytest.LogCaptureFixture
) -> None:
    caplog.set_level(logging.DEBUG, logger="tierstore")
    async with _dead_db(kind) as db:
        await _traffic(db, 100)
        assert db.stats()["tiers"][kind]["errors"] >= 100  # it really failed on every operation
        first = _warnings(caplog)
        kinds = [(r.name, r.msg, r.args[:2] if isinstance(r.args, tuple) else ()) for r in first]
        assert 1 <= len(first) <= 6, [r.getMessage() for r in first]
        assert len(set(kinds)) == len(kinds)  # no kind of warning twice
        assert all(len(r.getMessage()) < 600 for r in caplog.records)
        debug = [r for r in caplog.records if r.levelno == logging.DEBUG]
        assert len(debug) <= 10  # per-node debug lines are throttled as well

        caplog.clear()
        clock.t += tlogs.SUMMARY_INTERVAL + 1
        await _traffic(db, 50)
        again = _warnings(caplog)
        assert 1 <= len(again) <= 6
        summary = [r.getMessage() for r in again if "more like this in the last 61s" in r.getMessage()]
        assert summary, [r.getMessage() for r in again]
        assert int(re.search(r"\[(\d+) more", summary[0]).group(1)) >= 50  # type: ignore[union-attr]


async def test_without_the_throttle_the_same_traffic_logs_per_operation(
    clock: Clock, caplog: pytest.LogCaptureFixture, monkeypatch: pytest.MonkeyPatch
) -> None:
    """Control: the scenario above does produce a warning per operation when nothing throttles it."""
    monkeypatch.setattr(tlogs, "SUMMARY_INTERVAL", 0.0)
    caplog.set_level(logging.WARNING, logger="tierstore")
    async with _dead_db("redis") as db:
        await _traffic(db, 30)
    assert len(_warnings(caplog)) >= 60


def test_arguments_are_bounded() -> None:
    throttle = tlogs.Throttle(interval=0)
    key = "k" * 10_000
    record = logging.LogRecord("tierstore.cache", logging.WARNING, __file__, 1, "tier %s: %r", ("redis", KeyError(key)),
                               None)
    assert throttle.filter(record)
    message = record.getMessage()
    assert message.startswith("tier redis: KeyError: 'kkk") and len(message) < tlogs.MAX_ARG + 60


def test_every_logger_is_in_the_tierstore_tree() -> None:
    names = set()
    for path in SRC.rglob("*.py"):
        names.update(re.findall(r"(?:getLogger|get_logger)\(([^)]*)\)", path.read_text()))
    names -= {"name", "ROOT", "name: str"}  # in tierstore/logs.py itself
    assert names, "no logger found: the scan is broken"
    bad = [n for n in names if not re.fullmatch(r'"tierstore(\.[a-z_.]+)?"', n)]
    assert bad == []
    with pytest.raises(ValueError):
        tlogs.get_logger("other")
