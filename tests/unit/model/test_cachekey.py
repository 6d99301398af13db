"""Cache-key spelling: distinct keys never share a cache key, the partition is a hash tag, and the fast key
builders agree with the general path."""

from __future__ import annotations

from typing import Any

from hypothesis import given
from hypothesis import strategies as st

from tierstore.errors import ValidationError
from tierstore.model.cachekey import escape, partition_cache_tag, partition_tag, token
from tierstore.model.schema import schema_of

from _models import Blob, Customer, Event, Order

key_text = st.text(min_size=1, max_size=12)


@given(a=st.tuples(key_text, key_text), b=st.tuples(key_text, key_text))
def test_distinct_keys_have_distinct_cache_keys(a: tuple[str, str], b: tuple[str, str]) -> None:
    s = schema_of(Order)
    ka, kb = s.key(*a), s.key(*b)
    ca, cb = s.cache_key(ka), s.cache_key(kb)
    assert (ka == kb) == (ca == cb)
    assert s.fast_key(*a) == (ka, ca)
    inner = ca[1:].split("}", 1)[0]  # the hash tag holds no brace and no separator of its own
    assert "{" not in inner and ":" in inner


@given(st.tuples(key_text, key_text), st.integers(min_value=-(2**63), max_value=2**63))
def test_composite_cache_keys_are_injective(p: tuple[str, str], seq: int) -> None:
    s = schema_of(Event)
    other = (p[0] + ",", p[1])
    assert s.cache_key(s.key(p, seq)) != s.cache_key(s.key(other, seq))


def test_tokens_of_each_key_type() -> None:
    assert token("abc") == "abc" and token(42) == "42" and token(-1) == "-1" and token(b"\x00\xff") == "x00ff"
    assert escape("a b") == "a%20b" and escape("é") == "%C3%A9" and escape("{x}") == "%7Bx%7D"
    assert escape("a,b:c") == "a%2Cb%3Ac"  # the separators of composite keys and of the sort part


def test_partition_tags() -> None:
    assert partition_cache_tag("orders", "c1") == "{orders:c1}"
    assert partition_tag("{orders:c1}:o1") == "orders:c1" and partition_tag("plain") == "plain"
    assert partition_tag("{}x") == "{}x"  # an empty tag is no tag
    assert partition_tag(schema_of(Order).cache_key(("c 1", "o1"))) == "ts_orders:c%201"


def test_fast_paths_match_the_general_path() -> None:
    for schema, args in [
        (schema_of(Customer), ("c1", None)),
        (schema_of(Blob), (7, None)),
        (schema_of(Blob), (0, None)),
        (schema_of(Order), ("c 1", "o/1")),
    ]:
        key = schema.key(*args)
        assert schema.fast_key(*args) == (key, schema.cache_key(key))
        assert schema.fast_plain_key(*args) == key
    events = schema_of(Event)  # a composite partition always takes the general path
    assert events.fast_key(("t", "s"), 1) is None and events.fast_plain_key(("t", "s"), 1) is None
    for bad in [("", None), (5, None), (True, None), ("c1", "x")]:
        assert schema_of(Customer).fast_key(*bad) is None  # the general path validates and explains


class _Text(str):
    pass


key_part = st.one_of(
    st.text(max_size=6), st.integers(min_value=-3, max_value=3), st.binary(max_size=3), st.none(), st.booleans(),
    st.builds(_Text, st.text(min_size=1, max_size=3)),
)


def _general(schema: Any, arg: Any) -> Any:
    try:
        return schema.key_arg(arg)
    except ValidationError as exc:
        return type(exc)


def _batch(schema: Any, args: list[Any]) -> Any:
    try:
        return schema.plain_keys(args)
    except ValidationError as exc:
        return type(exc)


@given(st.lists(st.one_of(st.tuples(key_part, key_part), key_part, st.tuples(key_part)), max_size=6))
def test_batched_key_checks_agree_with_the_general_path(args: list[Any]) -> None:
    for schema, arg_of in [
        (schema_of(Order), lambda a: a),  # (partition, sort) pairs
        (schema_of(Customer), lambda a: a[0] if isinstance(a, tuple) and a else a),  # bare partitions
        (schema_of(Blob), lambda a: a[0] if isinstance(a, tuple) and a else a),  # int partitions
        (schema_of(Event), lambda a: a),  # a composite partition: the general path per key
    ]:
        batch = [arg_of(a) for a in args]
        general = [_general(schema, a) for a in batch]
        if ValidationError in general:
            assert _batch(schema, batch) is ValidationError
        else:
            assert _batch(schema, batch) == general


def test_key_columns_check() -> None:
    order = schema_of(Order)  # (str, str)
    assert order.key_columns_ok([["c1", "c2"], ["o1", "o1"]])
    assert order.key_columns_ok([[_Text("c1")], ["o1"]])  # a str subclass, as the general path allows
    for bad in ([["c1", None], ["o1", "o2"]], [["c1", ""], ["o1", "o2"]], [["c1", "é"], ["o1", "o2"]],
                [["c1", 1], ["o1", "o2"]], [["c1"]], [["c1"], ["o1"], ["x"]]):
        assert not order.key_columns_ok(bad), bad
    blob = schema_of(Blob)  # (int,)
    assert blob.key_columns_ok([[0, 7, -1]])
    for bad in ([[True]], [[None]], [["7"]], [[1.0]]):
        assert not blob.key_columns_ok(bad), bad


@given(st.lists(st.tuples(key_text, key_text), max_size=8))
def test_the_cache_key_batch_builder_takes_plain_pairs(pairs: list[tuple[str, str]]) -> None:
    s = schema_of(Order)
    built = s.fast_keys(list(pairs))
    assert built is not None
    keys, cks = built
    assert keys == [s.key(*p) for p in pairs] and cks == [s.cache_key(s.key(*p)) for p in pairs]


@given(st.lists(st.one_of(st.tuples(key_part, key_part), key_part, st.tuples(key_part)), max_size=6))
def test_the_cache_key_batch_builder_agrees_with_the_general_path(args: list[Any]) -> None:
    for schema, arg_of in [
        (schema_of(Order), lambda a: a),
        (schema_of(Customer), lambda a: a[0] if isinstance(a, tuple) and a else a),
        (schema_of(Blob), lambda a: a[0] if isinstance(a, tuple) and a else a),
        (schema_of(Event), lambda a: a),
    ]:
        batch = [arg_of(a) for a in args]
        built = schema.fast_keys(list(batch))
        if built is not None:  # else the per-key path validates and explains
            general = [_general(schema, a) for a in batch]
            assert ValidationError not in general
            assert built == (general, [schema.cache_key(k) for k in general])


def test_the_batch_builder_declines_what_the_general_path_must_see() -> None:
    customers, blobs, orders = schema_of(Customer), schema_of(Blob), schema_of(Order)
    assert customers.fast_keys(["c1", "c 2"]) == ([("c1",), ("c 2",)], ["{ts_customers:c1}", "{ts_customers:c%202}"])
    assert blobs.fast_keys([0, 7]) == ([(0,), (7,)], [blobs.cache_key((0,)), blobs.cache_key((7,))])
    assert schema_of(Event).fast_keys([(("t", "s"), 1)]) is None  # a composite partition
    for bad in [[""], [5], [True], [None], ["c1", ("c1",)]]:
        assert customers.fast_keys(bad) is None
    assert blobs.fast_keys([True]) is None
    for bad_pair in [("c1",), ["c1", "o1"], ("c1", ""), ("", "o1"), ("c1", 1), ("c1", "o1", "x")]:
        assert orders.fast_keys([("c1", "o1"), bad_pair]) is None
