"""Query values: sort conditions, the query itself, pages and opaque cursors."""

from __future__ import annotations

import base64
import zlib
from collections.abc import Iterator, Sequence
from dataclasses import dataclass, field
from typing import Any, Generic, Literal, TypeVar

import msgspec

from tierstore.errors import ValidationError

__all__ = [
    "Page",
    "Query",
    "Skipped",
    "SortCondition",
    "begins_with",
    "between",
    "decode_cursor",
    "encode_cursor",
    "eq",
    "ge",
    "gt",
    "le",
    "lt",
    "sort_matches",
]

T = TypeVar("T")
_NO_PARTITION: Any = object()  # query() called without its partition key: a ValidationError saying what to pass
SortOp = Literal["eq", "lt", "le", "gt", "ge", "between", "begins_with"]


@dataclass(frozen=True, slots=True)
class SortCondition:
    """A condition on the sort key (or the index's sort key). Build with :func:`eq`, :func:`between`, …"""

    op: SortOp
    values: tuple[Any, ...]


def eq(value: Any) -> SortCondition:
    return SortCondition("eq", (value,))


def lt(value: Any) -> SortCondition:
    return SortCondition("lt", (value,))


def le(value: Any) -> SortCondition:
    return SortCondition("le", (value,))


def gt(value: Any) -> SortCondition:
    return SortCondition("gt", (value,))


def ge(value: Any) -> SortCondition:
    return SortCondition("ge", (value,))


def between(low: Any, high: Any) -> SortCondition:
    """Inclusive on both ends, as DynamoDB's BETWEEN. ``low`` above ``high`` (or two values that do not
    compare) is a ``ValidationError``: DynamoDB rejects it, and an empty page would hide the mistake."""
    check_between(low, high)
    return SortCondition("between", (low, high))


def check_between(low: Any, high: Any) -> None:
    """``ValidationError`` unless ``low <= high`` (values of one kind: str, bytes or numbers)."""
    try:
        ordered = bool(low <= high)
    except TypeError:
        raise ValidationError(
            f"between() needs two values of one kind, got {type(low).__name__} and {type(high).__name__}"
        ) from None
    if not ordered:
        raise ValidationError(
            f"between(low, high) needs low <= high, got {_short(low)} > {_short(high)}; swap them"
        )


def _short(value: Any) -> str:
    text = repr(value)
    return text if len(text) <= 40 else text[:37] + "..."


def begins_with(prefix: str | bytes) -> SortCondition:
    return SortCondition("begins_with", (prefix,))


@dataclass(frozen=True, slots=True)
class Query:
    """A validated query: the partition (of the table or of ``index``) and everything else."""

    partition: tuple[Any, ...]
    sort: SortCondition | None = None
    index: str | None = None
    limit: int | None = None
    cursor: str | None = None
    reverse: bool = False
    consistent: bool = False
    where: Any = None
    """A checked :class:`tierstore.expressions.Condition` the items must satisfy, or ``None``."""
    skip_undecodable: bool = False
    """Leave out stored items that do not decode as the entity (listed in ``Page.skipped``) instead of raising."""

    def filter_token(self) -> list[Any] | None:
        """The filter as plain data (its shape and operand values), for cursors and query-cache keys."""
        if self.where is None:
            return None
        values = msgspec.to_builtins(self.where.values(), builtin_types=(bytes,))
        return [repr(self.where.shape()), values]

    def fingerprint(self) -> int:
        """Identifies the query a cursor belongs to (everything but limit and cursor)."""
        raw = msgspec.msgpack.encode(
            [list(self.partition), self.index, self.reverse,
             None if self.sort is None else [self.sort.op, list(self.sort.values)], self.filter_token()]
        )
        return zlib.crc32(raw)


@dataclass(frozen=True, slots=True)
class Skipped:
    """A stored item a tolerant query left out: its key attributes (as stored) and why it did not decode."""

    key: dict[str, Any]
    reason: str


@dataclass(slots=True)
class Page(Generic[T]):
    """One page of query results. ``cursor`` is ``None`` on the last page.

    ``skipped``: the stored items of this page that did not decode as the entity, when the query was asked to
    skip them (``undecodable="skip"``); empty otherwise.
    """

    items: list[T]
    cursor: str | None
    skipped: list[Skipped] = field(default_factory=list)

    def __iter__(self) -> Iterator[T]:
        return iter(self.items)

    def __len__(self) -> int:
        return len(self.items)


def encode_cursor(query: Query, position: Sequence[Any]) -> str:
    """An opaque, URL-safe cursor bound to the query it came from."""
    raw = msgspec.msgpack.encode([query.fingerprint(), list(position)])
    return base64.urlsafe_b64encode(raw).rstrip(b"=").decode()


def decode_cursor(query: Query, cursor: str) -> list[Any]:
    try:
        raw = base64.urlsafe_b64decode(cursor + "=" * (-len(cursor) % 4))
        fp, position = msgspec.msgpack.decode(raw, type=tuple[int, list[Any]])
    except (ValueError, msgspec.DecodeError, msgspec.ValidationError):
        raise ValidationError("malformed cursor") from None
    if fp != query.fingerprint():
        raise ValidationError("cursor belongs to a different query")
    return position


def sort_matches(cond: SortCondition, value: Any) -> bool:
    """Evaluate ``cond`` on one sort value (stores without a query language use this)."""
    op, vals = cond.op, cond.values
    if op == "eq":
        return bool(value == vals[0])
    if op == "lt":
        return bool(value < vals[0])
    if op == "le":
        return bool(value <= vals[0])
    if op == "gt":
        return bool(value > vals[0])
    if op == "ge":
        return bool(value >= vals[0])
    if op == "between":
        return bool(vals[0] <= value <= vals[1])
    return isinstance(value, str | bytes) and value.startswith(vals[0])
