"""Hand-written ``join_100`` floors: a page of orders, then their customers, written directly on a client.

Two ways, the same for every client (``raw:<client>-join-batch`` and ``raw:<client>-join-n+1``):

- ``batch``: the page query, then **one** batched read of the de-duplicated customer keys, attached through a
  dict — what a careful engineer writes by hand (2 round trips).
- ``n+1``: the page query, then one read per order, no de-duplication — the naive loop (1 + 100 round trips).

A subclass (one per client, in the ``sql_*``, ``cache`` and ``dynamodb`` floor modules) loads the data set's
items (the customers) and orders into tables of its own and supplies three primitives; this class turns them
into the two joins. Each primitive counts its own requests, so ``round_trips_per_op`` is what went over the
wire.
"""

from __future__ import annotations

from collections.abc import Awaitable, Callable, Sequence

from tierstore.bench.api import JOIN, Driver, JoinFn
from tierstore.bench.data import JOIN_PAGE, BenchItem, BenchOrder, Dataset
from tierstore.bench.scenarios import check_join, join_pairs

__all__ = ["JOIN_MODES", "JoinFloor", "join_system_name"]

JOIN_MODES = ("batch", "n+1")

Key = tuple[str, str]
OrdersPage = Callable[[str, int], Awaitable[list[BenchOrder]]]
CustomerGet = Callable[[str, str], Awaitable[BenchItem | None]]
CustomersGet = Callable[[Sequence[Key]], Awaitable[dict[Key, BenchItem]]]


def join_system_name(client: str, mode: str) -> str:
    """``raw:asyncpg-join-batch``, ``raw:asyncpg-join-n+1``."""
    return f"raw:{client}-join-{mode}"


class JoinFloor(Driver):
    """Base of the join floors: ``mode`` is ``"batch"`` or ``"n+1"``."""

    caps = frozenset({JOIN})

    def __init__(self, mode: str) -> None:
        if mode not in JOIN_MODES:
            raise ValueError(f"join mode must be one of {JOIN_MODES}, got {mode!r}")
        self.mode = mode
        self.trips = 0

    @property
    def tag(self) -> str:
        """The mode in a form table and file names accept."""
        return "batch" if self.mode == "batch" else "nplus1"

    def counters(self) -> dict[str, int]:
        return {"store": self.trips}

    async def verify(self, data: Dataset) -> str | None:
        pk = data.order_partition_keys[0] if data.order_partition_keys else None
        if pk is None:
            return None
        try:
            check_join(join_pairs(await self.joiner()(pk, JOIN_PAGE)), [o for o in data.orders if o.pk == pk], data)
        except AssertionError as exc:
            return str(exc)
        return None

    # -- what a subclass supplies (after open) ------------------------------------------------------------

    def orders_page(self) -> OrdersPage:
        """``(partition, limit)`` → the orders of that partition in sort-key order (one request)."""
        raise self._unsupported("orders_page")

    def customer_getter(self) -> CustomerGet:
        """``(pk, sk)`` → one customer (one request)."""
        raise self._unsupported("customer_getter")

    def customers_getter(self) -> CustomersGet:
        """Distinct keys → the customers found, by key (one request for up to 100 keys)."""
        raise self._unsupported("customers_getter")

    # -- the joins ------------------------------------------------------------------------------------------

    def joiner(self) -> JoinFn:
        page = self.orders_page()
        if self.mode == "batch":
            get_many = self.customers_getter()

            async def join_batch(pk: str, limit: int) -> list[tuple[BenchOrder, BenchItem | None]]:
                orders = await page(pk, limit)
                keys = list(dict.fromkeys([(o.customer_pk, o.customer_sk) for o in orders]))
                found = await get_many(keys) if keys else {}
                get = found.get
                return [(o, get((o.customer_pk, o.customer_sk))) for o in orders]

            return join_batch

        get_one = self.customer_getter()

        async def join_n_plus_1(pk: str, limit: int) -> list[tuple[BenchOrder, BenchItem | None]]:
            return [(o, await get_one(o.customer_pk, o.customer_sk)) for o in await page(pk, limit)]

        return join_n_plus_1
