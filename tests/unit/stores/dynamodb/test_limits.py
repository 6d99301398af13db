"""DynamoDB's limits, each checked on both sides of its boundary, before any request.

The boundaries were calibrated against DynamoDB Local 3.3; tests/integration/stores/dynamodb/test_limits.py sends
the accepted side to it and shows it rejects the other side itself.
"""

from __future__ import annotations

from typing import Any

import pytest

from tierstore import ValidationError
from tierstore.stores.dynamodb import limits

ITEM = limits.MAX_ITEM_BYTES


def base() -> dict[str, Any]:
    return {"pk": {"S": "p"}, "sk": {"S": "s"}}  # 2 + 1 + 2 + 1 = 6 bytes


def nest(levels: int, leaf: dict[str, Any]) -> dict[str, Any]:
    v = leaf
    for _ in range(levels):
        v = {"M": {"a": v}}
    return v


# -- item size ---------------------------------------------------------------------------------------------


def test_item_size_at_the_limit() -> None:
    fits = {**base(), "v": {"S": "a" * (ITEM - 7)}}  # 6 + len("v") + value
    assert limits.check_item(fits) == ITEM
    with pytest.raises(ValidationError, match="409601"):
        limits.check_item({**base(), "v": {"S": "a" * (ITEM - 6)}})


def test_item_size_counts_names_and_utf8_bytes() -> None:
    name = "vvvvvvvvvv"
    assert limits.check_item({**base(), name: {"S": "a" * (ITEM - 16)}}) == ITEM
    with pytest.raises(ValidationError):
        limits.check_item({**base(), name: {"S": "a" * (ITEM - 15)}})
    with pytest.raises(ValidationError):
        limits.check_item({**base(), "v": {"S": "é" * ((ITEM - 7) // 2 + 1)}})  # 2 bytes per character


@pytest.mark.parametrize(
    ("av", "size"),
    [  # measured on DynamoDB Local: bytes an attribute named "x" adds, minus 1 for the name
        ({"N": "1"}, 2), ({"N": "12"}, 2), ({"N": "123"}, 3), ({"N": "1" * 38}, 20), ({"N": "-1"}, 3),
        ({"N": "100000"}, 2), ({"N": "0.001"}, 2), ({"N": "1.5"}, 3), ({"N": "0"}, 1), ({"N": "123456789"}, 6),
        ({"L": []}, 3), ({"L": [{"S": "a"}]}, 5), ({"L": [{"S": "a"}, {"S": "b"}]}, 7), ({"M": {}}, 3),
        ({"M": {"k": {"S": "a"}}}, 6), ({"M": {"k": {"S": "a"}, "j": {"S": "b"}}}, 9), ({"BOOL": True}, 1),
        ({"NULL": True}, 1), ({"SS": ["a", "bc"]}, 3), ({"NS": ["1", "22"]}, 4), ({"L": [{"L": [{"S": "a"}]}]}, 9),
        ({"M": {"k": {"M": {}}}}, 8), ({"S": ""}, 0), ({"B": b"abc"}, 3), ({"B": "YWJj"}, 3),
    ],
)
def test_value_sizes_match_dynamodb(av: dict[str, Any], size: int) -> None:
    assert limits.value_size(av) == size


# -- keys --------------------------------------------------------------------------------------------------


@pytest.mark.parametrize(("sort", "limit"), [(False, 2048), (True, 1024)])
def test_key_value_sizes(sort: bool, limit: int) -> None:
    limits.check_key_value({"S": "k" * limit}, sort=sort)
    limits.check_key_value({"B": b"k" * limit}, sort=sort)
    limits.check_key_value({"S": "é" * (limit // 2)}, sort=sort)
    for bad in ({"S": "k" * (limit + 1)}, {"B": b"k" * (limit + 1)}, {"S": "é" * (limit // 2) + "k"}):
        with pytest.raises(ValidationError):
            limits.check_key_value(bad, sort=sort)


def test_empty_key_values() -> None:
    limits.check_key_value({"S": "k"}, sort=False)
    for bad in ({"S": ""}, {"B": b""}):
        with pytest.raises(ValidationError, match="empty"):
            limits.check_key_value(bad, sort=False)


# -- numbers -----------------------------------------------------------------------------------------------


@pytest.mark.parametrize(
    "ok",
    ["1" * 38, "1" + "0" * 40, "0." + "0" * 40 + "1", "1" * 37 + ".1", "9" * 38 + "0" * 88,
     "9.9999999999999999999999999999999999999E+125", "1E+125", "1E-130", "-1E-130", "-0", "00012", "1e-05", "0"],
)
def test_numbers_dynamodb_stores(ok: str) -> None:
    limits.check_number(ok)


@pytest.mark.parametrize(
    "bad",
    ["1" * 39, "1" * 38 + ".1", "9" * 38 + "0" * 87 + ".5", "1E+126", "1" + "0" * 126, "1E-131", "NaN",
     "Infinity", "-Infinity", " 1", "", "1x"],
)
def test_numbers_dynamodb_rejects(bad: str) -> None:
    with pytest.raises(ValidationError):
        limits.check_number(bad)
    with pytest.raises(ValidationError):
        limits.check_item({"n": {"N": bad}})


# -- nesting and sets --------------------------------------------------------------------------------------


def test_nesting_depth() -> None:
    limits.check_item({"d": nest(31, {"S": "x"})})  # 31 maps, the 32nd level a scalar
    limits.check_item({"d": nest(31, {"SS": ["a"]})})
    with pytest.raises(ValidationError, match="nested"):
        limits.check_item({"d": nest(31, {"M": {}})})  # a 32nd container
    with pytest.raises(ValidationError, match="nested"):
        limits.check_item({"d": nest(32, {"S": "x"})})
    lists = {"L": [{"S": "x"}]}
    for _ in range(30):
        lists = {"L": [lists]}
    limits.check_item({"d": lists})  # 31 lists
    with pytest.raises(ValidationError):
        limits.check_item({"d": {"L": [lists]}})


def test_sets() -> None:
    limits.check_item({"s": {"SS": ["a"]}, "n": {"NS": ["1"]}, "b": {"BS": [b"x"]}})
    for bad in ({"SS": []}, {"NS": []}, {"BS": []}, {"SS": ["a", "a"]}, {"NS": ["1x"]}):
        with pytest.raises(ValidationError):
            limits.check_item({"s": bad})


# -- batches, transactions, expressions --------------------------------------------------------------------


@pytest.mark.parametrize(
    ("limit", "what"),
    [(limits.MAX_BATCH_GET, "BatchGetItem"), (limits.MAX_BATCH_WRITE, "BatchWriteItem"),
     (limits.MAX_TRANSACT_ITEMS, "TransactWriteItems")],
)
def test_batch_sizes(limit: int, what: str) -> None:
    limits.check_batch_size(limit, limit, what)
    with pytest.raises(ValidationError):
        limits.check_batch_size(limit + 1, limit, what)


def test_duplicates() -> None:
    limits.check_distinct([("a",), ("b",)], "a batch")
    with pytest.raises(ValidationError, match="twice"):
        limits.check_distinct([("a",), ("b",), ("a",)], "a batch")


def test_expression_size() -> None:
    limits.check_expression("x" * 4096, "an expression")
    with pytest.raises(ValidationError):
        limits.check_expression("x" * 4097, "an expression")


def test_transaction_bytes() -> None:
    limits.total_size([limits.MAX_TRANSACT_BYTES], limits.MAX_TRANSACT_BYTES, "a transaction")
    with pytest.raises(ValidationError):
        limits.total_size([limits.MAX_TRANSACT_BYTES, 1], limits.MAX_TRANSACT_BYTES, "a transaction")


def test_attribute_names() -> None:
    limits.check_name("a" * 255)
    with pytest.raises(ValidationError):
        limits.check_name("a" * 256)
    with pytest.raises(ValidationError):
        limits.check_name("")
