"""The cache maintenance every write goes through: the half of ``Repository`` that runs after a store call.

A write takes a :class:`WriteAhead` (its keys and write ticket) before its store call, then
:meth:`CacheMaintenance.run_write` awaits the call and makes the query cache and every tier forget (or, in
write-through mode, replace) the keys, as one piece that cancelling the caller cannot cut short.
Transactions and change-data-capture use the same methods.
"""

from __future__ import annotations

import asyncio
from collections.abc import Callable, Coroutine, Iterable, Sequence
from typing import Any, Generic, TypeVar

from tierstore.codecs import Codec
from tierstore.errors import ValidationError
from tierstore.model.entity import Entity
from tierstore.model.schema import Key, Schema
from tierstore.policies.base import QueryCache
from tierstore.stores.base import Store
from tierstore.tiers.epochs import WriteEpochs, WriteTicket
from tierstore.tiers.policy import CachePolicy
from tierstore.tiers.tiered import TieredCache

__all__ = ["CacheMaintenance", "WriteAhead"]

T = TypeVar("T", bound=Entity)
R = TypeVar("R")


class WriteAhead:
    """A write's keys and its :class:`~tierstore.tiers.tiered.WriteTicket`, taken before its store call."""

    __slots__ = ("keys", "ticket")

    def __init__(self, keys: Sequence[Key], ticket: WriteTicket) -> None:
        self.keys = keys
        self.ticket = ticket


class CacheMaintenance(Generic[T]):
    """Cache maintenance after writes of one entity; :class:`~tierstore.repository.Repository` is the one
    implementation (it sets these attributes)."""

    schema: Schema[T]
    codec: Codec[T]
    store: Store
    cache: TieredCache
    _own_policy: CachePolicy | None
    _epochs: WriteEpochs

    @property
    def _query_cache(self) -> QueryCache | None:
        raise NotImplementedError

    def begin_write(self, keys: Sequence[Key]) -> WriteAhead:
        """Call before a write's store call; pass the result to :meth:`run_write` (or to :meth:`after_write` /
        :meth:`after_failed_write`)."""
        return WriteAhead(keys, self.cache.ticket([self.schema.cache_key(k) for k in keys]))

    async def run_write(
        self, write: WriteAhead, call: Coroutine[Any, Any, R], stored_of: Callable[[R], Sequence[T | None]]
    ) -> R:
        """Await the store call ``call`` of ``write``, then maintain the caches (:meth:`after_write` with
        ``stored_of(result)``, or :meth:`after_failed_write` if it raised) — as one piece that cancelling the
        caller cannot cut short: when something is cached, it runs as a task of its own, so a cancelled write's
        caches are maintained after its store call really ended (a commit a thread or a server finishes after
        the caller gave up is then still followed by the invalidation). When neither the store nor any tier can
        suspend (memory store, in-process tiers), it runs inline: nothing can interrupt it."""
        cache = self.cache
        if self._query_cache is None:
            if not cache.tiers:
                try:
                    return await call
                finally:
                    cache.epochs.bump(write.ticket.cks)  # only single flight must learn of the write
            if not cache.suspends and not getattr(self.store, "suspends", True):
                # Every layer is in-process: no await in between can suspend, so no cancellation can cut the
                # write from its maintenance — run both inline (a task per write costs a loop turn on 3.11).
                return await self._write_then_maintain(write, call, stored_of)
        return await cache.shielded(self._write_then_maintain(write, call, stored_of))

    async def _write_then_maintain(
        self, write: WriteAhead, call: Coroutine[Any, Any, R], stored_of: Callable[[R], Sequence[T | None]]
    ) -> R:
        try:
            result = await call
        except ValidationError:
            raise  # raised before any I/O (a store's own limits): nothing was written, the tiers are not touched
        except BaseException:
            await self._maintenance(write, None)
            raise
        await self._maintenance(write, stored_of(result))
        return result

    async def after_write(self, write: WriteAhead, stored: Sequence[T | None]) -> None:
        """After a committed write of ``write.keys`` (``stored``: the items as stored, ``None`` for deletes):
        make the query cache and every tier forget (write-through: replace) them, and stop single-flight reads
        that began before from being joined. Runs to its end even if the caller is cancelled meanwhile
        (bounded in time; what a tier cannot take is kept for replay)."""
        await self._maintain(write, stored, None)

    async def after_failed_write(self, write: WriteAhead, exc: BaseException) -> None:
        """The store call of ``write`` raised ``exc`` or was cancelled: the write may have landed (a lost reply,
        a cancelled commit) and, on ``ConditionFailed``, the cached value the caller acted on is likely stale.
        Invalidate the keys everywhere. On an error, wait for it (a retry then reads past the caches); on
        cancellation, let it run on and return at once. A ``ValidationError`` is raised before any I/O (a
        store's own limits): nothing was written, so nothing is invalidated — the tiers are not touched."""
        if isinstance(exc, ValidationError):
            return
        await self._maintain(write, None, exc)

    async def _maintain(self, write: WriteAhead, stored: Sequence[T | None] | None, exc: BaseException | None) -> None:
        cache = self.cache
        if not cache.tiers and self._query_cache is None:
            cache.epochs.bump(write.ticket.cks)  # nothing cached: only single flight must learn of the write
            return
        work = self._maintenance(write, stored)
        try:
            if not cache.suspends and self._query_cache is None:
                await work  # in-process tiers only: it never suspends, so it cannot be cut short
            else:
                task = cache.spawn(work)  # a task of its own: cancelling the caller cannot cut it short
                if not isinstance(exc, asyncio.CancelledError):
                    await asyncio.shield(task)
        except Exception:
            if exc is None:  # else the store's error is the one the caller must see
                raise

    async def _maintenance(self, write: WriteAhead, stored: Sequence[T | None] | None) -> None:
        keys = write.keys
        cks = write.ticket.cks
        qc = self._query_cache
        try:
            if qc is not None:
                await qc.after_write(self.schema, keys, stored if stored is not None else [None] * len(keys))
        finally:
            if not self.cache.tiers:
                self.cache.epochs.bump(cks)
            elif stored is not None and (self._own_policy or self.cache.policy).write_mode == "write_through":
                values: list[bytes | None] = []
                versions: list[int] = []
                for s, ck in zip(stored, cks, strict=True):
                    enc = None
                    if s is not None:
                        try:
                            enc = self.codec.encode(s, ck)
                        except Exception:  # not cacheable: forget the key instead
                            enc = None
                    values.append(enc)
                    versions.append(0 if s is None or enc is None else self.schema.version_of(s))
                await self.cache.after_write(cks, values, versions, ticket=write.ticket, policy=self._own_policy)
            else:
                await self.cache.after_write(cks, ticket=write.ticket, policy=self._own_policy)

    async def _after_write(self, keys: Sequence[Key], stored: Sequence[T | None]) -> None:
        await self.after_write(self.begin_write(keys), stored)

    def forget_inflight(self, cks: Iterable[str]) -> None:
        """Readers that start from now on do not join single-flight reads of ``cks`` already under way."""
        self._epochs.bump(cks)

    # -- hook: change-data-capture (tierstore.cdc) ---------------------------------------------------------

    async def invalidate_keys(self, keys: Sequence[Key]) -> None:
        """Make every tier and the query cache forget ``keys`` (validated key tuples) exactly as a committed
        write of them through this repository does — for writes that bypassed tierstore (see
        :func:`tierstore.cdc.invalidate`). Leases of readers that began before are voided, so their fills
        are dropped."""
        if keys:
            await self._after_write(keys, [None] * len(keys))
