"""DynamoDB's limits, checked on the request before it is sent (``ValidationError``, no I/O).

Local servers do not all enforce these (moto accepts a 26-item BatchWriteItem), and a rejected request costs a
round trip and surfaces as a backend error, so tierstore checks them itself. The limits are DynamoDB's published
quotas (https://docs.aws.amazon.com/amazondynamodb/latest/developerguide/ServiceQuotas.html); the values and the
size formulas below were calibrated against DynamoDB Local 3.3 at each boundary
(``tests/integration/stores/dynamodb/test_limits.py`` runs both sides of every limit against it):

* item size: the UTF-8 bytes of every attribute name plus the size of its value, at most 409,600 B. Value
  sizes: S and B their length; BOOL and NULL 1; N one byte per base-100 digit pair (aligned on the decimal
  point, zero pairs at either end dropped) plus 1, plus 1 more if negative, zero is 1; L and M 3 plus, per
  element, 1 + the element's size (plus the key's bytes for M); SS/NS/BS the sum of their elements.
* a list or map may be nested at most 31 deep: the 32nd level holds only scalars and sets.
* numbers: at most 38 significant digits, magnitude from 1E-130 to below 1E+126, no NaN or Infinity.
* partition key 1-2048 B, sort key 1-1024 B (UTF-8 bytes or binary length); no empty key values.
* no empty sets.
"""

from __future__ import annotations

from collections.abc import Hashable, Iterable, Mapping, Sequence
from decimal import Decimal, InvalidOperation
from typing import Any

from tierstore.errors import ValidationError

__all__ = [
    "MAX_BATCH_GET",
    "MAX_BATCH_WRITE",
    "MAX_BATCH_WRITE_BYTES",
    "MAX_CONTAINER_DEPTH",
    "MAX_EXPRESSION_BYTES",
    "MAX_ITEM_BYTES",
    "MAX_NAME_BYTES",
    "MAX_NUMBER_DIGITS",
    "MAX_PARTITION_KEY_BYTES",
    "MAX_SORT_KEY_BYTES",
    "MAX_TRANSACT_BYTES",
    "MAX_TRANSACT_ITEMS",
    "check_batch_size",
    "check_distinct",
    "check_expression",
    "check_item",
    "check_key_value",
    "check_name",
    "check_number",
    "number_size",
    "value_size",
]

MAX_ITEM_BYTES = 409_600
MAX_PARTITION_KEY_BYTES = 2048
MAX_SORT_KEY_BYTES = 1024
MAX_CONTAINER_DEPTH = 31
MAX_NUMBER_DIGITS = 38
MAX_BATCH_GET = 100
MAX_BATCH_WRITE = 25
MAX_BATCH_WRITE_BYTES = 16 * 1024 * 1024
MAX_TRANSACT_ITEMS = 100
MAX_TRANSACT_BYTES = 4 * 1024 * 1024
MAX_EXPRESSION_BYTES = 4096
MAX_NAME_BYTES = 255

_MAX_EXPONENT = 125  # the largest magnitude is 9.99…E+125
_MIN_EXPONENT = -130  # the smallest non-zero magnitude is 1E-130
_SMALL_INT = 10**MAX_NUMBER_DIGITS


def _fail(message: str, entity: str | None, key: Any) -> ValidationError:
    return ValidationError(message, entity=entity, key=key, backend="dynamodb")


def _digits_and_exponent(text: str) -> tuple[tuple[int, ...], int, bool] | None:
    """Significant digits (no leading or trailing zeros), the power of ten of the last one, and the sign.

    ``None`` for zero. Raises ``ValueError`` for text DynamoDB cannot read as a finite number.
    """
    if not text or text != text.strip():
        raise ValueError(text)
    try:
        dec = Decimal(text)
    except InvalidOperation:
        raise ValueError(text) from None
    if not dec.is_finite():
        raise ValueError(text)
    sign, digits, exponent = dec.as_tuple()
    assert isinstance(exponent, int)
    start = 0
    while start < len(digits) and digits[start] == 0:
        start += 1
    if start == len(digits):
        return None
    end = len(digits)
    while digits[end - 1] == 0:
        end -= 1
        exponent += 1
    return tuple(digits[start:end]), exponent, bool(sign)


def check_number(text: str, *, entity: str | None = None, key: Any = None) -> None:
    """``text`` is a number DynamoDB stores exactly: finite, ≤ 38 significant digits, 1E-130 ≤ |x| < 1E+126."""
    try:
        parts = _digits_and_exponent(text)
    except ValueError:
        raise _fail(f"{text[:60]!r} is not a finite number", entity, key) from None
    if parts is None:
        return
    digits, exponent, _ = parts
    if len(digits) > MAX_NUMBER_DIGITS:
        raise _fail(f"number {text[:60]} has {len(digits)} significant digits; DynamoDB keeps 38", entity, key)
    top = exponent + len(digits) - 1
    if top > _MAX_EXPONENT:
        raise _fail(f"number {text[:60]} is beyond DynamoDB's range (below 1E+126)", entity, key)
    if exponent < _MIN_EXPONENT:
        raise _fail(f"number {text[:60]} is below DynamoDB's smallest magnitude 1E-130", entity, key)


def number_size(text: str) -> int:
    """Stored size of a number (``text`` already checked)."""
    if len(text) < 16 and text.isdigit():  # the common case: a small non-negative integer
        stripped = text.lstrip("0").rstrip("0")
        if not stripped:
            return 1
        top = len(text.lstrip("0")) - 1
        low = top - len(stripped) + 1
        return top // 2 - low // 2 + 2
    parts = _digits_and_exponent(text)
    if parts is None:
        return 1
    digits, exponent, negative = parts
    top = exponent + len(digits) - 1
    return top // 2 - exponent // 2 + 2 + (1 if negative else 0)


def _number(text: Any, entity: str | None, key: Any) -> int:
    if not isinstance(text, str):
        raise _fail(f"N values travel as strings, got {type(text).__name__}", entity, key)
    if len(text) < 19 and text.isdigit():
        return number_size(text)  # a non-negative integer below 1E+19: always valid
    check_number(text, entity=entity, key=key)
    return number_size(text)


def _blob_len(value: Any) -> int:
    if isinstance(value, bytes | bytearray | memoryview):
        return len(value)
    if isinstance(value, str):  # base64 on the wire
        return len(value) * 3 // 4 - value[-2:].count("=")
    raise TypeError(type(value).__name__)


def value_size(av: Mapping[str, Any], *, depth: int = 0, entity: str | None = None, key: Any = None) -> int:
    """Stored size of one AttributeValue; checks numbers, nesting and empty sets on the way.

    ``depth``: how many lists and maps enclose ``av`` (0 for a top-level attribute).
    """
    if len(av) != 1:
        raise _fail(f"an AttributeValue has exactly one type, got {sorted(av)}", entity, key)
    ((tag, v),) = av.items()
    if tag == "S":
        return len(v) if v.isascii() else len(v.encode())
    if tag == "N":
        return _number(v, entity, key)
    if tag == "B":
        return _blob_len(v)
    if tag in ("BOOL", "NULL"):
        return 1
    if tag == "M" or tag == "L":
        if depth >= MAX_CONTAINER_DEPTH:
            raise _fail(
                f"a list or map is nested more than {MAX_CONTAINER_DEPTH} deep (DynamoDB allows 32 levels, "
                "the last holding only scalars and sets)",
                entity, key,
            )
        size = 3
        if tag == "M":
            for name, child in v.items():
                if not name:
                    raise _fail("a map holds an empty key, which DynamoDB rejects", entity, key)
                size += 1 + (len(name) if name.isascii() else len(name.encode()))
                size += value_size(child, depth=depth + 1, entity=entity, key=key)
        else:
            for child in v:
                size += 1 + value_size(child, depth=depth + 1, entity=entity, key=key)
        return size
    if tag in ("SS", "NS", "BS"):
        if not v:
            raise _fail("DynamoDB rejects empty sets", entity, key)
        if len(set(v)) != len(v):
            raise _fail("a set holds a value twice", entity, key)
        if tag == "SS":
            return sum(len(s.encode()) for s in v)
        if tag == "NS":
            return sum(_number(s, entity, key) for s in v)
        return sum(_blob_len(b) for b in v)
    raise _fail(f"unknown AttributeValue type {tag!r}", entity, key)


def check_item(
    item: Mapping[str, Mapping[str, Any]], *, entity: str | None = None, key: Any = None,
    max_bytes: int = MAX_ITEM_BYTES,
) -> int:
    """Check a whole item (numbers, nesting, sets, size with names); return its size in bytes."""
    size = 0
    for name, av in item.items():
        size += len(name) if name.isascii() else len(name.encode())
        size += value_size(av, entity=entity, key=key)
    if size > max_bytes:
        raise _fail(f"item is {size} bytes; DynamoDB's limit is {max_bytes} (names included)", entity, key)
    return size


def check_key_value(
    av: Mapping[str, Any], *, sort: bool, entity: str | None = None, key: Any = None, index: str | None = None
) -> None:
    """A key attribute's value (of the table, or of secondary index ``index``): not empty, ≤ 2048 B
    (partition) or ≤ 1024 B (sort)."""
    ((tag, v),) = av.items()
    limit = MAX_SORT_KEY_BYTES if sort else MAX_PARTITION_KEY_BYTES
    which = ("sort" if sort else "partition") + " key" + ("" if index is None else f" of index {index}")
    if tag == "N":
        _number(v, entity, key)
        return
    n = (len(v) if v.isascii() else len(v.encode())) if tag == "S" else _blob_len(v)
    if n == 0:
        raise _fail(f"the {which} must not be empty", entity, key)
    if n > limit:
        raise _fail(f"the {which} is {n} bytes; DynamoDB allows {limit}", entity, key)


def check_name(name: str, *, what: str = "key attribute name", entity: str | None = None) -> None:
    n = len(name.encode())
    if not 1 <= n <= MAX_NAME_BYTES:
        raise _fail(f"{what} {name[:40]!r} is {n} bytes; DynamoDB allows 1-{MAX_NAME_BYTES}", entity, None)


def check_batch_size(n: int, limit: int, what: str, *, entity: str | None = None) -> None:
    if n > limit:
        raise _fail(f"{what} takes at most {limit} entries, got {n}", entity, None)


def check_distinct(keys: Iterable[Hashable], what: str, *, entity: str | None = None) -> None:
    """DynamoDB rejects a whole batch (or transaction) that names one item twice."""
    seen: set[Hashable] = set()
    for k in keys:
        if k in seen:
            raise _fail(f"{what} names the same item twice", entity, k)
        seen.add(k)


def check_expression(expression: str, what: str, *, entity: str | None = None) -> None:
    n = len(expression.encode())
    if n > MAX_EXPRESSION_BYTES:
        raise _fail(f"{what} is {n} bytes; DynamoDB allows {MAX_EXPRESSION_BYTES}", entity, None)


def total_size(sizes: Sequence[int], limit: int, what: str, *, entity: str | None = None) -> None:
    total = sum(sizes)
    if total > limit:
        raise _fail(f"{what} carries {total} bytes; DynamoDB allows {limit}", entity, None)
