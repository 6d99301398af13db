"""Generated values on every store × tier: ``put`` then ``get`` returns an equal item, or the put is a
ValidationError raised before any I/O — never another error, never an acknowledged write that reads back
different or not at all. Strategies cover the entity's field types at their extremes: integers past 64 bits
and 38 digits, NaN, infinities, subnormal and huge floats, lone surrogates and NUL in text, deep nesting."""

from __future__ import annotations

import asyncio
import math
import uuid
from typing import Any

import pytest
from hypothesis import HealthCheck, Phase, given, settings
from hypothesis import strategies as st

import tierstore
from _values import Sample
from tierstore import ValidationError

pytestmark = pytest.mark.property
Env = tuple[tierstore.Database, str, str]
EXAMPLES = 12  # per store × tier: 35 combinations, about 420 items in all

_EDGE_INTS = [0, -1, 2**31, 2**53 + 1, 2**63 - 1, -(2**63), 2**63, 2**64 - 1, 2**64, -(2**63) - 1, 10**20,
              10**38 - 1, 10**38, 3**100, -(10**30)]
_EDGE_FLOATS = [0.0, -0.0, 5e-324, 1e-130, 1e-131, 1.7976931348623157e308, 1e125, 1e126, math.nan, math.inf,
                -math.inf, 0.1, 1 / 3]
ints = st.one_of(st.integers(min_value=-(2**63), max_value=2**63 - 1), st.sampled_from(_EDGE_INTS), st.integers())
floats = st.one_of(st.floats(), st.sampled_from(_EDGE_FLOATS))
# Text: mostly plain, sometimes any code point including lone surrogates, sometimes NUL.
any_char = st.characters(codec=None, exclude_categories=())
text = st.one_of(st.text(max_size=12), st.text(any_char, max_size=6), st.sampled_from(["\x00", "a\x00b", "\ud800",
                                                                                    "é" * 3, "\U0001f600"]))
key_text = st.one_of(st.text(st.characters(min_codepoint=48, max_codepoint=122), min_size=1, max_size=10), text)


def _nest(depth: int) -> Any:
    v: Any = 1
    for _ in range(depth):
        v = [v]
    return v


json_leaf = st.one_of(st.none(), st.booleans(), ints, floats, text)
json_value = st.one_of(
    st.recursive(json_leaf, lambda c: st.lists(c, max_size=3) | st.dictionaries(text, c, max_size=3), max_leaves=8),
    st.sampled_from([10, 31, 33, 256, 257, 1200]).map(_nest),
)
samples = st.builds(
    Sample,
    id=key_text,
    n=ints,
    f=floats,
    s=text,
    b=st.binary(max_size=8),
    flag=st.booleans(),
    readings=st.lists(floats, max_size=4),
    tags=st.lists(text, max_size=3),
    meta=st.dictionaries(text, json_value, max_size=3),
    maybe=st.none() | ints,
)


def _numbers(x: Any, y: Any) -> bool:
    """An int and a float: PostgreSQL's JSONB writes a float of integral value (1e16, 1.7976931348623157e308)
    back as integer digits, which an ``Any`` field then reads as an int — the same number as a float; a
    declared ``float`` field keeps its type."""
    return type(x) is not type(y) and all(type(v) in (int, float) for v in (x, y))


def _same(a: Any, b: Any) -> bool:
    """Equality where NaN equals NaN (a NaN that was stored reads back as NaN); iterative, for deep values."""
    stack = [(a, b)]
    while stack:
        x, y = stack.pop()
        if isinstance(x, float) and isinstance(y, float):
            if not ((math.isnan(x) and math.isnan(y)) or x == y):
                return False
        elif isinstance(x, list | tuple) and isinstance(y, list | tuple):
            if len(x) != len(y):
                return False
            stack.extend(zip(x, y, strict=True))
        elif isinstance(x, dict) and isinstance(y, dict):
            if x.keys() != y.keys():
                return False
            stack.extend((x[k], y[k]) for k in x)
        elif isinstance(x, Sample) and isinstance(y, Sample):
            stack.extend((getattr(x, f), getattr(y, f)) for f in x.__struct_fields__)
        elif _numbers(x, y):
            if float(x) != float(y):
                return False
        elif not (x == y and type(x) is type(y)):
            return False
    return True


def _round_trips(db: tierstore.Database) -> tuple[int, ...]:
    return (db.store.stats.round_trips, *(getattr(t.stats, "round_trips", 0) for t in db.cache.tiers))


async def _check(db: tierstore.Database, item: Sample, outcomes: dict[str, int]) -> None:
    repo = db.repository(Sample)
    item = Sample(f"{uuid.uuid4().hex[:6]}{item.id}", **{f: getattr(item, f) for f in Sample.__struct_fields__[1:]})
    before = _round_trips(db)
    try:
        stored = await repo.put(item)
    except ValidationError:
        assert _round_trips(db) == before, "a ValidationError after I/O"
        outcomes["ValidationError"] += 1
        return
    outcomes["stored"] += 1
    reads = [await repo.get(item.id), await repo.get(item.id), *(await repo.get_many([item.id]))]
    for got in reads:  # cold (store), warm (tiers), batch
        assert got is not None, f"acknowledged but unreadable: {item!r}"
        assert _same(got, stored), f"read back different:\n{got!r}\n!=\n{stored!r}"


def test_put_then_get_returns_an_equal_item_or_a_validation_error_before_io(
    vdb: Env, vloop: asyncio.AbstractEventLoop
) -> None:
    db, _, _ = vdb
    outcomes = {"stored": 0, "ValidationError": 0}

    # derandomize: the same examples on every run (CI must not fail at random); widen by running locally with
    # derandomize=False when hunting.
    @settings(max_examples=EXAMPLES, deadline=None, database=None, phases=[Phase.generate], derandomize=True,
              suppress_health_check=[HealthCheck.function_scoped_fixture, HealthCheck.too_slow,
                                     HealthCheck.data_too_large])
    @given(samples)
    def run(item: Sample) -> None:
        vloop.run_until_complete(_check(db, item, outcomes))

    run()
    assert sum(outcomes.values()) >= 1
