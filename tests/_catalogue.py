"""The bad-input catalogue: one row per way a careless or hostile caller can misuse the API, each with the typed
error it must raise — before any I/O — and the stores it applies to. It grows with every defect found: add a
row, not a test.

A row's ``call`` gets a :class:`Repos` (the repositories of the value entities and the database) and makes one
call. ``stores`` names the stores on which the call must fail (``None``: all); on the others the call is legal
and is not run here (the generated-value property test covers what they hold).
"""

from __future__ import annotations

import math
from collections.abc import Awaitable, Callable
from dataclasses import dataclass
from typing import Any

import tierstore
from _values import IntKeyed, Ranked, Sample
from tierstore import CachePolicy, ConfigError, TierstoreError, ValidationError, begins_with, eq

SQL = frozenset({"sqlite", "postgres", "mysql"})
DYNAMO = frozenset({"dynamodb"})
PG = frozenset({"postgres"})


@dataclass(frozen=True)
class Repos:
    db: tierstore.Database
    sample: tierstore.Repository[Sample]
    ranked: tierstore.Repository[Ranked]
    int_keyed: tierstore.Repository[IntKeyed]


@dataclass(frozen=True)
class Case:
    name: str
    call: Callable[[Repos], Awaitable[Any]]
    error: type[TierstoreError]
    stores: frozenset[str] | None = None


def _deep(levels: int) -> list[Any]:
    v: list[Any] = []
    for _ in range(levels):
        v = [v]
    return v


async def _tx_put(r: Repos, item: Any) -> None:
    async with r.db.transaction() as tx:
        tx.put(item)


async def _sync(fn: Callable[[], Any]) -> Any:
    return fn()


def _put(item: Callable[[], Any], **kw: Any) -> Callable[[Repos], Awaitable[Any]]:
    return lambda r: r.sample.put(item(), **kw)


def _put_ranked(item: Callable[[], Any]) -> Callable[[Repos], Awaitable[Any]]:
    return lambda r: r.ranked.put(item())


async def _query(q: Callable[[], Any]) -> Any:
    return await q()


CASES: list[Case] = [
    # -- get: keys -----------------------------------------------------------------------------------------
    Case("get None", lambda r: r.sample.get(None), ValidationError),
    Case("get int for a str key", lambda r: r.sample.get(5), ValidationError),
    Case("get empty str key", lambda r: r.sample.get(""), ValidationError),
    Case("get bytes for a str key", lambda r: r.sample.get(b"x"), ValidationError),
    Case("get bool for a str key", lambda r: r.sample.get(True), ValidationError),
    Case("get lone surrogate key", lambda r: r.sample.get("\ud800"), ValidationError),
    Case("get lone surrogate key, consistent", lambda r: r.sample.get("a\udfff", consistent=True), ValidationError),
    Case("get sort key on a table without one", lambda r: r.sample.get("a", "b"), ValidationError),
    Case("get missing sort key", lambda r: r.ranked.get("p"), ValidationError),
    Case("get int for a str sort key", lambda r: r.ranked.get("p", 5), ValidationError),
    Case("get empty sort key", lambda r: r.ranked.get("p", ""), ValidationError),
    Case("get surrogate sort key", lambda r: r.ranked.get("p", "\udc80"), ValidationError),
    Case("get str for an int key", lambda r: r.int_keyed.get("1"), ValidationError),
    Case("get bool for an int key", lambda r: r.int_keyed.get(True), ValidationError),
    Case("get float for an int key", lambda r: r.int_keyed.get(1.5), ValidationError),
    Case("get int key beyond 64 bits", lambda r: r.int_keyed.get(2**70), ValidationError, SQL),
    Case("get str key over 255 chars", lambda r: r.sample.get("k" * 256), ValidationError, SQL),
    Case("get str key over 2048 bytes", lambda r: r.sample.get("é" * 1025), ValidationError, SQL | DYNAMO),
    Case("get sort key over 1024 bytes", lambda r: r.ranked.get("p", "g" * 1025), ValidationError, SQL | DYNAMO),
    Case("get NUL in key", lambda r: r.sample.get("a\x00b"), ValidationError, PG),
    # -- get_many ------------------------------------------------------------------------------------------
    Case("get_many None", lambda r: r.sample.get_many(None), ValidationError),  # type: ignore[arg-type]
    Case("get_many int", lambda r: r.sample.get_many(5), ValidationError),  # type: ignore[arg-type]
    Case("get_many str (one key, not a batch)", lambda r: r.sample.get_many("abc"), ValidationError),
    Case("get_many bytes", lambda r: r.sample.get_many(b"abc"), ValidationError),
    Case("get_many holding None", lambda r: r.sample.get_many([None]), ValidationError),
    Case("get_many holding a bad key", lambda r: r.sample.get_many(["ok", 5]), ValidationError),
    Case("get_many surrogate key", lambda r: r.sample.get_many(["ok", "\ud800"]), ValidationError),
    Case("get_many consistent surrogate", lambda r: r.sample.get_many(["\ud800"], consistent=True),
         ValidationError),
    Case("get_many unpaired key", lambda r: r.ranked.get_many(["p"]), ValidationError),
    Case("get_many 1-tuple key", lambda r: r.ranked.get_many([("p",)]), ValidationError),
    Case("get_many 3-tuple key", lambda r: r.ranked.get_many([("p", "g", "x")]), ValidationError),
    Case("get_many NUL in key", lambda r: r.sample.get_many(["ok", "a\x00"]), ValidationError, PG),
    Case("get_many key over 255", lambda r: r.sample.get_many(["k" * 300]), ValidationError, SQL),
    # -- put: the item -------------------------------------------------------------------------------------
    Case("put None", lambda r: r.sample.put(None), ValidationError),  # type: ignore[arg-type]
    Case("put a str", lambda r: r.sample.put("item"), ValidationError),  # type: ignore[arg-type]
    Case("put another entity", lambda r: r.sample.put(Ranked("p", "g")), ValidationError),  # type: ignore[arg-type]
    Case("put int key for str", _put(lambda: Sample(5)), ValidationError),  # type: ignore[arg-type]
    Case("put empty key", _put(lambda: Sample("")), ValidationError),
    Case("put surrogate key", _put(lambda: Sample("k\ud800")), ValidationError),
    Case("put str in int field", _put(lambda: Sample("k", n="x")), ValidationError),  # type: ignore[arg-type]
    Case("put float in int field", _put(lambda: Sample("k", n=1.5)), ValidationError),  # type: ignore[arg-type]
    Case("put str in float field", _put(lambda: Sample("k", f="x")), ValidationError),  # type: ignore[arg-type]
    Case("put int in str field", _put(lambda: Sample("k", s=5)), ValidationError),  # type: ignore[arg-type]
    Case("put str in bytes field", _put(lambda: Sample("k", b="t")), ValidationError),  # type: ignore[arg-type]
    Case("put str in bool field", _put(lambda: Sample("k", flag="y")), ValidationError),  # type: ignore[arg-type]
    Case("put str in list[float]", _put(lambda: Sample("k", readings=["a"])), ValidationError),  # type: ignore[list-item]
    Case("put int in list[str]", _put(lambda: Sample("k", tags=[1])), ValidationError),  # type: ignore[list-item]
    Case("put a dict where a list goes", _put(lambda: Sample("k", tags={"a": 1})), ValidationError),  # type: ignore[arg-type]
    Case("put a list where a dict goes", _put(lambda: Sample("k", meta=[1])), ValidationError),  # type: ignore[arg-type]
    Case("put int dict key in dict[str, Any]", _put(lambda: Sample("k", meta={1: "x"})), ValidationError),  # type: ignore[dict-item]
    Case("put str in int | None", _put(lambda: Sample("k", maybe="x")), ValidationError),  # type: ignore[arg-type]
    Case("put surrogate in str field", _put(lambda: Sample("k", s="\ud800")), ValidationError),
    Case("put surrogate in list", _put(lambda: Sample("k", tags=["a", "\udfff"])), ValidationError),
    Case("put surrogate dict key", _put(lambda: Sample("k", meta={"\ud800": 1})), ValidationError),
    Case("put nesting 1,200 deep", _put(lambda: Sample("k", meta={"d": _deep(1200)})), ValidationError),
    Case("put an object no layer encodes", _put(lambda: Sample("k", meta={"x": object()})), ValidationError),
    Case("put a version of the wrong type", _put(lambda: Sample("k", version="1")), ValidationError),  # type: ignore[arg-type]
    Case("put NaN nested in a JSON column", _put(lambda: Sample("k", readings=[1.0, math.nan])), ValidationError,
         SQL | DYNAMO),
    Case("put inf nested in a JSON column", _put(lambda: Sample("k", meta={"a": [math.inf]})), ValidationError,
         SQL | DYNAMO),
    Case("put NaN float", _put(lambda: Sample("k", f=math.nan)), ValidationError,
         frozenset({"sqlite", "mysql", "dynamodb"})),
    Case("put inf float", _put(lambda: Sample("k", f=math.inf)), ValidationError, frozenset({"mysql", "dynamodb"})),
    Case("put int beyond 64 bits", _put(lambda: Sample("k", n=2**63)), ValidationError, SQL),
    Case("put int beyond 38 digits", _put(lambda: Sample("k", n=3**100)), ValidationError, SQL | DYNAMO),
    Case("put NUL in text", _put(lambda: Sample("k", s="a\x00b")), ValidationError, PG),
    Case("put NUL in key", _put(lambda: Sample("k\x00")), ValidationError, PG),
    Case("put JSON nested 32 deep", _put(lambda: Sample("k", meta={"d": _deep(31)})), ValidationError,
         frozenset({"mysql", "dynamodb"})),
    Case("put NUL in JSON", _put(lambda: Sample("k", meta={"a": "\x00"})), ValidationError, PG),
    Case("put key over 255 chars", _put(lambda: Sample("k" * 256)), ValidationError, SQL),
    Case("put key over 2048 bytes", _put(lambda: Sample("k" * 2049)), ValidationError, SQL | DYNAMO),
    Case("put item over 400 KB", _put(lambda: Sample("k", s="x" * 410_000)), ValidationError, DYNAMO),
    Case("put sort key over 1024 bytes", _put_ranked(lambda: Ranked("p", "g" * 1025)), ValidationError,
         SQL | DYNAMO),
    Case("put index key over 2048 bytes", _put_ranked(lambda: Ranked("p", "g", board="b" * 2049)), ValidationError,
         SQL | DYNAMO),
    Case("put an empty map key", _put(lambda: Sample("k", meta={"": 1})), ValidationError, DYNAMO),
    Case("put an empty nested map key", _put(lambda: Sample("k", meta={"a": {"": [1]}})), ValidationError, DYNAMO),
    Case("put empty index key", _put_ranked(lambda: Ranked("p", "g", board="")), ValidationError, DYNAMO),
    Case("put bool int key", lambda r: r.int_keyed.put(IntKeyed(True)), ValidationError),
    Case("put int key beyond 64 bits", lambda r: r.int_keyed.put(IntKeyed(2**64)), ValidationError, SQL),
    Case("put expect_version -1", _put(lambda: Sample("k"), expect_version=-1), ValidationError),
    Case("put expect_version str", _put(lambda: Sample("k"), expect_version="1"), ValidationError),
    Case("put expect_version bool", _put(lambda: Sample("k"), expect_version=True), ValidationError),
    Case("put expect_version without a version field", lambda r: r.ranked.put(Ranked("p", "g"), expect_version=1),
         ValidationError),
    # -- put_many / delete / delete_many ------------------------------------------------------------------
    Case("put_many None", lambda r: r.sample.put_many(None), ValidationError),  # type: ignore[arg-type]
    Case("put_many str", lambda r: r.sample.put_many("ab"), ValidationError),  # type: ignore[arg-type]
    Case("put_many duplicate keys", lambda r: r.sample.put_many([Sample("d"), Sample("d")]), ValidationError),
    Case("put_many holding a non-item", lambda r: r.sample.put_many([Sample("d"), "x"]), ValidationError),  # type: ignore[list-item]
    Case("put_many holding a surrogate", lambda r: r.sample.put_many([Sample("d", s="\ud800")]), ValidationError),
    Case("delete None", lambda r: r.sample.delete(None), ValidationError),
    Case("delete empty key", lambda r: r.sample.delete(""), ValidationError),
    Case("delete surrogate key", lambda r: r.sample.delete("\ud800"), ValidationError),
    Case("delete expect_version -3", lambda r: r.sample.delete("k", expect_version=-3), ValidationError),
    Case("delete NUL key", lambda r: r.sample.delete("a\x00"), ValidationError, PG),
    Case("delete_many None", lambda r: r.sample.delete_many(None), ValidationError),  # type: ignore[arg-type]
    Case("delete_many bad key", lambda r: r.sample.delete_many([5]), ValidationError),
    # -- query ---------------------------------------------------------------------------------------------
    Case("query int partition", lambda r: _query(lambda: r.sample.query(5)), ValidationError),
    Case("query surrogate partition", lambda r: _query(lambda: r.sample.query("\ud800")), ValidationError),
    Case("query a non-condition sort", lambda r: _query(lambda: r.ranked.query("p", sort="x")), ValidationError),  # type: ignore[arg-type]
    Case("query limit 0", lambda r: _query(lambda: r.sample.query("p", limit=0)), ValidationError),
    Case("query limit -1", lambda r: _query(lambda: r.sample.query("p", limit=-1)), ValidationError),
    Case("query limit bool", lambda r: _query(lambda: r.sample.query("p", limit=True)), ValidationError),
    Case("query limit float", lambda r: _query(lambda: r.sample.query("p", limit=1.5)), ValidationError),  # type: ignore[arg-type]
    Case("query cursor int", lambda r: _query(lambda: r.sample.query("p", cursor=5)), ValidationError),  # type: ignore[arg-type]
    Case("query cursor garbage", lambda r: _query(lambda: r.sample.query("p", cursor="garbage")), ValidationError),
    Case("query unknown index", lambda r: _query(lambda: r.sample.query("p", index="nope")), ValidationError),
    Case("query index sort of the wrong type",
         lambda r: _query(lambda: r.ranked.query("main", index="by_board", sort=eq("x"))), ValidationError),
    Case("query sort on a table without one", lambda r: _query(lambda: r.sample.query("p", sort=eq("x"))),
         ValidationError),
    Case("query begins_with an int", lambda r: _query(lambda: r.ranked.query("p", sort=begins_with(5))),
         ValidationError),  # type: ignore[arg-type]
    Case("scatter_gather concurrency 0", lambda r: r.sample.scatter_gather("p", concurrency=0), ValidationError),
    # -- transactions --------------------------------------------------------------------------------------
    Case("transaction put of a bad item", lambda r: _tx_put(r, Sample("k", n="x")), ValidationError),  # type: ignore[arg-type]
    Case("transaction put of a surrogate", lambda r: _tx_put(r, Sample("k", s="\ud800")), ValidationError),
    Case("transaction put of a non-entity", lambda r: _tx_put(r, "x"), ValidationError),
    # -- configuration -------------------------------------------------------------------------------------
    Case("CachePolicy ttl NaN", lambda r: _sync(lambda: CachePolicy(ttl=math.nan)), ConfigError),
    Case("CachePolicy ttl inf", lambda r: _sync(lambda: CachePolicy(ttl=math.inf)), ConfigError),
    Case("CachePolicy ttl negative", lambda r: _sync(lambda: CachePolicy(ttl=-1)), ConfigError),
    Case("CachePolicy ttl over 10 years", lambda r: _sync(lambda: CachePolicy(ttl=1e12)), ConfigError),
    Case("CachePolicy negative_ttl NaN", lambda r: _sync(lambda: CachePolicy(negative_ttl=math.nan)), ConfigError),
    Case("CachePolicy unknown write mode", lambda r: _sync(lambda: CachePolicy(write_mode="x")), ConfigError),  # type: ignore[arg-type]
    Case("connect unknown scheme", lambda r: _sync(lambda: tierstore.connect("nope://x")), ConfigError),
    Case("repository of a non-entity", lambda r: _sync(lambda: r.db.repository(int)), ConfigError),  # type: ignore[type-var]
]
