"""The bad-input catalogue (``tests/_catalogue.py``) on every store × tier: each case raises its typed error class, and
neither the store nor a network tier saw a round trip."""

from __future__ import annotations

from collections import Counter

import pytest

import tierstore
from _catalogue import CASES, Repos
from _values import IntKeyed, Ranked, Sample

pytestmark = pytest.mark.asyncio(loop_scope="session")
Env = tuple[tierstore.Database, str, str]


def _round_trips(db: tierstore.Database) -> tuple[int, ...]:
    return (db.store.stats.round_trips, *(getattr(t.stats, "round_trips", 0) for t in db.cache.tiers))


def test_the_catalogue_is_large_and_names_are_unique() -> None:
    assert len(CASES) >= 60
    assert len({c.name for c in CASES}) == len(CASES)


async def test_every_bad_input_is_a_typed_error_before_any_io(vdb: Env) -> None:
    db, store, _ = vdb
    repos = Repos(db, db.repository(Sample), db.repository(Ranked), db.repository(IntKeyed))
    await repos.sample.get("warm")  # first use opens the tables: not part of any case
    await repos.ranked.get("warm", "warm")
    await repos.int_keyed.get(0)
    wrong: list[str] = []
    outcomes: Counter[str] = Counter()
    for case in CASES:
        if case.stores is not None and store not in case.stores:
            continue
        before = _round_trips(db)
        try:
            await case.call(repos)
        except case.error:
            outcomes[case.error.__name__] += 1
        except BaseException as exc:  # any other outcome is a defect, listed below
            wrong.append(f"{case.name}: {type(exc).__name__}: {str(exc)[:120]}")
            continue
        else:
            wrong.append(f"{case.name}: no error")
            continue
        if _round_trips(db) != before:
            wrong.append(f"{case.name}: {case.error.__name__} after I/O ({before} -> {_round_trips(db)})")
    assert not wrong, "\n".join(wrong)
    assert sum(outcomes.values()) >= 60
