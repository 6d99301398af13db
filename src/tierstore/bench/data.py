"""The benchmark entity, the data set every system loads, Zipf key sequences and the LRU reference.

``BenchItem`` is a 10-field Struct of about 200 bytes encoded with msgspec msgpack (207 B with tierstore's
5-byte cache envelope), the size of a typical service row. Every system — tierstore or raw floor — loads the
same items and answers the same keys, so rows of one scenario can be compared as ratios. ``BenchOrder`` is the
second entity, for ``join_100``: its ``customer`` relation is a ``Ref`` to a ``BenchItem`` (the items play the
customers).
"""

from __future__ import annotations

import bisect
import itertools
import random
from collections import OrderedDict
from collections.abc import Sequence
from dataclasses import dataclass, field

from tierstore.model.entity import Entity
from tierstore.model.keys import PartitionKey, SortKey
from tierstore.model.relations import Many, Ref

__all__ = [
    "FIELDS",
    "JOIN_PAGE",
    "MANY_PARENTS",
    "ORDER_FIELDS",
    "VISIT_FIELDS",
    "BenchAccount",
    "BenchItem",
    "BenchOrder",
    "BenchVisit",
    "Dataset",
    "LruReference",
    "lru_hit_ratio",
    "zipf_sequence",
]


class BenchItem(Entity, table="tsbench_items"):
    """About 200 bytes encoded with msgspec msgpack (field names included)."""

    pk: PartitionKey[str]
    sk: SortKey[str]
    name: str
    email: str
    status: str
    amount_cents: int
    quantity: int
    score: float
    created_at: int
    note: str


FIELDS: tuple[str, ...] = BenchItem.__struct_fields__
"""Column order of the raw floors' tables: the Struct's field order, so ``BenchItem(*row)`` works."""


class BenchOrder(Entity, table="tsbench_orders"):
    """An order of ``join_100``: ``customer`` is the ``BenchItem`` keyed by (``customer_pk``, ``customer_sk``)."""

    pk: PartitionKey[str]
    sk: SortKey[str]
    customer_pk: str
    customer_sk: str
    total_cents: int
    status: str
    created_at: int
    customer = Ref(BenchItem, "customer_pk", "customer_sk")


ORDER_FIELDS: tuple[str, ...] = BenchOrder.__struct_fields__
"""Column order of the raw floors' order tables (``BenchOrder(*row)``)."""

class BenchVisit(Entity, table="tsbench_visits"):
    """A child of ``join_many_20``: the visits of one account, in ``seq`` order."""

    account_id: PartitionKey[str]
    seq: SortKey[int]
    page: str
    duration_ms: int
    created_at: int


class BenchAccount(Entity, table="tsbench_accounts"):
    """A parent of ``join_many_20``: ``visits`` is a ``Many`` over :class:`BenchVisit` (0 to 20 each)."""

    id: PartitionKey[str]
    name: str
    plan: str
    visits = Many(BenchVisit, "account_id")


VISIT_FIELDS: tuple[str, ...] = BenchVisit.__struct_fields__
MANY_PARENTS = 20
"""Parents per ``join_many_20`` operation."""
JOIN_PAGE = 100
"""Orders per order partition, and the page ``join_100`` reads."""

_STATUSES = ("new", "active", "paid", "shipped", "closed")


def make_item(rng: random.Random, pk: str, sk: str, n: int) -> BenchItem:
    return BenchItem(
        pk=pk,
        sk=sk,
        name=f"Customer {n:08d}",
        email=f"customer{n:08d}@example.com",
        status=_STATUSES[n % len(_STATUSES)],
        amount_cents=rng.randrange(100, 10_000_000),
        quantity=rng.randrange(1, 100),
        score=round(rng.random(), 4),
        created_at=1_767_225_600_000 + n * 1_000,
        note="".join(rng.choices("abcdefghijklmnopqrstuvwxyz ", k=40 + n % 5)),
    )


@dataclass(slots=True)
class Dataset:
    """What every system loads, and the keys each scenario reads.

    ``partitions`` × ``per_partition`` items (partition ``p0000``…, sort keys ``s0000``…), plus the keys the
    scenarios use: a few hot keys (``get``), 100 keys spread over all partitions (``get_many_100``), a warm set
    of 128 (``get_concurrent_64``), a write partition for ``put`` and a Zipf key sequence (``zipf_read``).

    ``orders``: ``order_partitions`` partitions (``o0000``…) of :data:`JOIN_PAGE` orders each, for
    ``join_100`` (default: one per 10 item partitions, 2 to 8). The orders of one partition name
    ``join_distinct`` distinct customers (random items), some of them twice, so a join de-duplicates before it
    reads and a naive loop reads 100 times.
    """

    partitions: int = 20
    per_partition: int = 100
    seed: int = 20261127
    zipf_s: float = 1.0
    zipf_length: int = 200_000
    l1_fraction: float = 0.1
    order_partitions: int | None = None
    join_distinct: int = 90
    items: list[BenchItem] = field(default_factory=list)
    hot: list[tuple[str, str]] = field(default_factory=list)
    many: list[tuple[str, str]] = field(default_factory=list)
    warm: list[tuple[str, str]] = field(default_factory=list)
    writes: list[BenchItem] = field(default_factory=list)
    zipf: list[int] = field(default_factory=list)
    orders: list[BenchOrder] = field(default_factory=list)
    accounts: list[BenchAccount] = field(default_factory=list)
    visits: list[BenchVisit] = field(default_factory=list)

    def __post_init__(self) -> None:
        if self.partitions < 1 or self.per_partition < 1:
            raise ValueError("a data set needs at least one partition of one item")
        rng = random.Random(self.seed)
        self.items = [
            make_item(rng, self.pk(p), self.sk(s), p * self.per_partition + s)
            for p in range(self.partitions)
            for s in range(self.per_partition)
        ]
        n = len(self.items)
        keys = [(i.pk, i.sk) for i in self.items]
        self.hot = keys[:: max(1, n // 16)][:16]
        self.many = [keys[(i * 7919) % n] for i in range(min(100, n))]
        self.warm = [keys[(i * 104_729 + 13) % n] for i in range(min(128, n))]
        self.writes = [make_item(rng, "pw", self.sk(s), n + s) for s in range(100)]
        self.zipf = zipf_sequence(n, self.zipf_length, self.zipf_s, self.seed + 1)
        self.orders = self._make_orders(random.Random(self.seed + 2), keys)
        self._make_accounts(random.Random(self.seed + 3))

    def _make_accounts(self, rng: random.Random) -> None:
        """``5 × MANY_PARENTS`` accounts with ``(i % 11) × 2`` visits each (0 to 20: some have none)."""
        pages = ("/", "/pricing", "/docs", "/blog", "/account")
        self.accounts = [BenchAccount(f"a{i:04d}", f"account {i}", ("free", "pro")[i % 2])
                         for i in range(5 * MANY_PARENTS)]
        self.visits = [
            BenchVisit(a.id, s, pages[rng.randrange(len(pages))], rng.randrange(10, 60_000),
                       1_767_225_600_000 + i * 1000 + s)
            for i, a in enumerate(self.accounts) for s in range((i % 11) * 2)
        ]

    @property
    def many_groups(self) -> list[list[BenchAccount]]:
        """The parent groups of ``join_many_20``, taken in turn."""
        return [self.accounts[i : i + MANY_PARENTS] for i in range(0, len(self.accounts), MANY_PARENTS)]

    def visits_of(self, account_id: str) -> list[BenchVisit]:
        i = int(account_id[1:])
        start = sum((j % 11) * 2 for j in range(i))
        return self.visits[start : start + (i % 11) * 2]

    def _make_orders(self, rng: random.Random, keys: list[tuple[str, str]]) -> list[BenchOrder]:
        if self.order_partitions is None:
            self.order_partitions = max(2, min(8, self.partitions // 10))
        if self.order_partitions < 0 or not 1 <= self.join_distinct <= JOIN_PAGE:
            raise ValueError(f"order_partitions must be >= 0 and join_distinct within 1..{JOIN_PAGE}")
        distinct = min(self.join_distinct, len(keys))
        orders: list[BenchOrder] = []
        for p in range(self.order_partitions):
            customers = rng.sample(keys, distinct)
            customers += [rng.choice(customers) for _ in range(JOIN_PAGE - distinct)]
            rng.shuffle(customers)
            for s, (cpk, csk) in enumerate(customers):
                n = p * JOIN_PAGE + s
                orders.append(BenchOrder(
                    pk=self.order_pk(p),
                    sk=self.sk(s),
                    customer_pk=cpk,
                    customer_sk=csk,
                    total_cents=rng.randrange(100, 1_000_000),
                    status=_STATUSES[n % len(_STATUSES)],
                    created_at=1_767_225_600_000 + n * 997,
                ))
        return orders

    @staticmethod
    def pk(p: int) -> str:
        return f"p{p:04d}"

    @staticmethod
    def sk(s: int) -> str:
        return f"s{s:04d}"

    @staticmethod
    def order_pk(p: int) -> str:
        return f"o{p:04d}"

    @property
    def order_partition_keys(self) -> list[str]:
        return [self.order_pk(p) for p in range(self.order_partitions or 0)]

    @property
    def join_customers(self) -> list[tuple[str, str]]:
        """The distinct customers the orders name (what ``join_100`` reads through the tiers)."""
        return list(dict.fromkeys((o.customer_pk, o.customer_sk) for o in self.orders))

    @property
    def keys(self) -> list[tuple[str, str]]:
        return [(i.pk, i.sk) for i in self.items]

    @property
    def partition_keys(self) -> list[str]:
        return [self.pk(p) for p in range(self.partitions)]

    @property
    def cached_keys(self) -> list[tuple[str, str]]:
        """Every key a cache-only floor must hold: hot, get_many and warm sets."""
        return list(dict.fromkeys(self.hot + self.many + self.warm))

    @property
    def l1_capacity(self) -> int:
        """Entries the in-process tier may hold: a fraction of the key space, so Zipf reads must evict, but
        at least what the cached scenarios and ``join_100`` read, so those stay warm."""
        warm = len(set(self.cached_keys).union(self.join_customers))
        return max(warm + 16, int(len(self.items) * self.l1_fraction))

    def item(self, key: tuple[str, str]) -> BenchItem:
        p, s = int(key[0][1:]), int(key[1][1:])
        return self.items[p * self.per_partition + s]


def zipf_sequence(n: int, length: int, s: float, seed: int) -> list[int]:
    """``length`` indexes in ``range(n)``, index ``k`` drawn with weight ``1 / (k + 1) ** s``.

    The ranks are shuffled over the key space so the hot keys are not all in the first partition.
    """
    rng = random.Random(seed)
    cum = list(itertools.accumulate(1.0 / (k + 1) ** s for k in range(n)))
    total = cum[-1]
    perm = list(range(n))
    rng.shuffle(perm)
    rnd = rng.random
    bis = bisect.bisect_left
    last = n - 1
    return [perm[min(bis(cum, rnd() * total), last)] for _ in range(length)]


class LruReference:
    """A plain LRU of ``capacity`` entries: the reference the in-process tier's policy is measured against."""

    def __init__(self, capacity: int) -> None:
        if capacity < 1:
            raise ValueError("capacity must be >= 1")
        self.capacity = capacity
        self.hits = 0
        self.misses = 0
        self._entries: OrderedDict[int, None] = OrderedDict()

    def access(self, key: int) -> bool:
        """Read ``key``; on a miss, insert it (evicting the least recently used). True on a hit."""
        entries = self._entries
        if key in entries:
            entries.move_to_end(key)
            self.hits += 1
            return True
        self.misses += 1
        entries[key] = None
        if len(entries) > self.capacity:
            entries.popitem(last=False)
        return False

    @property
    def hit_ratio(self) -> float:
        total = self.hits + self.misses
        return self.hits / total if total else 0.0


def lru_hit_ratio(sequence: Sequence[int], capacity: int, counted: Sequence[range]) -> float:
    """Hit ratio of a cold LRU run over ``sequence`` (read cyclically, as the scenario does), counting only
    the positions in ``counted``; the run goes up to the last counted position."""
    if not counted or not sequence:
        return 0.0
    end = max(span.stop for span in counted)
    marks = bytearray(end)
    for span in counted:
        marks[span.start : span.stop] = b"\x01" * len(span)
    lru = LruReference(capacity)
    n = len(sequence)
    hits = total = 0
    for i in range(end):
        hit = lru.access(sequence[i % n])
        if marks[i]:
            total += 1
            hits += hit
    return hits / total if total else 0.0
