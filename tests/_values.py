"""Entities of the value suites in ``tests/catalogue`` (regressions, the bad-input catalogue, generated values)."""

from __future__ import annotations

from typing import Any

from tierstore import Entity, Index, PartitionKey, SortKey, Version


class Sample(Entity, table="ts_values"):
    """A field of every common kind, so one table takes every generated value."""

    id: PartitionKey[str]
    n: int = 0
    f: float = 0.0
    s: str = ""
    b: bytes = b""
    flag: bool = False
    readings: list[float] = []
    tags: list[str] = []
    meta: dict[str, Any] = {}
    maybe: int | None = None
    version: Version = 0


class Ranked(Entity, table="ts_ranked", indexes=[Index("by_board", "board", "score")]):
    """A sort key and a secondary index (key-size checks on index fields)."""

    player: PartitionKey[str]
    game: SortKey[str]
    board: str = "main"
    score: int = 0


class IntKeyed(Entity, table="ts_int_keyed"):
    id: PartitionKey[int]
    payload: bytes = b""


ENTITIES = (Sample, Ranked, IntKeyed)
