"""Query values: sort conditions, the query fingerprint, opaque cursors and pages."""

from __future__ import annotations

import base64

import msgspec
import pytest

from tierstore import Page, SortCondition, ValidationError, begins_with, between, eq, ge, gt, le, lt
from tierstore.query import Query, decode_cursor, encode_cursor, sort_matches


def test_condition_builders() -> None:
    assert eq(1) == SortCondition("eq", (1,))
    assert (lt(1).op, le(1).op, gt(1).op, ge(1).op) == ("lt", "le", "gt", "ge")
    assert between("a", "c") == SortCondition("between", ("a", "c"))
    assert begins_with("ab") == SortCondition("begins_with", ("ab",))


@pytest.mark.parametrize(
    ("cond", "true", "false"),
    [
        (eq(5), [5], [4, 6]),
        (lt(5), [4, -1], [5, 6]),
        (le(5), [4, 5], [6]),
        (gt(5), [6], [5, 4]),
        (ge(5), [5, 6], [4]),
        (between(2, 4), [2, 3, 4], [1, 5]),
        (between("b", "d"), ["b", "c", "cz", "d"], ["a", "da"]),
        (begins_with("ab"), ["ab", "abc"], ["a", "b", "xab"]),
        (begins_with(b"\x01"), [b"\x01", b"\x01\x02"], [b"\x02"]),
        (begins_with("1"), [], [1, 12]),  # only text and bytes have prefixes
    ],
)
def test_sort_matches_every_op(cond: SortCondition, true: list[object], false: list[object]) -> None:
    assert all(sort_matches(cond, v) for v in true)
    assert not any(sort_matches(cond, v) for v in false)


def test_cursor_round_trip() -> None:
    q = Query(("c1",), sort=ge("o2"), index=None, limit=10)
    position = ["o5", "c1", "o5"]
    cursor = encode_cursor(q, position)
    assert isinstance(cursor, str) and "=" not in cursor and "+" not in cursor and "/" not in cursor  # URL-safe
    assert decode_cursor(q, cursor) == position
    # The cursor belongs to the query, not to the page size or the cursor that led to it.
    follow = Query(("c1",), sort=ge("o2"), limit=3, cursor=cursor)
    assert decode_cursor(follow, cursor) == position


def test_fingerprint_ignores_limit_and_cursor_only() -> None:
    base = Query(("c1",), sort=between(1, 9), index="by_x", reverse=True)
    assert base.fingerprint() == Query(("c1",), between(1, 9), "by_x", 50, "abc", True).fingerprint()
    assert base.fingerprint() == Query(("c1",), between(1, 9), "by_x", reverse=True, consistent=True).fingerprint()
    for other in [
        Query(("c2",), between(1, 9), "by_x", reverse=True),
        Query(("c1",), between(1, 8), "by_x", reverse=True),
        Query(("c1",), ge(1), "by_x", reverse=True),
        Query(("c1",), between(1, 9), "by_y", reverse=True),
        Query(("c1",), between(1, 9), None, reverse=True),
        Query(("c1",), between(1, 9), "by_x", reverse=False),
        Query(("c1",), None, "by_x", reverse=True),
    ]:
        assert other.fingerprint() != base.fingerprint(), other


def test_a_cursor_of_another_query_is_refused() -> None:
    cursor = encode_cursor(Query(("c1",)), ["o1"])
    with pytest.raises(ValidationError, match="different query"):
        decode_cursor(Query(("c2",)), cursor)
    with pytest.raises(ValidationError, match="different query"):
        decode_cursor(Query(("c1",), reverse=True), cursor)


@pytest.mark.parametrize(
    "cursor",
    [
        "",
        "!!!",
        "not base64 at all ~",
        base64.urlsafe_b64encode(b"\xc1").decode(),  # not msgpack
        base64.urlsafe_b64encode(msgspec.msgpack.encode(["x", []])).decode(),  # wrong shape
        base64.urlsafe_b64encode(msgspec.msgpack.encode([1])).decode(),
    ],
)
def test_a_damaged_cursor_is_a_validation_error(cursor: str) -> None:
    with pytest.raises(ValidationError, match="malformed cursor"):
        decode_cursor(Query(("c1",)), cursor)


def test_a_page_iterates_its_items() -> None:
    page = Page([1, 2, 3], cursor=None)
    assert list(page) == [1, 2, 3] and len(page) == 3 and page.cursor is None
