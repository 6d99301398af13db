"""Cache-key spelling: distinct keys never share a cache key, the partition is a hash tag, and the fast key
builders agree with the general path."""

from __future__ import annotations

from hypothesis import given
from hypothesis import strategies as st

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
