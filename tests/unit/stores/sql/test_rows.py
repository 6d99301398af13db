"""Row encoding (the SQL limits, checked before I/O) and decoding per dialect, without a database."""

from __future__ import annotations

import math

import pytest

from tierstore import ValidationError
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
