"""Application-side joins and the per-request session, on every store (plain and sharded) and several tiers.

Round trips are counted through ``db.stats()``: a join never reads one item at a time.
"""

from __future__ import annotations

import contextlib
import os
import uuid
from collections.abc import AsyncIterator
from typing import Any
from urllib.parse import urlsplit, urlunsplit

import pytest

import tierstore
from tierstore import (
    ConfigError,
    Database,
    Entity,
    Index,
    Many,
    NotFound,
    NotLoaded,
    PartitionKey,
    Ref,
    SortKey,
    ValidationError,
)
from tierstore.backends import schema_of
from tierstore.routing import Router
from tierstore.session import Session
from tierstore.stores.sharded import ShardedStore, ShardedStoreConfig
from tierstore.tiers.sharded import ShardedTier, ShardedTierConfig

from _servers import DYNAMODB_URL, MEMCACHED_URL, MYSQL_URL, PG_URL, REDIS_URL, require, store_url, tier_url


class Account(Entity, table="jn_accounts"):
    id: PartitionKey[str]
    plan: str = "free"


class Customer(Entity, table="jn_customers"):
    id: PartitionKey[str]
    name: str
    account_id: str | None = None
    account = Ref(Account, "account_id")
    orders = Many["Order"]("Order", "customer_id")
    latest = Many["Order"]("Order", "customer_id", limit=2, newest_first=True)


class Product(Entity, table="jn_products"):
    sku: PartitionKey[str]
    title: str
    first_orders = Many["Order"]("Order", "sku", by="sku", index="by_sku", limit=3)


class Order(Entity, table="jn_orders", indexes=[Index("by_sku", "sku", "order_id")]):
    customer_id: PartitionKey[str]
    order_id: SortKey[str]
    sku: str
    qty: int = 1
    customer = Ref(Customer, "customer_id")
    product = Ref(Product, "sku")
    product_required = Ref(Product, "sku", required=True)


class Shelf(Entity, table="jn_shelves"):
    store: PartitionKey[str]
    slot: SortKey[int]
    label: str = ""


class Pick(Entity, table="jn_picks"):
    batch: PartitionKey[str]
    line: SortKey[int]
    shelf_store: str | None = None
    shelf_slot: int | None = None
    shelf = Ref(Shelf, "shelf_store", "shelf_slot")
    shelf_required = Ref(Shelf, "shelf_store", "shelf_slot", required=True)


ENTITIES = (Account, Customer, Product, Order, Shelf, Pick)


def _with_database(url: str, database: str) -> str:
    parts = urlsplit(url)
    return urlunsplit(parts._replace(path=f"/{database}"))


async def ensure_database(url: str, database: str) -> None:
    """Create the second database of a sharded SQL setup if it is missing (test infrastructure)."""
    if url.startswith("postgresql"):
        import asyncpg

        conn = await asyncpg.connect(url.replace("postgresql+asyncpg", "postgresql"))
        try:
            if not await conn.fetchval("SELECT 1 FROM pg_database WHERE datname = $1", database):
                with contextlib.suppress(asyncpg.DuplicateDatabaseError):  # another run created it
                    await conn.execute(f'CREATE DATABASE "{database}"')
        finally:
            await conn.close()
    elif url.startswith("mysql"):
        import aiomysql

        p = urlsplit(url)
        conn = await aiomysql.connect(host=p.hostname, port=p.port or 3306, user=p.username or "root",
                                      password=p.password or "")
        try:
            async with conn.cursor() as cur:
                await cur.execute("SELECT 1 FROM information_schema.schemata WHERE schema_name = %s", (database,))
                if not await cur.fetchone():
                    await cur.execute(f"CREATE DATABASE IF NOT EXISTS `{database}`")
        finally:
            conn.close()


async def shard_urls(base: str, tmp_path: os.PathLike[str]) -> dict[str, str]:
    if base == "memory":
        return {"a": "memory://", "b": "memory://"}
    if base == "sqlite":
        return {"a": f"sqlite+aiosqlite:///{tmp_path}/a.db", "b": f"sqlite+aiosqlite:///{tmp_path}/b.db"}
    if base == "dynamodb":  # two table sets on one endpoint, told apart by a table prefix
        require(DYNAMODB_URL, "dynamodb")
        sep = "&" if "?" in DYNAMODB_URL else "?"
        return {s: f"{DYNAMODB_URL}{sep}table_prefix=jn{s}_" for s in "ab"}
    url = {"postgres": PG_URL, "mysql": MYSQL_URL}[base]
    require(url, base)
    # The second shard's database is named after the URL's own, so runs against different databases of one
    # server never share it.
    shard_b = f"{urlsplit(url).path.lstrip('/') or 'test'}_shard_b"
    await ensure_database(url, shard_b)
    return {"a": url, "b": _with_database(url, shard_b)}


async def open_join_db(kind: str, tiers: tuple[str, ...], tmp_path: os.PathLike[str]) -> Database:
    prefix = f"j{uuid.uuid4().hex[:12]}"
    try:
        if kind.startswith("sharded-"):
            urls = await shard_urls(kind.split("-", 1)[1], tmp_path)
            store: Any = ShardedStoreConfig(router=Router.uniform(list(urls)), stores=urls)
        else:
            store = store_url(kind, tmp_path)
        db = tierstore.connect(store, [make_tier(t, prefix) for t in tiers])
    except ConfigError as exc:
        if "missing" in str(exc) or "No module" in str(exc):
            pytest.skip(f"backend not available: {exc}")
        raise
    await db.open()
    for e in ENTITIES:
        await db.create_tables(e)
        await db.store.truncate(schema_of(e))
    return db


def node_urls(kind: str, prefix: str) -> dict[str, str]:
    """Two single-node URLs of one kind: Redis databases 0 and 1, or the two memcached servers."""
    if kind == "redis":
        require(REDIS_URL, "redis")
        base = REDIS_URL.split("?", 1)[0].rsplit("/", 1)[0]
        return {f"r{db}": f"{base}/{db}?prefix={prefix}" for db in (0, 1)}
    require(MEMCACHED_URL, "memcached")
    hosts = MEMCACHED_URL.split("://", 1)[1].split("?", 1)[0].split(",")
    return {h: f"memcached://{h}?prefix={prefix}" for h in hosts}


def make_tier(name: str, prefix: str) -> Any:
    if name.startswith("sharded-"):
        return ShardedTierConfig(nodes=node_urls(name.split("-", 1)[1], prefix))
    return tier_url(name, prefix)


def _marks(kind: str, tiers: tuple[str, ...]) -> list[pytest.MarkDecorator]:
    base = kind.split("-", 1)[1] if kind.startswith("sharded-") else kind
    marks = [getattr(pytest.mark, base)] if base != "memory" else []
    tier_kinds = [t.split("-", 1)[1] if t.startswith("sharded-") else t for t in tiers]
    return marks + [getattr(pytest.mark, t) for t in tier_kinds if t != "memory"]


SETUPS = [
    ("memory", ()),
    ("memory", ("memory",)),
    ("sqlite", ()),
    ("sqlite", ("memory",)),
    ("postgres", ()),
    ("postgres", ("memory", "redis")),
    ("mysql", ()),
    ("dynamodb", ("memory",)),
    ("sharded-memory", ()),
    ("sharded-memory", ("memory",)),
    ("sharded-memory", ("memcached",)),
    ("sharded-sqlite", ("memory",)),
    ("sharded-postgres", ()),
    ("sharded-mysql", ("memory",)),
    ("sharded-dynamodb", ("memory",)),
    ("sharded-postgres", ("redis",)),
    ("postgres", ("sharded-redis",)),
    ("sharded-sqlite", ("memory", "sharded-memcached")),
]


@pytest.fixture(
    params=[pytest.param(s, id=f"{s[0]}-{'+'.join(s[1]) or 'none'}", marks=_marks(*s)) for s in SETUPS]
)
async def jdb(request: pytest.FixtureRequest, tmp_path: os.PathLike[str]) -> AsyncIterator[Database]:
    kind, tiers = request.param
    database = await open_join_db(kind, tiers, tmp_path)
    try:
        yield database
    finally:
        await database.aclose()


def shard_count(db: Database) -> int:
    return len(db.store.shards) if isinstance(db.store, ShardedStore) else 1


def shards_touched(db: Database, entity: type[Entity], keys: list[tuple[Any, ...]]) -> int:
    if not isinstance(db.store, ShardedStore):
        return 1
    schema = schema_of(entity)
    return len({db.store.router.shard_for(schema, k) for k in keys})


def store_trips(db: Database) -> int:
    return int(db.stats()["store"]["round_trips"])


async def seed(db: Database, n_customers: int = 6, orders_per: int = 5) -> None:
    await db.repository(Account).put_many([Account(f"a{i}", plan="pro" if i % 2 else "free") for i in range(3)])
    await db.repository(Customer).put_many([
        Customer(f"c{i}", f"Customer {i}", account_id=None if i == 0 else f"a{i % 4}")  # a3 does not exist
        for i in range(n_customers)
    ])
    await db.repository(Product).put_many([Product(f"p{i}", f"Product {i}") for i in range(8)])
    await db.repository(Order).put_many([
        Order(f"c{i}", f"o{j:02}", f"p{(i + j) % 10}")  # p8 and p9 do not exist
        for i in range(n_customers) for j in range(orders_per)
    ])


# -- many-to-one -----------------------------------------------------------------------------------


async def test_ref_join_equals_per_item_reads(jdb: Database) -> None:
    await seed(jdb)
    orders, products = jdb.repository(Order), jdb.repository(Product)
    for cid in ("c1", "c4"):
        page = await orders.query(cid).join(Order.product, Order.customer)
        assert len(page.items) == 5
        for o in page.items:
            assert o.product == await products.get(o.sku)
            assert o.customer == await jdb.repository(Customer).get(cid)
        assert any(o.product is None for o in page.items) == (cid == "c4")  # p8, p9 missing


async def test_join_100_is_one_query_plus_one_batch_per_shard(jdb: Database) -> None:
    await jdb.repository(Product).put_many([Product(f"p{i}", "x") for i in range(60)])
    orders = jdb.repository(Order)
    await orders.put_many([Order("feed", f"o{i:03}", f"p{i % 70}") for i in range(100)])
    jdb.reset_stats()
    page = await orders.query("feed").join(Order.product)
    assert len(page.items) == 100
    assert sum(o.product is not None for o in page.items) == 90  # p60..p69 are missing
    stats = jdb.stats()["store"]
    assert stats["queries"] == 1
    # 70 distinct foreign keys: one batch per shard, whichever tiers are in front (all were cold).
    assert store_trips(jdb) == 1 + shard_count(jdb)
    if isinstance(jdb.store, ShardedStore):
        for name, s in jdb.store.shard_stats().items():
            assert s["round_trips"] <= 2, name  # the query's shard: query + batch; the other: the batch
    if jdb.cache.tiers:
        jdb.reset_stats()
        again = await orders.query("feed").join(Order.product)
        assert [o.product for o in again.items] == [o.product for o in page.items]
        # Found products come from the cache now; the 10 missing ones (no negative caching) are read
        # again: still one batch per shard that holds them.
        missing = [(f"p{i}",) for i in range(60, 70)]
        assert store_trips(jdb) == 1 + shards_touched(jdb, Product, missing)


async def test_foreign_keys_are_deduplicated_and_targets_shared(jdb: Database) -> None:
    await seed(jdb)
    orders = await jdb.repository(Order).get_many([(f"c{i}", "o00") for i in range(6)])
    items = [o for o in orders if o is not None]
    jdb.reset_stats()
    await jdb.repository(Order).load(items + items, Order.customer)
    assert store_trips(jdb) <= shard_count(jdb)
    assert jdb.stats()["store"]["reads"] == 6 or isinstance(jdb.store, ShardedStore) or jdb.cache.tiers
    assert [o.customer.id for o in items] == [f"c{i}" for i in range(6)]  # type: ignore[union-attr]


async def test_missing_target_is_none_and_required_raises(jdb: Database) -> None:
    await seed(jdb)
    orders = jdb.repository(Order)
    page = await orders.query("c4")  # skus p4..p8: p8 is missing
    await orders.load(page.items, Order.product)
    assert [o.product is None for o in page.items] == [False] * 4 + [True]
    fresh = (await orders.query("c4")).items
    with pytest.raises(NotFound) as info:
        await orders.load(fresh, Order.product_required)
    assert info.value.entity == "Product"
    with pytest.raises(NotLoaded):
        _ = fresh[0].product_required  # nothing half-loaded
    ok = (await orders.query("c1")).items  # p1..p5: all present
    await orders.load(ok, Order.product_required)
    assert all(o.product_required is not None for o in ok)


async def test_two_part_foreign_keys_load_as_per_item_reads(jdb: Database) -> None:
    shelves, picks = jdb.repository(Shelf), jdb.repository(Pick)
    await shelves.put_many([Shelf("s1", n, f"shelf {n}") for n in range(5)] + [Shelf("sé", 0, "accented")])
    refs: list[tuple[Any, Any]] = [("s1", 0), ("s1", 3), ("s1", 0), ("s1", 9), ("s1", 4), ("s1", 0)]
    odd: list[tuple[Any, Any]] = [("sé", 0), (None, 1), ("s1", None)]  # non-ASCII text, None parts
    for pairs in (refs, refs + odd):
        items = [Pick("k", i, store, slot) for i, (store, slot) in enumerate(pairs)]
        jdb.reset_stats()
        await picks.load(items, Pick.shelf)
        assert store_trips(jdb) <= shard_count(jdb)  # the distinct keys in one batch per shard
        for p in items:
            want = None
            if p.shelf_store is not None and p.shelf_slot is not None:
                want = await shelves.get(p.shelf_store, p.shelf_slot)
            assert p.shelf == want
        assert [p.shelf is None for p in items[:6]] == [False, False, False, True, False, False]  # s1/9 missing
        assert items[0].shelf is items[2].shelf  # one object per distinct key
    with pytest.raises(NotFound) as info:
        await picks.load([Pick("k", 1, "s1", 1), Pick("k", 2, "s1", 9)], Pick.shelf_required)
    assert info.value.key == ("s1", 9)
    before = store_trips(jdb)
    for bad in [("", 1), ("s1", True), (3, 1)]:  # empty text, a bool, a wrong type: rejected before any I/O
        with pytest.raises(ValidationError):
            await picks.load([Pick("k", 1, "s1", 2), Pick("k", 2, *bad)], Pick.shelf)
    assert store_trips(jdb) == before


async def test_required_ref_never_loads_none_for_a_key_matched_by_collation(jdb: Database) -> None:
    # MariaDB compares text case-insensitively: the row of ("s1", 1) answers a read of ("S1", 1) under its own
    # spelling. A required relation then either finds its target or raises; it never holds None.
    await jdb.repository(Shelf).put_many([Shelf("s1", 1, "one"), Shelf("s1", 2, "two")])
    items = [Pick("k", 1, "s1", 2), Pick("k", 2, "S1", 1)]
    try:
        await jdb.repository(Pick).load(items, Pick.shelf_required)
    except NotFound as exc:
        assert exc.key == ("S1", 1)
    else:
        assert all(p.shelf_required is not None for p in items)


async def test_unloaded_relation_raises_and_does_no_io(jdb: Database) -> None:
    await seed(jdb)
    page = await jdb.repository(Order).query("c1")
    before = store_trips(jdb)
    with pytest.raises(NotLoaded, match="join"):
        _ = page.items[0].customer
    with pytest.raises(NotLoaded):
        _ = page.items[0].product
    assert store_trips(jdb) == before


async def test_bad_foreign_key_is_rejected_before_io(jdb: Database) -> None:
    orders = jdb.repository(Order)
    await orders.put(Order("c1", "o1", "p1"))
    before = store_trips(jdb)
    # An empty foreign key (sku is not a key of Order, so nothing stopped it being set) is bad data.
    with pytest.raises(ValidationError):
        await orders.load([Order("c1", "o1", "p1"), Order("c1", "o2", "")], Order.product)
    assert store_trips(jdb) == before


async def test_optional_foreign_key_none_loads_none(jdb: Database) -> None:
    await seed(jdb)
    customers = await jdb.repository(Customer).get_many(["c0", "c1", "c3"])
    items = [c for c in customers if c is not None]
    await jdb.repository(Customer).load(items, Customer.account)
    assert [c.account.id if c.account else None for c in items] == [None, "a1", None]  # a3 missing


# -- nested and one-to-many --------------------------------------------------------------------------


async def test_nested_join_order_customer_account(jdb: Database) -> None:
    await seed(jdb)
    orders = jdb.repository(Order)
    keys = [(f"c{i}", f"o{j:02}") for i in range(6) for j in range(2)]
    items = [o for o in await orders.get_many(keys) if o is not None]
    jdb.reset_stats()
    await orders.load(items, Order.customer, Customer.account)
    # One batch per level (per shard): customers, then accounts.
    assert store_trips(jdb) <= 2 * shard_count(jdb)
    for o in items:
        assert o.customer is not None and o.customer.id == o.customer_id
        expected = await jdb.repository(Account).get(o.customer.account_id) if o.customer.account_id else None
        assert o.customer.account == expected
    # The two orders of one customer share one Customer object.
    assert items[0].customer is items[1].customer
    # The same path through a query.
    page = await orders.query("c2").join(Order.customer, Customer.account)
    assert all(o.customer.account.id == "a2" for o in page.items)  # type: ignore[union-attr]


async def test_path_must_be_reachable(jdb: Database) -> None:
    orders = jdb.repository(Order)
    with pytest.raises(ValidationError, match="does not reach"):
        await orders.load([Order("c1", "o1", "p1")], Customer.account)
    with pytest.raises(ValidationError):
        await orders.load([Order("c1", "o1", "p1")], "customer")  # type: ignore[arg-type]


def is_dynamodb(db: Database) -> bool:
    stores = db.store.shards.values() if isinstance(db.store, ShardedStore) else [db.store]
    return all(st.name == "dynamodb" for st in stores)


async def test_one_to_many_is_one_query_per_shard(jdb: Database) -> None:
    await seed(jdb)
    customers = jdb.repository(Customer)
    items = [c for c in await customers.get_many([f"c{i}" for i in range(6)] + ["nobody"]) if c]
    extra = await customers.put(Customer("lonely", "No orders"))
    items.append(extra)
    jdb.reset_stats()
    await customers.load(items, Customer.orders)
    # SQL and memory: one request per shard holding a parent; DynamoDB has no multi-partition query: one per parent
    # (counted by the shards themselves behind a sharded store).
    parents = [(c.id,) for c in items]
    if is_dynamodb(jdb):
        sent = store_trips(jdb) if not isinstance(jdb.store, ShardedStore) else sum(
            int(st["round_trips"]) for st in jdb.store.shard_stats().values())
        assert sent == len(parents)
    else:
        assert store_trips(jdb) == shards_touched(jdb, Order, parents)
    for c in items:
        assert c.orders == await jdb.repository(Order).query(c.id).all()
    assert items[-1].orders == []
    # one-to-many then many-to-one, level by level
    await customers.load(items[:2], Customer.orders, Order.product)
    assert all(o.product is None or o.product.sku == o.sku for c in items[:2] for o in c.orders)


async def test_one_to_many_limit_and_order_per_parent(jdb: Database) -> None:
    await seed(jdb, n_customers=4, orders_per=5)
    customers, orders = jdb.repository(Customer), jdb.repository(Order)
    lonely = await customers.put(Customer("lonely", "No orders"))
    items = [c for c in await customers.get_many(["c0", "c1", "c2", "c3"]) if c] + [lonely]
    await customers.load(items, Customer.latest, Customer.orders)
    for c in items:
        newest = (await orders.query(c.id, reverse=True, limit=2)).items
        assert c.latest == newest
        assert [o.order_id for o in c.latest] == sorted((o.order_id for o in c.orders), reverse=True)[:2]
    assert lonely.latest == [] and lonely.orders == []
    assert [o.order_id for o in items[0].latest] == ["o04", "o03"]


async def test_one_to_many_through_an_index(jdb: Database) -> None:
    await seed(jdb, n_customers=6, orders_per=5)
    products = jdb.repository(Product)
    items = [p for p in await products.get_many([f"p{i}" for i in range(8)]) if p]
    jdb.reset_stats()
    await products.load(items, Product.first_orders)
    if not is_dynamodb(jdb):  # an index partitioned unlike the table: every shard once
        assert store_trips(jdb) == shard_count(jdb)
    every = [o for i in range(6) for o in await jdb.repository(Order).query(f"c{i}").all()]
    for p in items:
        mine = sorted((o for o in every if o.sku == p.sku), key=lambda o: (o.order_id, o.customer_id))
        assert [(o.customer_id, o.order_id) for o in p.first_orders] == [
            (o.customer_id, o.order_id) for o in mine[:3]
        ]


@pytest.mark.parametrize(
    "kind",
    ["sqlite", pytest.param("postgres", marks=pytest.mark.postgres), pytest.param("mysql", marks=pytest.mark.mysql)],
)
async def test_sql_one_to_many_reads_in_chunks_of_500_parents(kind: str, tmp_path: os.PathLike[str]) -> None:
    db = await open_join_db(kind, (), tmp_path)
    try:
        customers = db.repository(Customer)
        items = await customers.put_many([Customer(f"c{i:03}", "x") for i in range(520)], check_version=False)
        await db.repository(Order).put_many(
            [Order(f"c{i:03}", f"o{j}", "p1") for i in range(0, 520, 2) for j in range(3)], check_version=False
        )
        db.reset_stats()
        await customers.load(items, Customer.latest)
        assert store_trips(db) == 2  # 520 parents: two statements of at most 500
        assert [len(c.latest) for c in items[:4]] == [2, 0, 2, 0]
        assert [o.order_id for o in items[0].latest] == ["o2", "o1"]
    finally:
        await db.aclose()


class _PlainStore:
    """A store with only the ``Store`` methods (as a third-party store may be): no ``query_many``."""

    def __init__(self, inner: Any) -> None:
        self.inner, self.name, self.stats = inner, inner.name, inner.stats


for _method in ("open", "ensure_schema", "truncate", "get", "get_many", "put", "put_many", "delete", "delete_many",
                "query", "transact", "aclose"):
    setattr(_PlainStore, _method, (lambda m: lambda self, *a, **kw: getattr(self.inner, m)(*a, **kw))(_method))


async def test_one_to_many_falls_back_to_a_query_per_parent() -> None:
    from tierstore import MemoryStore
    from tierstore.backends import QueryMany, Store

    plain = _PlainStore(MemoryStore())
    assert isinstance(plain, Store) and not isinstance(plain, QueryMany)
    async with tierstore.connect(plain) as db:  # type: ignore[arg-type]
        await seed(db, n_customers=3, orders_per=4)
        customers = db.repository(Customer)
        items = [c for c in await customers.get_many(["c0", "c1", "c2"]) if c]
        db.reset_stats()
        await customers.load(items, Customer.orders, Customer.latest)
        assert store_trips(db) == 6  # 3 parents × 2 relations
        assert [[o.order_id for o in c.latest] for c in items] == [["o03", "o02"]] * 3
        assert [len(c.orders) for c in items] == [4, 4, 4]


async def test_cancelling_a_one_to_many_load_leaves_nothing_half_done() -> None:
    import asyncio

    from tierstore import MemoryStore

    started, release = asyncio.Event(), asyncio.Event()

    class Held(MemoryStore):
        async def query_many(self, *args: Any, **kw: Any) -> Any:
            started.set()
            await release.wait()
            return await super().query_many(*args, **kw)

    async with tierstore.connect(Held()) as db:
        await seed(db, n_customers=3, orders_per=2)
        customers = db.repository(Customer)
        items = [c for c in await customers.get_many(["c0", "c1", "c2"]) if c]
        task = asyncio.ensure_future(customers.load(items, Customer.orders, Customer.account))
        await started.wait()
        task.cancel()
        with pytest.raises(asyncio.CancelledError):
            await task
        for c in items:  # nothing was set: the relations read as not loaded
            with pytest.raises(NotLoaded):
                _ = c.orders
        release.set()
        await customers.load(items, Customer.orders)
        assert [len(c.orders) for c in items] == [2, 2, 2]


async def test_session_one_to_many_keeps_identity(jdb: Database) -> None:
    await seed(jdb, n_customers=2, orders_per=3)
    async with Session(jdb) as s:
        first = await s.repository(Order).get("c1", "o01")
        c1 = await s.repository(Customer).get("c1")
        assert c1 is not None
        await s.repository(Customer).load([c1], Customer.orders)
        assert c1.orders[1] is first


# -- session ---------------------------------------------------------------------------------------


async def test_session_reads_each_item_once(jdb: Database) -> None:
    await seed(jdb)
    async with Session(jdb) as s:
        customers = s.repository(Customer)
        c1 = await customers.get("c1")
        jdb.reset_stats()
        assert await customers.get("c1") is c1
        assert await customers.get("nobody") is None
        assert await customers.get("nobody") is None
        many = await customers.get_many(["c1", "c2", "nobody", "c2"])
        assert many[0] is c1 and many[1] is many[3] and many[2] is None
        # c1 (first get), nobody (first get) and c2 were read; everything else came from the map.
        assert (s.hits, s.misses) == (5, 3)
        trips = store_trips(jdb)
        orders = await s.repository(Order).query("c1").join(Order.customer)
        assert all(o.customer is c1 for o in orders.items)
        assert store_trips(jdb) == trips + 1  # the query only: the customer was in the map
        await s.load(orders.items, Order.customer, Customer.account)
        assert c1 is not None and c1.account is not None and c1.account.id == "a1"
        stored = await customers.put(Customer("c1", "Renamed", account_id="a1"))
        assert await customers.get("c1") is stored
        await customers.delete("c2")
        assert await customers.get("c2") is None
    assert len(s) == 0


async def test_session_query_returns_mapped_objects(jdb: Database) -> None:
    await seed(jdb)
    s = Session(jdb)
    orders = s.repository(Order)
    first = await orders.get("c1", "o00")
    page = await orders.query("c1")
    assert page.items[0] is first
    streamed = [o async for o in orders.query("c1")]
    assert streamed[0] is first
    assert (await orders.query("c1").all())[1] is page.items[1]
    # Several pages, joined: every page's items are the session's objects, each with its relation loaded.
    small = await orders.query("c1", limit=2).join(Order.customer).all()
    assert [o.order_id for o in small] == [o.order_id for o in page.items]
    assert small[0] is first and all(o.customer is small[0].customer for o in small)
    pages = [p async for p in orders.query("c1", limit=2).pages()]
    assert len(pages) == -(-len(page.items) // 2) and pages[0].items[0] is first


# -- sharded cache nodes, one of them failing ------------------------------------------------------------


@pytest.mark.redis
@pytest.mark.faults
async def test_join_through_sharded_redis_nodes_survives_a_node_outage() -> None:
    """Two real Redis nodes (one behind a fault proxy) under a ShardedTier: while one node is cut the join
    stays correct and the other node keeps serving; a write made during the outage is not lost to a stale
    cache entry once the node is back."""
    from tierstore.config import tier_config
    from tierstore.testing.proxy import FaultProxy

    require(REDIS_URL, "redis")
    prefix = f"j{uuid.uuid4().hex[:12]}"
    urls = node_urls("redis", prefix)
    async with FaultProxy("127.0.0.1", urlsplit(REDIS_URL).port or 6379) as proxy:
        proxied = urls["r1"].replace(f":{urlsplit(REDIS_URL).port or 6379}/", f":{proxy.port}/")
        nodes = {"r0": tier_config(urls["r0"]).build(), "r1": tier_config(proxied + "&timeout=50ms").build()}
        tier = ShardedTier(nodes)
        async with tierstore.connect("memory://", [tier]) as db:
            products, orders = db.repository(Product), db.repository(Order)
            await products.put_many([Product(f"p{i}", "v1") for i in range(40)])
            await orders.put_many([Order("feed", f"o{i:02}", f"p{i}") for i in range(40)])
            await orders.query("feed").join(Order.product)  # fill both nodes
            on_r1 = [f"p{i}" for i in range(40) if tier.node_of(PRODUCT.cache_key((f"p{i}",))) == "r1"]
            assert on_r1 and len(on_r1) < 40
            await proxy.cut()
            proxy.drop()
            db.reset_stats()
            page = await orders.query("feed").join(Order.product)
            assert all(o.product is not None and o.product.title == "v1" for o in page.items)
            # The healthy node served its keys: only r1's went to the store.
            assert db.stats()["store"]["reads"] == len(on_r1)
            await products.put(Product(on_r1[0], "v2"))  # its invalidation cannot reach r1 now
            proxy.reset()
            page = await orders.query("feed").join(Order.product)
            titles = {o.product.sku: o.product.title for o in page.items if o.product is not None}
            assert titles[on_r1[0]] == "v2"
            assert all(t == "v1" for sku, t in titles.items() if sku != on_r1[0])


PRODUCT = schema_of(Product)


def test_check_relations_rejects_a_bad_path_without_io() -> None:
    from tierstore.joins import check_relations

    check_relations(schema_of(Order), [Order.customer, Customer.account, Customer.orders])
    with pytest.raises(ValidationError):
        check_relations(schema_of(Order), [Customer.account])
