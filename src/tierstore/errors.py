"""The tierstore error tree. Every error tierstore raises derives from :class:`TierstoreError`::

    TierstoreError
     ├── ConfigError            bad configuration: URL, entity declaration, missing extra
     │    └── SchemaMismatch    existing tables do not fit the entities; carries every mismatch
     ├── ValidationError        bad input, raised before any I/O
     │    └── NotAwaited        a query result used without ``await`` (also a TypeError)
     ├── NotFound               an item that must exist does not
     ├── ConditionFailed        a condition or ``expect_version`` did not hold
     │    └── TransactionCanceled  a transaction was rejected; carries per-action reasons
     ├── Unsupported            the backend cannot do what was asked
     ├── NotLoaded              a relation was touched that no join loaded (no hidden I/O)
     └── BackendError           a backend failed
          ├── StoreError        the store of record failed
          │    ├── Throttled        the store kept throttling after retries
          │    ├── StoreTimeout     a statement outlived its deadline or lock wait; it was cancelled
          │    └── PartialBatchError a batch finished only in part; carries what remains
          └── TierError         a cache tier failed (never raised by get/put: tiers fail open)
              └── CircuitOpen   the tier's breaker is open

Errors carry the entity, the key and the backend where known. Secrets never appear in messages, and no text of
an error is unbounded: the message is cut at :data:`MAX_MESSAGE` characters and the key's repr at :data:`MAX_KEY`
(the full key stays in the ``key`` attribute), since error texts reach logs and, through web frameworks, clients.
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass
from typing import Any

__all__ = [
    "BackendError",
    "CircuitOpen",
    "ConditionFailed",
    "ConfigError",
    "Mismatch",
    "NotAwaited",
    "NotFound",
    "NotLoaded",
    "PartialBatchError",
    "SchemaMismatch",
    "StoreError",
    "StoreTimeout",
    "Throttled",
    "TierError",
    "TierstoreError",
    "TransactionCanceled",
    "Unsupported",
    "ValidationError",
    "bounded",
]

MAX_MESSAGE = 1000
"""Characters of a message kept; the rest is replaced by a note of how much was cut."""
MAX_KEY = 120
"""Characters of a key's repr shown in ``str(error)``."""


def bounded(text: str, limit: int) -> str:
    """``text`` cut to about ``limit`` characters, saying how many were dropped (never the dropped text)."""
    if len(text) <= limit:
        return text
    keep = max(limit - 24, 8)
    return f"{text[:keep]}…(+{len(text) - keep} chars)"


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
        message = bounded(str(message), MAX_MESSAGE)
        self.message = message
        self.entity = entity
        self.key = key
        self.backend = backend
        super().__init__(message)

    def __str__(self) -> str:
        parts = [self.message]
        ctx = []
        if self.entity is not None:
            ctx.append(f"entity={bounded(str(self.entity), MAX_KEY)}")
        if self.key is not None:
            ctx.append(f"key={bounded(_safe_repr(self.key), MAX_KEY)}")
        if self.backend is not None:
            ctx.append(f"backend={bounded(str(self.backend), MAX_KEY)}")
        if ctx:
            parts.append(f"({', '.join(ctx)})")
        return " ".join(parts)


def _safe_repr(value: Any) -> str:
    # A key is a tuple of str/bytes/int parts; repr() of a huge one is itself big, so cut parts first.
    if isinstance(value, str | bytes) and len(value) > MAX_KEY:
        value = value[: MAX_KEY + 1]
    elif isinstance(value, tuple) and any(isinstance(v, str | bytes) and len(v) > MAX_KEY for v in value):
        value = tuple(v[: MAX_KEY + 1] if isinstance(v, str | bytes) else v for v in value)
    try:
        return repr(value)
    except Exception:  # a key part with a broken __repr__ must not hide the error itself
        return f"<{type(value).__name__}>"


class ConfigError(TierstoreError):
    """Invalid configuration, URL or entity declaration."""


MAX_REPORT = 20_000
"""Characters of a :class:`SchemaMismatch` message kept: a start-up report, listing every mismatch."""


@dataclass(frozen=True, slots=True)
class Mismatch:
    """One way an existing table differs from what an entity needs, and the statement that would fix it."""

    entity: str
    table: str
    problem: str
    fix: str

    def __str__(self) -> str:
        return f"{self.entity} (table {self.table}): {self.problem}\n    fix: {self.fix}"


class SchemaMismatch(ConfigError):
    """Existing tables do not fit the entities (``schema="verify"``). ``mismatches`` lists every one found,
    each with the DDL or command that fixes it; nothing was created or altered."""

    def __init__(self, mismatches: Sequence[Mismatch], **kw: Any) -> None:
        self.mismatches = list(mismatches)
        lines = [f"{len(self.mismatches)} schema mismatch(es); nothing was created or altered:"]
        lines += [f"- {m}" for m in self.mismatches]
        text = "\n".join(lines)
        super().__init__(text, **kw)
        # A start-up report, not a per-request error: keep every mismatch (up to MAX_REPORT characters).
        self.message = bounded(text, MAX_REPORT)
        self.args = (self.message,)


class ValidationError(TierstoreError):
    """Bad input, detected before any I/O."""


class NotAwaited(ValidationError, TypeError):
    """A query result was iterated, sized or tested without ``await`` (or ``async for``). Also a
    ``TypeError``, which is what Python raises for the same mistake elsewhere."""


class NotFound(TierstoreError):
    """An item that had to exist does not."""


class ConditionFailed(TierstoreError):
    """A write condition (``if_not_exists``, ``expect_version``, ``when=``) did not hold.

    ``current``: the item as stored when a ``when=`` condition failed (``None`` when there is none, or when the
    backend did not say), so the caller needs no extra read.
    """

    def __init__(self, message: str, *, current: Any = None, **kw: Any) -> None:
        super().__init__(message, **kw)
        self.current = current


class TransactionCanceled(ConditionFailed):
    """A transaction was rejected as a whole. ``reasons`` has one entry per action (``None`` = no fault); the
    message of one raised by ``Transaction`` names each failed action (position, kind, entity, key) and why."""

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


class StoreTimeout(StoreError):
    """A statement outlived its deadline (``command_timeout``) or a lock wait (SQLite's ``busy_timeout``,
    MariaDB's ``innodb_lock_wait_timeout``) and was cancelled. It is not retried. As with any lost reply, a
    write that timed out may have been applied before the cancel reached the server: read it back."""


class PartialBatchError(StoreError):
    """A batch operation finished only in part. ``remaining`` lists the keys or items not done."""

    def __init__(self, message: str, *, remaining: Sequence[Any] = (), **kw: Any) -> None:
        super().__init__(message, **kw)
        self.remaining = list(remaining)


class TierError(BackendError):
    """A cache tier failed. Repository reads and writes never raise it: tiers fail open."""


class CircuitOpen(TierError):
    """The tier's circuit breaker is open; the call was not attempted."""
