"""Row encoding (the SQL limits, checked before I/O) and decoding per dialect, without a database."""

from __future__ import annotations

import math

import pytest

from tierstore import Entity, PartitionKey, SortKey, StoreError, ValidationError
from tierstore.stores.sql.tables import KEY_LENGTH

from _sql import ByBytes, KwOnly, Nested, Wide, lite, maria, pg, plan


def test_row_values_checks_sql_limits() -> None:
    p = plan(Wide, pg())
    ok = Wide("s", "p", "l", items=[Nested(1)])
    vals = p.row_values(ok)
    assert vals[p.position["items"]] == '[{"a":1}]'
    with pytest.raises(ValidationError, match="255"):
        p.row_values(Wide("s", "p", "l" * (KEY_LENGTH + 1)))
    with pytest.raises(ValidationError, match="64-bit"):
        p.row_values(Wide("s", "p", "l", rank=-(2**63) - 1))
    with pytest.raises(ValidationError, match="NUL"):
        p.row_values(Wide("s", "p", "l", note="\x00"))
    p.row_values(Wide("s", "p", "l", score=math.nan))  # PostgreSQL stores NaN
    with pytest.raises(ValidationError, match="nan"):
        plan(Wide, lite()).row_values(Wide("s", "p", "l", score=math.nan))
    plan(Wide, lite()).row_values(Wide("s", "p", "l", score=math.inf, note="\x00"))
    with pytest.raises(ValidationError, match="inf"):
        plan(Wide, maria()).row_values(Wide("s", "p", "l", score=math.inf))
    with pytest.raises(ValidationError, match="255"):
        plan(ByBytes, lite()).check_key((b"x" * 256,))


def test_decoders() -> None:
    p = plan(Wide, lite())
    row = ["s", "p", "l", 1, b"r", 0.5, 1, None, '[{"a":2}]', '"2026-01-02T03:04:05Z"', 3]
    got = p.decode(row)
    assert got.flag is True and got.items == [Nested(2)] and got.when is not None and got.when.year == 2026
    kw = plan(KwOnly, pg()).decode([7, '["a"]'])
    assert kw == KwOnly(id=7, tags=["a"])
    assert plan(ByBytes, pg()).decode((b"k", True)) == ByBytes(b"k", True)


class Plain(Entity, table="unit_plain"):
    pk: PartitionKey[str]
    n: SortKey[int]
    name: str
    score: float = 0.0
    note: str | None = None


def test_rows_decode_in_batches_as_one_by_one() -> None:
    p = plan(Plain, lite())  # str, int, float and nullable columns: msgspec checks a batch
    rows = [("a", i, f"n{i}", float(i), None if i % 2 else "x") for i in range(20)] + [("a", 99, "int score", 3, None)]
    assert p.decode_all(rows) == [p.decode(r) for r in rows]
    assert p.decode_by_key(rows) == {("a", r[1]): p.decode(r) for r in rows}
    for bad, why in [
        (("a", 5, "n", "text", None), "score"),  # text where a float belongs (SQLite keeps what it is given)
        (("a", 5, None, 1.0, None), "column name is NULL"),
        (("a", 5, "n", 1.0, 7), "note"),
        (("a", 5.5, "n", 1.0, None), "n"),
    ]:
        with pytest.raises(StoreError, match=why) as failed:
            p.decode_all([*rows, bad])
        assert failed.value.key == ("a", bad[1])
        with pytest.raises(StoreError) as failed:
            p.decode_by_key([bad, *rows])
        assert failed.value.key == ("a", bad[1])
    assert plan(Plain, pg()).decode_all(rows) == p.decode_all(rows)  # a typed dialect: the per-row decoder


def test_batched_key_checks_agree_with_one_by_one() -> None:
    for dialect in (lite(), pg()):
        p = plan(Plain, dialect)
        good = [(f"p{i}", i) for i in range(20)]
        p.check_keys(good)
        too_long, too_big, too_small = ("x" * (KEY_LENGTH + 1), 1), ("p", 2**63), ("p", -(2**63) - 1)
        for bad, why in [(too_long, "255"), (too_big, "64-bit"), (too_small, "64-bit")]:
            with pytest.raises(ValidationError, match=why):
                p.check_keys([*good, bad])
        text = plan(Wide, dialect)  # (p, s): every key part is text
        text.check_keys([(f"p{i}", "s") for i in range(20)])
        with pytest.raises(ValidationError, match="255"):
            text.check_keys([*[(f"p{i}", "s") for i in range(20)], ("p", "s" * (KEY_LENGTH + 1))])
    with pytest.raises(ValidationError, match="NUL"):
        plan(Wide, pg()).check_keys([*[(f"p{i}", "s") for i in range(20)], ("p", "s\x00")])
    plan(Wide, lite()).check_keys([*[(f"p{i}", "s") for i in range(20)], ("p", "s\x00")])  # SQLite keeps NUL
