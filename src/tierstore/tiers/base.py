"""The ``CacheTier`` seam. Tiers store opaque bytes (codec envelopes) under string keys.

Stale-fill guard: a read miss may hand out a :class:`Lease`. Filling with that lease succeeds
only if no invalidation of the key happened since the lease was issued; ``invalidate_many`` voids every
outstanding lease of its keys. A miss returned as ``None`` (no lease) means another reader holds the lease:
the caller may wait and re-read, or read the store without filling. ``Lease(None)`` is a miss that must
not be filled (the tier cannot take a fill now, e.g. its breaker is open). A fill with an empty value
releases the lease without storing anything, so readers waiting on it stop waiting.

Tiers fail open: a tier that errs raises :class:`~tierstore.errors.TierError` and the tiered path treats it
as a miss (reads) or records the invalidation for replay (writes).
"""

from __future__ import annotations

from collections.abc import AsyncIterator, Sequence
from typing import TYPE_CHECKING, Any, Protocol, runtime_checkable

from tierstore.stats import TierStats

if TYPE_CHECKING:
    from tierstore.codecs import Codec

__all__ = ["Backlogged", "CacheTier", "InvalidationFeed", "Lease", "LocalTier"]


class Lease:
    """Permission to fill one key after a miss. ``token`` is opaque to everyone but the tier."""

    __slots__ = ("token",)

    def __init__(self, token: Any) -> None:
        self.token = token

    def __repr__(self) -> str:
        return "Lease(...)"


@runtime_checkable
class CacheTier(Protocol):
    name: str
    """``memory``, ``redis``, ``redis-cluster``, ``memcached``…"""
    stats: TierStats
    local: bool
    """True for in-process tiers (no I/O); the repository takes a synchronous fast path for them."""

    async def open(self) -> None:
        """Connect. Must not fail when the server is down: the tier fails open instead."""
        ...

    async def get_many(self, keys: Sequence[str]) -> list[bytes | Lease | None]:
        """Per key: the bytes (hit), a :class:`Lease` (miss, you may fill), or ``None`` (miss, no lease)."""
        ...

    async def fill_many(self, entries: Sequence[tuple[str, bytes, Lease]], ttl: float) -> None:
        """Fill after a miss; an entry whose lease was voided by an invalidation is dropped."""
        ...

    async def set_many(self, entries: Sequence[tuple[str, bytes, int]], ttl: float) -> None:
        """Write-through: set ``(key, value, version)``; a tier never replaces a newer version by an older."""
        ...

    async def invalidate_many(self, keys: Sequence[str]) -> None:
        """Delete the keys and void their outstanding leases."""
        ...

    async def clear(self) -> None:
        """Drop everything this tier holds for this namespace."""
        ...

    async def aclose(self) -> None: ...


@runtime_checkable
class LocalTier(CacheTier, Protocol):
    """An in-process tier. It does no I/O, so the repository reads it synchronously before the tiered path.

    It may keep the decoded object of an entry (the codec says whether the entity allows it and whether the
    object may be shared or must be copied per read), so a hot read costs no decode.
    """

    def read(self, key: str, codec: Codec[Any]) -> Any:
        """The item under ``key`` (counted as a hit), :data:`~tierstore.codecs.ABSENT` for a cached "not
        found", or ``None``: not held, expired or undecodable — the caller takes the tiered path, which counts
        the miss and replaces an undecodable entry."""
        ...

    def invalidate(self, key: str) -> None:
        """Forget ``key`` and void its lease (synchronously: the coherence listener calls it per message)."""
        ...


@runtime_checkable
class InvalidationFeed(Protocol):
    """A shared tier that tells other processes which keys it invalidated (the Redis tier's channel), so they
    can evict them from their in-process tier (:class:`~tierstore.tiers.coherence.L1Coherence`)."""

    publishes_invalidations: bool
    """False when the tier was configured not to publish (then nobody subscribes)."""

    def invalidations(self) -> AsyncIterator[list[str]]:
        """Subscribe. Yields ``[]`` once subscribed, then the cache keys other processes invalidated
        (``["*"]``: everything). Ends or raises when the subscription is lost."""
        ...


@runtime_checkable
class Backlogged(Protocol):
    """A tier that keeps a backlog of invalidations it could not deliver (per node) instead of raising."""

    def undelivered(self) -> int:
        """Invalidations kept for replay now (a whole-namespace clear counts as one); 0 when all landed."""
        ...
