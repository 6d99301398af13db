"""Compiled statements per dialect (upserts, key batches, queries) and ``successor``, without a database."""

from __future__ import annotations

import pytest
from sqlalchemy.engine import Dialect

from tierstore.stores.sql.statements import successor

from _sql import Wide, lite, maria, pg, plan


@pytest.mark.parametrize(
    ("prefix", "expected"),
    [
        ("ab", "ac"),
        ("a\U0010ffff", "b"),
        ("\U0010ffff", None),
        ("a\ud7ff", "a\ue000"),  # the surrogate block is skipped
        (b"ab", b"ac"),
        (b"a\xff", b"b"),
        (b"\xff\xff", None),
    ],
)
def test_successor(prefix: str | bytes, expected: str | bytes | None) -> None:
    assert successor(prefix) == expected


@pytest.mark.parametrize("dialect", [pg(), maria(), lite()], ids=["postgres", "mysql", "sqlite"])
def test_statements_bind_every_value(dialect: Dialect) -> None:
    p = plan(Wide, dialect)
    for sql in (p.get, p.delete, p.upsert, p.insert_new, p.update_expect, p.delete_expect, p.get_many(8)):
        assert sql is not None
        assert "'" not in sql.text  # no literal values: everything is a parameter
    assert p.get.names == ("k0", "k1")
    assert len(p.upsert.names) == len(p.cols)


def test_upserts_are_dialect_specific() -> None:
    assert "ON CONFLICT (p, s) DO UPDATE" in plan(Wide, pg()).upsert.text
    assert "RETURNING" in plan(Wide, pg()).upsert.text
    assert "ON CONFLICT (p, s) DO UPDATE" in plan(Wide, lite()).upsert.text
    text = plan(Wide, maria()).upsert.text
    assert "ON DUPLICATE KEY UPDATE" in text and "last_insert_id(" in text.lower()
    assert "last_insert_id" not in plan(Wide, maria()).upsert_many(3).text.lower()
    assert "ON CONFLICT (p, s) DO NOTHING" in plan(Wide, pg()).insert_new.text
    assert "ON DUPLICATE" not in plan(Wide, maria()).insert_new.text  # a plain INSERT: duplicates raise


def test_query_statements() -> None:
    sql, order, _ = plan(Wide, pg()).query("by_label", "begins_with", True, False, True)
    assert order.cols == ("rank", "p", "s")
    assert "LIKE" not in sql.text and "(unit_wide.rank, unit_wide.p, unit_wide.s) >" in sql.text
    assert "ORDER BY unit_wide.rank ASC, unit_wide.p ASC, unit_wide.s ASC" in sql.text
    my, _, _ = plan(Wide, maria()).query("by_label", None, False, True, True)
    assert " OR " in my.text and "DESC" in my.text  # MySQL range-scans an expanded OR only
    tbl, order, _ = plan(Wide, lite()).query(None, "between", False, False, False)
    assert order.cols == ("s",) and tbl.args({"p0": "x", "s0": "a", "s1": "b", "lim": 3})[:4] == ("x", "a", "b", 3)
