"""Stateful property test: a repository behaves like a dict, whatever its store and tiers."""

from __future__ import annotations

import asyncio
import tempfile
from typing import Any

import pytest
from hypothesis import settings
from hypothesis import strategies as st
from hypothesis.stateful import RuleBasedStateMachine, initialize, invariant, rule

import tierstore
from tierstore import ConditionFailed, NotFound, TransactionCanceled, ValidationError, attr, begins_with

from _models import Order

pytestmark = pytest.mark.property

partitions = st.sampled_from(["a", "b", "c:d"])
sort_keys = st.sampled_from(["o1", "o2", "o10", "p1", "é"])
totals = st.integers(min_value=-(2**40), max_value=2**40)


def make_machine(store_url: str | None, cache: list[str]) -> type[RuleBasedStateMachine]:
    class RepositoryMachine(RuleBasedStateMachine):
        @initialize()
        def open(self) -> None:
            self.loop = asyncio.new_event_loop()
            self.tmp = tempfile.TemporaryDirectory()
            url = store_url or f"sqlite+aiosqlite:///{self.tmp.name}/m.db"
            self.db = tierstore.connect(url, cache, policy=tierstore.CachePolicy(negative_ttl=30))
            self.repo = self.db.repository(Order)
            self.model: dict[tuple[str, str], tuple[int, int]] = {}  # key -> (total, version)

        def run(self, coro: Any) -> Any:
            return self.loop.run_until_complete(coro)

        @rule(p=partitions, s=sort_keys, total=totals)
        def put(self, p: str, s: str, total: int) -> None:
            # Versions are checked by default: the item carries the version the model says is stored.
            current = self.model.get((p, s), (0, 0))[1]
            stored = self.run(self.repo.put(Order(p, s, total, version=current)))
            version = current + 1
            assert stored.version == version
            self.model[(p, s)] = (total, version)

        @rule(p=partitions, s=sort_keys, total=totals, stale=st.booleans())
        def put_expecting(self, p: str, s: str, total: int, stale: bool) -> None:
            current = self.model.get((p, s), (0, 0))[1]
            expect = current + 1 if stale else current
            if stale:  # an absent item counts as version 0: expect_version=0 creates it
                with pytest.raises(ConditionFailed):
                    self.run(self.repo.put(Order(p, s, total), expect_version=expect))
                return
            self.run(self.repo.put(Order(p, s, total), expect_version=expect))
            self.model[(p, s)] = (total, current + 1)

        @rule(p=partitions, s=sort_keys, delta=st.integers(-1000, 1000), guard=st.sampled_from([None, "ge", "eq"]))
        def update_add(self, p: str, s: str, delta: int, guard: str | None) -> None:
            current = self.model.get((p, s))
            when = None if guard is None else (
                Order.total_cents >= 0 if guard == "ge" else Order.total_cents == (current or (0, 0))[0]
            )
            holds = current is not None and (guard != "ge" or current[0] >= 0)
            if current is None:
                with pytest.raises(NotFound):
                    self.run(self.repo.update(p, s, add={"total_cents": delta}, when=when))
                return
            if not holds:
                with pytest.raises(ConditionFailed) as failed:
                    self.run(self.repo.update(p, s, add={"total_cents": delta}, when=when))
                assert failed.value.current is not None and failed.value.current.total_cents == current[0]
                return
            stored = self.run(self.repo.update(p, s, add={"total_cents": delta}, when=when))
            self.model[(p, s)] = (current[0] + delta, current[1] + 1)
            assert (stored.total_cents, stored.version) == self.model[(p, s)]

        @rule(a=st.tuples(partitions, sort_keys), b=st.tuples(partitions, sort_keys), delta=st.integers(-1000, 1000),
              limit=st.sampled_from([None, -1, 0, 2**40]), guarded=st.booleans())
        def transact_update_under_check(
            self, a: tuple[str, str], b: tuple[str, str], delta: int, limit: int | None, guarded: bool
        ) -> None:
            """One transaction: update ``a`` (under ``total >= 0`` when guarded) if ``b`` exists (``limit`` None)
            or its total is <= ``limit``."""
            tx = self.db.transaction()
            tx.update(Order, *a, add={"total_cents": delta}, when=Order.total_cents >= 0 if guarded else None)
            check = attr(Order.total_cents).exists() if limit is None else Order.total_cents <= limit
            if a == b:
                with pytest.raises(ValidationError, match="once"):
                    tx.check(Order, *b, when=check)
                return
            tx.check(Order, *b, when=check)
            current, other = self.model.get(a), self.model.get(b)
            update_ok = current is not None and (not guarded or current[0] >= 0)
            check_ok = other is not None and (limit is None or other[0] <= limit)  # absent fails comparisons
            if not (update_ok and check_ok):
                with pytest.raises(TransactionCanceled) as canceled:
                    self.run(tx.commit())
                reasons = canceled.value.reasons
                assert (reasons[0] is None) == update_ok and (reasons[1] is None) == check_ok, reasons
                return
            assert self.run(tx.commit()) == [None, None]
            assert current is not None
            self.model[a] = (current[0] + delta, current[1] + 1)
            got = self.run(self.repo.get(*a))  # the caches forgot the updated key
            assert got is not None and (got.total_cents, got.version) == self.model[a]

        @rule(p=partitions, s=sort_keys, total=totals, negative=st.booleans())
        def put_when(self, p: str, s: str, total: int, negative: bool) -> None:
            current = self.model.get((p, s))
            when = Order.total_cents < 0 if negative else ~(Order.total_cents < 0)  # absent: only the second holds
            holds = (current is None and not negative) or (current is not None and (current[0] < 0) == negative)
            if not holds:
                with pytest.raises(ConditionFailed):
                    self.run(self.repo.put(Order(p, s, total), when=when, check_version=False))
                return
            stored = self.run(self.repo.put(Order(p, s, total), when=when, check_version=False))
            self.model[(p, s)] = (total, (current or (0, 0))[1] + 1)
            assert stored.version == self.model[(p, s)][1]

        @rule(p=partitions, s=sort_keys, limit=st.integers(-5, 5))
        def delete_when(self, p: str, s: str, limit: int) -> None:
            current = self.model.get((p, s))
            if current is not None and not current[0] <= limit:
                with pytest.raises(ConditionFailed):
                    self.run(self.repo.delete(p, s, when=Order.total_cents <= limit))
                return
            if current is None:
                with pytest.raises(ConditionFailed):  # an absent item fails every comparison
                    self.run(self.repo.delete(p, s, when=Order.total_cents <= limit))
                return
            assert self.run(self.repo.delete(p, s, when=Order.total_cents <= limit)) is True
            self.model.pop((p, s))

        @rule(p=partitions, floor=totals)
        def query_where(self, p: str, floor: int) -> None:
            items = self.run(self.repo.query(p, where=Order.total_cents >= floor).all())
            want = sorted(s for (q, s), (total, _) in self.model.items() if q == p and total >= floor)
            assert [i.order_id for i in items] == want

        @rule(p=partitions, s=sort_keys)
        def delete(self, p: str, s: str) -> None:
            existed = self.run(self.repo.delete(p, s))
            assert existed == ((p, s) in self.model)
            self.model.pop((p, s), None)

        @rule(p=partitions, s=sort_keys)
        def get(self, p: str, s: str) -> None:
            got = self.run(self.repo.get(p, s))
            want = self.model.get((p, s))
            assert (None if got is None else (got.total_cents, got.version)) == want

        @rule(keys=st.lists(st.tuples(partitions, sort_keys), max_size=6))
        def get_many(self, keys: list[tuple[str, str]]) -> None:
            got = self.run(self.repo.get_many(keys))
            assert [None if g is None else (g.total_cents, g.version) for g in got] == [
                self.model.get(k) for k in keys
            ]

        @rule(p=partitions, limit=st.integers(1, 4), reverse=st.booleans(), prefix=st.sampled_from([None, "o", "o1"]))
        def query(self, p: str, limit: int, reverse: bool, prefix: str | None) -> None:
            cond = None if prefix is None else begins_with(prefix)
            items = self.run(self.repo.query(p, sort=cond, limit=limit, reverse=reverse).all())
            want = sorted(
                (s for (q, s) in self.model if q == p and (prefix is None or s.startswith(prefix))), reverse=reverse
            )
            assert [i.order_id for i in items] == want

        @invariant()
        def cache_never_holds_more_than_the_store(self) -> None:
            if getattr(self, "db", None) is None:
                return
            for tier in self.db.cache.tiers:
                assert tier.stats.errors == 0

        def teardown(self) -> None:
            if getattr(self, "db", None) is not None:
                self.run(self.db.aclose())
                self.loop.close()
                self.tmp.cleanup()

    return RepositoryMachine


_SETTINGS = settings(max_examples=40, stateful_step_count=25, deadline=None)
TestMemoryNoCache = make_machine("memory://", []).TestCase
TestMemoryL1 = make_machine("memory://", ["memory://?max_items=4"]).TestCase
TestSqliteL1 = pytest.mark.sqlite(make_machine(None, ["memory://"]).TestCase)
TestMemoryNoCache.settings = TestMemoryL1.settings = TestSqliteL1.settings = _SETTINGS
