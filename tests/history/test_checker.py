"""The checker on hand-made histories: each kind of violation is found, and what real time allows is not."""

from __future__ import annotations

import sys
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parent))

from checker import check
from workload import Op

MS = 1_000_000


def put(proc: int, client: int, w: int, at: int, end: int, key: str = "k", ok: bool = True) -> Op:
    return Op("s", proc, client, "put", [key], at * MS, end * MS, w=w, ok=ok)


def delete(proc: int, client: int, at: int, end: int, key: str = "k") -> Op:
    return Op("s", proc, client, "delete", [key], at * MS, end * MS)


def get(proc: int, client: int, seen: int, at: int, end: int, key: str = "k") -> Op:
    return Op("s", proc, client, "get", [key], at * MS, end * MS, seen=[seen])


def kinds(ops: list[Op], final: int, **kw: float) -> list[str]:
    return sorted(v.kind for v in check(ops, {"k": final}, **kw).violations)


def test_a_read_of_an_overwritten_value_is_stale_with_its_staleness() -> None:
    ops = [put(0, 0, 1, 0, 10), put(0, 0, 2, 20, 30), get(1, 0, 1, 45, 50)]
    rep = check(ops, {"k": 2})
    assert [v.kind for v in rep.violations] == ["stale"]
    assert rep.max_staleness() == 0.015


def test_concurrent_writes_may_be_read_in_either_order() -> None:
    ops = [put(0, 0, 1, 0, 30), put(1, 0, 2, 10, 20), get(2, 0, 1, 40, 50), get(2, 1, 2, 40, 50)]
    assert kinds(ops, 1) == []
    assert kinds(ops, 2) == []


def test_a_read_concurrent_with_the_write_may_return_the_old_value() -> None:
    assert kinds([put(0, 0, 1, 0, 10), put(0, 0, 2, 20, 30), get(1, 0, 1, 25, 40)], 2) == []


def test_same_client_and_same_process_are_told_apart() -> None:
    ops = [put(0, 0, 1, 0, 10), put(0, 0, 2, 20, 30), get(0, 0, 1, 40, 50), get(0, 1, 1, 40, 50)]
    assert kinds(ops, 2) == ["read_your_writes", "stale_same_process"]


def test_absent_after_a_put_is_stale_unless_a_delete_may_explain_it() -> None:
    assert kinds([put(0, 0, 1, 0, 10), get(1, 0, 0, 20, 30)], 1) == ["stale"]
    assert kinds([put(0, 0, 1, 0, 10), delete(2, 0, 15, 25), get(1, 0, 0, 20, 30)], 0) == []
    # a delete that completed before the put cannot explain it
    assert kinds([delete(2, 0, 0, 5), put(0, 0, 1, 10, 20), get(1, 0, 0, 30, 40)], 1) == ["stale"]


def test_a_failed_write_may_have_happened_but_overwrites_nothing() -> None:
    ops = [put(0, 0, 1, 0, 10), put(0, 1, 2, 20, 30, ok=False), get(1, 0, 1, 40, 50), get(1, 1, 2, 60, 70)]
    assert kinds(ops, 1) == []
    assert kinds(ops, 2) == []


def test_a_value_never_written_is_flagged() -> None:
    assert kinds([put(0, 0, 1, 0, 10), get(1, 0, 7, 20, 30)], 1) == ["stale"]


def test_monotonic_reads_per_client() -> None:
    # 2 is written concurrently with the first read (so reading 2 there is fine), 1 completed before 2 began:
    # reading 1 afterwards is not stale (2 had not completed when the read began) but goes back in time
    ops = [put(0, 0, 1, 0, 10), put(0, 1, 2, 20, 100), get(1, 0, 2, 30, 40), get(1, 0, 1, 50, 60)]
    assert kinds(ops, 2) == ["monotonic"]
    assert kinds([*ops[:3], get(1, 1, 1, 50, 60)], 2) == []  # another client: no such promise


def test_a_lost_write_is_found_in_the_final_state() -> None:
    ops = [put(0, 0, 1, 0, 10), put(0, 0, 2, 20, 30)]
    assert kinds(ops, 1) == ["lost_write"]
    assert kinds(ops, 2) == []
    assert kinds([*ops, delete(1, 0, 40, 50)], 2) == ["lost_write"]


def test_allowance_moves_small_cross_process_staleness_out_of_the_violations() -> None:
    ops = [put(0, 0, 1, 0, 10), put(0, 0, 2, 20, 30), get(1, 0, 1, 45, 50), get(0, 1, 1, 45, 50)]
    rep = check(ops, {"k": 2}, allowance=0.02)
    assert [v.kind for v in rep.allowed] == ["stale"]
    assert [v.kind for v in rep.violations] == ["stale_same_process"]  # no allowance within a process
