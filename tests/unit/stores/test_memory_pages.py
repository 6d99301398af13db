"""memory:// query pages stay exact while a partition changes under them (its ordered keys and encoded items are
kept between queries)."""

from __future__ import annotations

import tierstore
from tierstore import Entity, PartitionKey, SortKey


class Line(Entity, table="mp_lines"):
    doc: PartitionKey[str]
    n: SortKey[int]
    text: str = ""


async def _all(repo: object, doc: str) -> list[tuple[int, str]]:
    return [(x.n, x.text) async for x in repo.query(doc)]  # type: ignore[attr-defined]


async def test_pages_follow_overwrites_inserts_and_deletes() -> None:
    db = tierstore.connect("memory://", [])
    await db.open()
    lines = db.repository(Line)
    await lines.put_many([Line("d", n, f"v{n}") for n in range(0, 10, 2)])
    await lines.put(Line("e", 1, "other partition"))
    assert await _all(lines, "d") == [(n, f"v{n}") for n in range(0, 10, 2)]
    await lines.put(Line("d", 4, "changed"))  # an overwrite: the partition's keys stay
    await lines.update("d", 8, set={"text": "updated"})
    page = await lines.query("d", limit=3)
    assert [(x.n, x.text) for x in page.items] == [(0, "v0"), (2, "v2"), (4, "changed")]
    assert await _all(lines, "d") == [(0, "v0"), (2, "v2"), (4, "changed"), (6, "v6"), (8, "updated")]
    await lines.put(Line("d", 3, "new"))  # a key joins
    await lines.delete("d", 0)  # a key leaves
    await lines.put(Line("e", 1, "elsewhere"))
    assert await _all(lines, "d") == [(2, "v2"), (3, "new"), (4, "changed"), (6, "v6"), (8, "updated")]
    page = await lines.query("d", limit=2)
    rest = await lines.query("d", limit=10, cursor=page.cursor)
    assert [x.n for x in page.items + rest.items] == [2, 3, 4, 6, 8]
    assert [x.n for x in (await lines.query("d", reverse=True, limit=2)).items] == [8, 6]
    await lines.put(Line("d", 6, "last"))
    assert (await lines.query("d")).items[3].text == "last"
    found = await lines.get_many([("d", 6), ("d", 7), ("e", 1)])
    assert found == [Line("d", 6, "last"), None, Line("e", 1, "elsewhere")]
    schema = lines.schema
    many = await db.store.query_many(schema, [("d",), ("none",), ("e",)], limit=2)
    assert [[x.n for x in group] for group in many] == [[2, 3], [], [1]]
    assert await _all(lines, "none") == []
    await lines.put(Line("none", 1, "now some"))  # a partition read while empty, then written
    many = await db.store.query_many(schema, [("none",), ("d",)])
    assert [[x.text for x in group] for group in many] == [["now some"], ["v2", "new", "changed", "last", "updated"]]
    assert await _all(lines, "none") == [(1, "now some")]
    await db.aclose()
