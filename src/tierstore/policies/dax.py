"""``DaxStylePolicy``: DAX's two caches on tierstore's own tiers — and a query cache that writes invalidate.

DAX keeps an *item cache* (GetItem/BatchGetItem, written through by writes) and a *query cache* (Query/Scan
results keyed by the full request, expired by TTL only: a write never invalidates it, so a query can return
results older than a write that has returned). This policy does both on any :class:`~tierstore.backends.CacheTier` list
(in-process, Redis, Memcached…):

* item cache: the repository's tiered path with :attr:`DaxStylePolicy.item_policy` (write-through versioned
  sets, negative caching of "not found");
* query cache: pages cached under ``{table:partition}::q:<generation>:<digest of the full request>``. Every
  partition has a *generation*, a random token kept in the same tiers under ``{table:partition}::gen``; a
  write deletes the generation of each partition it touched (every index's generation too: an index
  partition's old value is unknown after a write), so the next query of that partition finds no generation,
  draws a new one, and misses. Entries of old generations are never read again and expire by TTL.
* strongly consistent reads bypass both (the repository never consults either for ``consistent=True``);
* empty pages ("no results") are cached for ``negative_ttl``.

Freshness: a query that starts after a write has returned reads the generation after the write deleted it,
so it cannot see an entry filled from a read that began before the write. The generation is filled with the
tier's lease, so a fill racing with a write's delete is dropped. In-process tiers of *other* processes can
keep an old generation for ``local_generation_ttl`` at most (1 s by default): that is the only staleness.

Use::

    dax = DaxStylePolicy([MemoryTier(), redis_tier])
    async with tierstore.connect(store, cache=[...], policy=dax.item_policy, query_cache=dax) as db: ...
"""

from __future__ import annotations

import hashlib
import os
from collections.abc import Awaitable, Callable, Sequence
from dataclasses import dataclass
from typing import Any, TypeVar

import msgspec

from tierstore.errors import ConfigError
from tierstore.logs import get_logger
from tierstore.model.cachekey import partition_cache_tag
from tierstore.model.schema import Key, Schema
from tierstore.query import Page, Query
from tierstore.tiers.base import Backlogged, CacheTier, Lease
from tierstore.tiers.health import NodeGuard
from tierstore.tiers.policy import CachePolicy

__all__ = ["DaxStylePolicy", "QueryCacheStats"]

log = get_logger("tierstore.dax_policy")
T = TypeVar("T")

_PAGE_MARK = 0xA9
_WIDE_PAGE_MARK = 0xAA  # a page whose items are packed one by one (an item holds an integer beyond 64 bits)
_WIDE_PAGE: msgspec.msgpack.Decoder[tuple[str | None, list[bytes]]] = msgspec.msgpack.Decoder(
    tuple[str | None, list[bytes]]
)
_MAX_PENDING = 10_000  # generation deletes a tier may owe before it is cleared instead


@dataclass(slots=True)
class QueryCacheStats:
    hits: int = 0
    misses: int = 0
    fills: int = 0
    generation_bumps: int = 0
    bypassed: int = 0  # queries answered without the cache (a tier was untrusted or errored)
    errors: int = 0


class DaxStylePolicy:
    """A :class:`~tierstore.policies.base.QueryCache` plus the item-cache policy to pair it with.

    ``tiers``: nearest first, ready-made (opened on first use if nobody else opened them; never closed here
    unless :meth:`aclose` is called). They may be the very tier objects the database uses for items.
    ``query_ttl``: how long a cached page lives (DAX's default is 5 minutes). ``negative_ttl``: how long an
    empty page, or an item "not found", is cached. ``item_ttl``: the item cache's TTL.
    """

    def __init__(
        self,
        tiers: Sequence[CacheTier],
        *,
        query_ttl: float = 300.0,
        item_ttl: float = 300.0,
        negative_ttl: float = 30.0,
        local_generation_ttl: float = 1.0,
    ) -> None:
        if not tiers:
            raise ConfigError("DaxStylePolicy needs at least one cache tier")
        if query_ttl <= 0 or negative_ttl <= 0 or local_generation_ttl <= 0:
            raise ConfigError("DaxStylePolicy TTLs must be > 0")
        self.tiers = tuple(tiers)
        self.query_ttl = query_ttl
        self.negative_ttl = negative_ttl
        self.local_generation_ttl = local_generation_ttl
        self.item_policy = CachePolicy(ttl=item_ttl, negative_ttl=negative_ttl, write_mode="write_through")
        self.stats = QueryCacheStats()
        self._opened = False
        # A tier that missed a generation delete owes it: it is not read until the delete is replayed.
        self._guards = [NodeGuard(t.name, None, max_pending=_MAX_PENDING) for t in self.tiers]
        self._owing = False  # some tier owes deletes (checked before every query)
        self._decoders: dict[Schema[Any], Any] = {}
        self._encoder = msgspec.msgpack.Encoder()

    def __repr__(self) -> str:
        return f"DaxStylePolicy(tiers=[{', '.join(t.name for t in self.tiers)}], query_ttl={self.query_ttl})"

    async def _open(self) -> None:
        if not self._opened:
            self._opened = True
            for tier in self.tiers:
                try:
                    await tier.open()
                except Exception as exc:  # a tier that cannot open fails open: queries bypass it
                    self.stats.errors += 1
                    log.warning("query cache tier %s failed to open: %r", tier.name, exc)

    async def aclose(self) -> None:
        for tier in reversed(self.tiers):
            try:
                await tier.aclose()
            except Exception as exc:
                log.warning("closing query cache tier %s failed: %r", tier.name, exc)

    # -- keys ------------------------------------------------------------------------------------------------

    @staticmethod
    def _generation_key(schema: Schema[Any], query_index: str | None, partition: Key) -> str:
        # Item cache keys are "{table:partition}" or "{table:partition}:sort" with ':' escaped inside tokens,
        # so nothing of theirs contains "::".
        # cache_table: the table, or "table#Type" for entity types sharing a table (key templates, a type
        # attribute), whose pages must not meet.
        if query_index is None:
            # The item cache's hash tag "{table:partition}" (Schema.cache_key takes whole keys only).
            return partition_cache_tag(schema.cache_table, schema.partition_token(partition)) + "::gen"
        return "{" + schema.cache_table + "::ix:" + query_index + "}::gen"

    @staticmethod
    def _digest(schema: Schema[Any], q: Query) -> str:
        raw = msgspec.msgpack.encode([
            schema.schema_id, q.index, list(q.partition),
            None if q.sort is None else [q.sort.op, list(q.sort.values)], q.limit, q.cursor, q.reverse,
            q.filter_token(),
        ])
        return hashlib.blake2b(raw, digest_size=12).hexdigest()

    def _decoder(self, schema: Schema[T]) -> msgspec.msgpack.Decoder[tuple[str | None, list[T]]]:
        dec = self._decoders.get(schema)
        if dec is None:
            page_type: Any = tuple[str | None, list[schema.cls]]  # type: ignore[name-defined]
            dec = self._decoders[schema] = msgspec.msgpack.Decoder(page_type)
        return dec

    def _encode(self, schema: Schema[Any], page: Page[Any]) -> bytes:
        sid = schema.schema_id.to_bytes(4, "big")
        try:
            return bytes([_PAGE_MARK]) + sid + self._encoder.encode((page.cursor, page.items))
        except OverflowError:
            # An item holds an integer beyond 64 bits: each item in its packed (wide) form.
            return bytes([_WIDE_PAGE_MARK]) + sid + self._encoder.encode(
                (page.cursor, [schema.pack(i) for i in page.items])
            )

    def _decode(self, schema: Schema[T], data: bytes) -> Page[T] | None:
        if data[1:5] != schema.schema_id.to_bytes(4, "big"):
            return None
        try:
            if data[:1] == bytes([_PAGE_MARK]):
                cursor, items = self._decoder(schema).decode(memoryview(data)[5:])
            elif data[:1] == bytes([_WIDE_PAGE_MARK]):
                cursor, packed = _WIDE_PAGE.decode(memoryview(data)[5:])
                items = [schema.unpack(p) for p in packed]
            else:
                return None
        except (msgspec.DecodeError, msgspec.ValidationError):
            return None
        return Page(items, cursor)

    # -- tier access (fail-open) -----------------------------------------------------------------------------

    async def _get(self, t: int, key: str) -> bytes | Lease | None:
        try:
            (got,) = await self.tiers[t].get_many([key])
        except Exception as exc:
            self.stats.errors += 1
            log.debug("query cache tier %s: get failed: %r", self.tiers[t].name, exc)
            return None
        return got

    async def _fill(self, t: int, key: str, value: bytes, lease: Lease, ttl: float) -> None:
        tier = self.tiers[t]
        if tier.local:
            ttl = min(ttl, self.local_generation_ttl) if key.endswith("::gen") else ttl
        try:
            await tier.fill_many([(key, value, lease)], ttl)
        except Exception as exc:
            self.stats.errors += 1
            log.debug("query cache tier %s: fill failed: %r", tier.name, exc)

    # -- hook: change-data-capture (tierstore.cdc) ---------------------------------------------------------

    async def undelivered(self) -> int:
        """Generation deletes still owed to a tier after a replay attempt (0: every tier took them)."""
        if self._owing:
            await self._replay()
        owed = sum(t.undelivered() for t in self.tiers if isinstance(t, Backlogged))
        return owed + sum(g.owed for g in self._guards)

    async def _replay(self) -> None:
        for tier, guard in zip(self.tiers, self._guards, strict=True):
            if not guard.owes:
                continue
            try:
                await guard.replay(tier.clear, tier.invalidate_many)
            except Exception as exc:  # still failing: the tier stays untrusted
                log.debug("query cache tier %s: replay failed: %r", tier.name, exc)
        self._owing = any(g.owes for g in self._guards)

    async def _lookup(self, key: str) -> tuple[bytes | None, list[tuple[int, Lease]]]:
        """The first hit nearest-first, and the leases of the nearer tiers that missed."""
        leases: list[tuple[int, Lease]] = []
        guards = self._guards
        for t in range(len(self.tiers)):
            if guards[t].owes:
                continue
            got = await self._get(t, key)
            if isinstance(got, bytes):
                return got, leases
            if isinstance(got, Lease):
                leases.append((t, got))
        return None, leases

    # -- the QueryCache protocol -----------------------------------------------------------------------------

    async def query(self, schema: Schema[T], query: Query, load: Callable[[], Awaitable[Page[T]]]) -> Page[T]:
        if query.consistent:  # never cached; the repository does not even ask
            return await load()
        await self._open()
        if self._owing:
            await self._replay()
        gen_key = self._generation_key(schema, query.index, query.partition)
        generation, gen_leases = await self._lookup(gen_key)
        if generation is None:
            generation = os.urandom(8).hex().encode()
        for t, lease in gen_leases:  # nearer tiers that missed get the generation, found farther or new
            await self._fill(t, gen_key, generation, lease, self.query_ttl * 2)
        qkey = gen_key[: -len("gen")] + "q:" + generation.decode("ascii", "replace") + ":" + self._digest(schema, query)
        data, leases = await self._lookup(qkey)
        if data is not None:
            page = self._decode(schema, data)
            if page is not None:
                self.stats.hits += 1
                for t, lease in leases:
                    await self._fill(t, qkey, data, lease, self.query_ttl)
                return page
        self.stats.misses += 1
        page = await load()
        encoded = self._encode(schema, page)
        ttl = self.negative_ttl if not page.items and page.cursor is None else self.query_ttl
        for t, lease in leases:
            await self._fill(t, qkey, encoded, lease, ttl)
            self.stats.fills += 1
        return page

    async def after_write(self, schema: Schema[Any], keys: Sequence[Key], items: Sequence[Any]) -> None:
        gen_keys = {self._generation_key(schema, None, schema.partition_of(k)) for k in keys}
        gen_keys.update(self._generation_key(schema, ix, ()) for ix in schema.indexes)
        if not gen_keys:
            return
        await self._open()
        ordered = sorted(gen_keys)
        self.stats.generation_bumps += len(ordered)
        for t in reversed(range(len(self.tiers))):  # farthest first, as the item path does
            try:
                await self.tiers[t].invalidate_many(ordered)
            except Exception as exc:
                # This tier may still hold the old generations: stop reading it until the deletes are replayed.
                self.stats.errors += 1
                self._guards[t].remember(ordered)
                self._owing = True
                log.warning("query cache tier %s: generation delete failed, tier untrusted: %r",
                            self.tiers[t].name, exc)
