"""Hand-written ``join_many_20`` floors: the visits of 20 accounts in one batched read, grouped by hand.

- ``raw:dict-join-many``: visits kept as msgpack payloads per account in a dict; one lookup per account and a
  decode per visit (what the memory store does, with nothing around it). One "round trip" per batch.
- ``raw:sqlite3-join-many``: blocking stdlib sqlite3 (the driver tierstore's SQLite store runs on), one
  ``SELECT … WHERE account_id IN (…) ORDER BY account_id, seq`` per batch, rows grouped into a dict.
"""

# SQL text here is assembled from the benchmark entity's constant field and table names only; every value is
# a bound parameter.
# ruff: noqa: S608

from __future__ import annotations

import sqlite3

import msgspec

from tierstore.bench.api import JOIN_MANY, Driver, JoinManyFn
from tierstore.bench.data import VISIT_FIELDS, BenchAccount, BenchVisit, Dataset

__all__ = ["DictJoinManyDriver", "Sqlite3JoinManyDriver"]

Pairs = list[tuple[BenchAccount, list[BenchVisit]]]


class _ManyFloor(Driver):
    caps = frozenset({JOIN_MANY})

    def __init__(self) -> None:
        self.trips = 0

    def counters(self) -> dict[str, int]:
        return {"store": self.trips}


class DictJoinManyDriver(_ManyFloor):
    """``raw:dict-join-many``: the floor of ``join_many_20`` on the memory store."""

    def __init__(self) -> None:
        super().__init__()
        self._visits: dict[str, list[bytes]] = {}

    async def open(self, data: Dataset) -> None:
        encode = msgspec.msgpack.Encoder().encode
        self._visits = {}
        for v in data.visits:  # generated in seq order
            self._visits.setdefault(v.account_id, []).append(encode(v))

    def many_joiner(self) -> JoinManyFn:
        visits, decode = self._visits, msgspec.msgpack.Decoder(BenchVisit).decode

        async def join(accounts: list[BenchAccount]) -> Pairs:
            self.trips += 1
            get = visits.get
            return [(a, [decode(raw) for raw in get(a.id, ())]) for a in accounts]

        return join


_TABLE = "tsbench_raw_visits"
_COLS = ", ".join(VISIT_FIELDS)


class Sqlite3JoinManyDriver(_ManyFloor):
    """``raw:sqlite3-join-many``: one ``SELECT … IN`` per batch on blocking sqlite3."""

    def __init__(self, path: str) -> None:
        super().__init__()
        self.path = path
        self._conn: sqlite3.Connection | None = None

    async def open(self, data: Dataset) -> None:
        conn = self._conn = sqlite3.connect(self.path, isolation_level=None)
        conn.execute(f"DROP TABLE IF EXISTS {_TABLE}")
        conn.execute(
            f"CREATE TABLE {_TABLE} (account_id TEXT NOT NULL, seq INTEGER NOT NULL, page TEXT NOT NULL, "
            "duration_ms INTEGER NOT NULL, created_at INTEGER NOT NULL, PRIMARY KEY (account_id, seq))"
        )
        conn.execute("BEGIN")
        conn.executemany(
            f"INSERT INTO {_TABLE} ({_COLS}) VALUES ({', '.join(['?'] * len(VISIT_FIELDS))})",
            [tuple(getattr(v, f) for f in VISIT_FIELDS) for v in data.visits],
        )
        conn.execute("COMMIT")

    async def aclose(self) -> None:
        if self._conn is not None:
            self._conn.close()

    def many_joiner(self) -> JoinManyFn:
        assert self._conn is not None
        execute = self._conn.execute
        statements: dict[int, str] = {}

        async def join(accounts: list[BenchAccount]) -> Pairs:
            self.trips += 1
            n = len(accounts)
            sql = statements.get(n)
            if sql is None:
                sql = statements[n] = (
                    f"SELECT {_COLS} FROM {_TABLE} WHERE account_id IN ({', '.join(['?'] * n)}) "
                    "ORDER BY account_id, seq"
                )
            groups: dict[str, list[BenchVisit]] = {a.id: [] for a in accounts}
            for row in execute(sql, [a.id for a in accounts]):
                groups[row[0]].append(BenchVisit(*row))
            return [(a, groups[a.id]) for a in accounts]

        return join
