"""The tierstore error tree. Every error tierstore raises derives from :class:`TierstoreError`::

    TierstoreError
     ├── ConfigError            bad configuration: URL, entity declaration, missing extra
     ├── ValidationError        bad input, raised before any I/O
     ├── NotFound               an item that must exist does not
     ├── ConditionFailed        a condition or ``expect_version`` did not hold
     │    └── TransactionCanceled  a transaction was rejected; carries per-action reasons
     ├── Unsupported            the backend cannot do what was asked
     ├── NotLoaded              a relation was touched that no join loaded (no hidden I/O)
     └── BackendError           a backend failed
          ├── StoreError        the store of record failed
          │    ├── Throttled        the store kept throttling after retries
          │    └── PartialBatchError a batch finished only in part; carries what remains
          └── TierError         a cache tier failed (never raised by get/put: tiers fail open)
              └── CircuitOpen   the tier's breaker is open

Errors carry the entity, the key and the backend where known. Secrets never appear in messages.
"""

from __future__ import annotations

from collections.abc import Sequence
from typing import Any

__all__ = [
    "BackendError",
    "CircuitOpen",
    "ConditionFailed",
    "ConfigError",
    "NotFound",
    "NotLoaded",
    "PartialBatchError",
    "StoreError",
    "Throttled",
    "TierError",
    "TierstoreError",
    "TransactionCanceled",
    "Unsupported",
    "ValidationError",
]


class TierstoreError(Exception):
    """Base of every error tierstore raises."""

    def __init__(
        self,
        message: str,
        *,
        entity: str | None = None,
        key: Any = None,
        backend: str | None = None,
    ) -> None:
        self.message = message
        self.entity = entity
        self.key = key
        self.backend = backend
        super().__init__(message)

    def __str__(self) -> str:
        parts = [self.message]
        ctx = []
        if self.entity is not None:
            ctx.append(f"entity={self.entity}")
        if self.key is not None:
            ctx.append(f"key={self.key!r}")
        if self.backend is not None:
            ctx.append(f"backend={self.backend}")
        if ctx:
            parts.append(f"({', '.join(ctx)})")
        return " ".join(parts)


class ConfigError(TierstoreError):
    """Invalid configuration, URL or entity declaration."""


class ValidationError(TierstoreError):
    """Bad input, detected before any I/O."""


class NotFound(TierstoreError):
    """An item that had to exist does not."""


class ConditionFailed(TierstoreError):
    """A write condition (``if_not_exists``, ``expect_version``) did not hold."""


class TransactionCanceled(ConditionFailed):
    """A transaction was rejected as a whole. ``reasons`` has one entry per action (``None`` = no fault)."""

    def __init__(self, message: str, *, reasons: Sequence[str | None] = (), **kw: Any) -> None:
        super().__init__(message, **kw)
        self.reasons = list(reasons)


class Unsupported(TierstoreError):
    """The backend cannot perform the requested operation."""


class NotLoaded(TierstoreError):
    """A relation was read that no join or load has populated."""


class BackendError(TierstoreError):
    """A backend failed; ``__cause__`` holds the client library's exception."""


class StoreError(BackendError):
    """The store of record failed."""


class Throttled(StoreError):
    """The store kept throttling requests after the retry budget was spent."""


class PartialBatchError(StoreError):
    """A batch operation finished only in part. ``remaining`` lists the keys or items not done."""

    def __init__(self, message: str, *, remaining: Sequence[Any] = (), **kw: Any) -> None:
        super().__init__(message, **kw)
        self.remaining = list(remaining)


class TierError(BackendError):
    """A cache tier failed. Repository reads and writes never raise it: tiers fail open."""


class CircuitOpen(TierError):
    """The tier's circuit breaker is open; the call was not attempted."""
