"""The stored form of a key in the shared tiers (Redis and memcached): a type byte, then a fixed header.

::

    D <version: 16 hex>                                                  <envelope>   an entry
    S <version: 16 hex> <soft expiry, Unix ms: 12 hex> <nonce: 8 hex>    <envelope>   an entry that may be served
                                                                                      stale past its soft expiry
    L <token>                                                                         a lease: a reader missed
                                                                                      and is reading the store
    T                                                                                 a tombstone: invalidated a
                                                                                      moment ago

Only one reader may fill a key (the one whose lease it holds), a tombstone makes a fill that raced an
invalidation find no lease, and a versioned set never replaces a newer version: that is the stale-fill guard
of :mod:`tierstore.tiers.base`, done on the server. The version is fixed-width hex so that comparing two
headers as strings (in a Redis Lua script, or as bytes) compares the versions; fills carry version 0. The
nonce makes two fills of one key distinguishable, so a refresh replaces only the very entry it saw.

The Redis Lua scripts (:mod:`tierstore.tiers.redis.scripts`) are built from these constants; the tiers parse
with them. A refresh lease's token is ``R`` + the header of the stale entry it refreshes + the reader's token.

**Pinned entries.** Stores restart versions at 1 after a delete, so a write-through set from a write that
committed *before* a delete (late, but within the tiered path's set window) must not land *after* it. The
delete leaves a tombstone, which refuses sets. A lease taken over a tombstone is marked (``LT`` + token,
living at least as long as the tombstone would have), and the entry filled with it carries the version
:data:`PINNED`; a set that meets a tombstone, a marked lease or a pinned entry turns the key into a tombstone
instead of landing (the next reader fills it from the store). A release of a marked lease leaves a tombstone,
not a hole. So from a delete until a fill from an unmarked lease, no set lands: only sets sent after the
tombstone expired can, and the tiered path sends none that late for a write that began before the delete.
"""

from __future__ import annotations

import random
import time

__all__ = [
    "DATA", "DATA_HEADER", "LEASE", "LEASE_MARK", "LEASE_OVER_TOMBSTONE", "MAX_VERSION", "PINNED",
    "PINNED_DIGITS", "REFRESH", "REFRESH_LOCK", "REFRESH_SEEN",
    "SOFT_EXPIRY", "STALE", "STALE_HEADER", "TOMBSTONE", "TOMBSTONE_VALUE", "VERSION", "entry",
    "soft_expiry",
]

DATA = 0x44  # "D"
STALE = 0x53  # "S"
LEASE = 0x4C  # "L"
TOMBSTONE = 0x54  # "T"

VERSION_DIGITS = 16
EXPIRY_DIGITS = 12
NONCE_DIGITS = 8
DATA_HEADER = 1 + VERSION_DIGITS
"""Bytes before the envelope of a ``D`` entry (17)."""
STALE_HEADER = DATA_HEADER + EXPIRY_DIGITS + NONCE_DIGITS
"""Bytes before the envelope of an ``S`` entry (37)."""
VERSION = slice(1, DATA_HEADER)
"""The version digits of a ``D`` or ``S`` entry."""
SOFT_EXPIRY = slice(DATA_HEADER, DATA_HEADER + EXPIRY_DIGITS)
"""The soft-expiry digits of an ``S`` entry (Unix milliseconds)."""
MAX_VERSION = (1 << (4 * VERSION_DIGITS)) - 1
PINNED = MAX_VERSION
"""Version of an entry filled from a lease taken over a tombstone: a set that meets it tombstones the key."""
PINNED_DIGITS = b"%016x" % PINNED
LEASE_OVER_TOMBSTONE = b"LT"
"""First bytes of a lease marker handed out over a tombstone (``L`` + a hex token otherwise)."""

TOMBSTONE_VALUE = bytes((TOMBSTONE,))
LEASE_MARK = bytes((LEASE,))
REFRESH = b"R"
"""First byte of a refresh lease's token (never a type byte: it lives in the client only)."""
REFRESH_SEEN = slice(1, 1 + STALE_HEADER)
"""The header of the stale entry a refresh lease's token carries."""
REFRESH_LOCK = "#r"
"""Suffix of the key beside a stale entry that the reader refreshing it holds (so one reader refreshes)."""

_DATA_FORMAT = bytes((DATA,)) + b"%%0%dx" % VERSION_DIGITS
_STALE_FORMAT = bytes((STALE,)) + b"%%0%dx%%0%dx%%0%dx" % (VERSION_DIGITS, EXPIRY_DIGITS, NONCE_DIGITS)
_NONCE_BITS = 4 * NONCE_DIGITS
_MAX_SOFT = (1 << (4 * EXPIRY_DIGITS)) - 1  # the header's width holds soft expiries up to the year 10889


_HEX = frozenset(b"0123456789abcdef")


def soft_expiry(stored: bytes) -> int | None:
    """The soft expiry (Unix ms) of an ``S`` entry, or ``None`` when its header is malformed (then the entry is
    foreign bytes to the reader: a miss for that key alone, deleted, never a failure of the tier)."""
    digits = stored[SOFT_EXPIRY]
    if len(stored) < STALE_HEADER or not _HEX.issuperset(digits):
        return None
    return int(digits, 16)


def entry(value: bytes, version: int, ttl: float, stale: float) -> bytes:
    """``value`` as stored. With ``stale`` > 0 it carries a soft expiry ``ttl`` from now: past it, one reader
    refreshes the entry while the others are still served it (it lives ``ttl + stale`` in all)."""
    v = min(max(int(version), 0), MAX_VERSION)
    if stale <= 0:
        return _DATA_FORMAT % v + value
    soft = min(int((time.time() + ttl) * 1000), _MAX_SOFT)
    return _STALE_FORMAT % (v, soft, random.getrandbits(_NONCE_BITS)) + value
