"""Attribute expressions: paths on the entity class, the checks before any I/O, the reference evaluator."""

from __future__ import annotations

from typing import Any

import msgspec
import pytest

import tierstore
from tierstore import Entity, PartitionKey, Ref, SortKey, ValidationError, attr, not_
from tierstore.backends import evaluate, schema_of
from tierstore.expressions.check import check_condition


class Addr(msgspec.Struct, frozen=True):
    city: str = ""


class Cust(Entity, table="expr_unit_cust"):
    id: PartitionKey[str]


class Ord(Entity, table="expr_unit_orders"):
    c: PartitionKey[str]
    id: SortKey[str]
    total: int = 0
    status: str = "new"
    note: str | None = None
    tags: list[str] = []
    addr: Addr = Addr()
    customer = Ref(Cust, "c")


S = schema_of(Ord)


def test_a_field_on_the_class_is_a_path_and_on_an_instance_its_value() -> None:
    assert isinstance(Ord.status, tierstore.Path)
    assert Ord("a", "1", status="paid").status == "paid"
    assert Ord.__struct_fields__[0] == "c"
    assert isinstance(Ord.customer, Ref)  # relations stay descriptors
    assert repr((Ord.total >= 3) & ~(Ord.status == "x")) == "(Ord.total >= 3) & ~(Ord.status == 'x')"


@pytest.mark.parametrize(("cond", "words"), [
    (Ord.total == "x", ["Ord.total", "int", "'x'"]),
    (Ord.total > "x", ["Ord.total", "str"]),
    (Ord.status == 3, ["Ord.status", "str", "3"]),
    (Ord.tags > "a", ["Ord.tags", "int, float, str or bytes"]),
    (attr(Ord.total).begins_with("1"), ["Ord.total", "begins_with"]),
    (attr(Ord.tags).contains(3), ["Ord.tags", "3"]),
    (attr(Ord.total).contains(3), ["Ord.total", "contains"]),
    (Ord.note == None, ["exists"]),  # noqa: E711 - the mistake under test
    (attr(Ord.total).between(5, 1), ["low is above high"]),
    (attr(Ord.total).in_([]), ["1 to 100"]),
    (attr(Ord.total).in_(range(101)), ["1 to 100"]),
    (attr(Ord.status).begins_with(""), ["non-empty"]),
    (Ord.total == float("nan"), ["NaN"]),
    (attr(Ord.addr).zip == "1", ["Addr", "no field 'zip'"]),
    (attr(Ord.status).sub == "1", ["not a Struct"]),
    (Cust.id == "x", ["belongs to Cust", "Ord"]),
    (Ord.total == True, ["bool"]),  # noqa: E712
])
def test_a_bad_condition_is_a_validation_error_naming_field_and_value(cond: Any, words: list[str]) -> None:
    with pytest.raises(ValidationError) as info:
        check_condition(S, cond)
    for w in words:
        assert w in str(info.value), (w, str(info.value))


def test_conditions_have_no_truth_value() -> None:
    with pytest.raises(ValidationError, match="&"):
        _ = (Ord.total == 1) and (Ord.status == "x")
    with pytest.raises(ValidationError, match="not a condition"):
        bool(Ord.total)
    with pytest.raises(ValidationError, match="got a bool"):
        check_condition(S, Ord.customer == "x")  # a relation compares as a plain bool
    with pytest.raises(ValidationError, match="combines conditions"):
        _ = (Ord.total == 1) & True  # type: ignore[operator]


async def test_a_bad_condition_fails_before_any_io() -> None:
    store = tierstore.MemoryStore()
    async with tierstore.connect(store=store) as db:
        with pytest.raises(ValidationError):
            db.repository(Ord).query("a", where=Ord.total == "x")
    assert store.stats.round_trips == 0


def test_the_reference_semantics_of_absent_values() -> None:
    none = Ord("a", "1")
    some = Ord("a", "2", note="hi", tags=["x"], addr=Addr("Oslo"))
    for cond, a, b in [
        (Ord.note == "hi", False, True),
        (Ord.note != "hi", True, False),
        (not_(Ord.note == "hi"), True, False),
        (Ord.note > "a", False, True),
        (attr(Ord.note).exists(), False, True),
        (attr(Ord.note).not_exists(), True, False),
        (attr(Ord.tags).contains("x"), False, True),
        (attr(Ord.addr).city == "Oslo", False, True),
        ((Ord.total == 0) | (Ord.note == "hi"), True, True),
    ]:
        check_condition(S, cond)
        assert (evaluate(cond, none), evaluate(cond, some)) == (a, b), repr(cond)
    assert evaluate(attr(Ord.note).not_exists(), None)  # a missing item has every field absent
    assert not evaluate(Ord.total == 0, None)
