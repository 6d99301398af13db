"""The Lua scripts that run the stale-fill guard inside Redis, each in one atomic step per slot.

Built from the constants of :mod:`tierstore.tiers.entry` (the type bytes, the header widths), so the bytes a
script writes and compares are spelled once. Scripts run with ``EVALSHA`` and are loaded on ``NOSCRIPT``
(after a restart or ``SCRIPT FLUSH``).

* ``lease``: per key, the value if there is one; else (absent or tombstoned, not a string, or a lease without an
  expiry, which would otherwise make every read miss forever) a new lease for this reader; a key that holds
  another reader's lease answers false (wait and re-read). A lease over a tombstone is marked and lives at
  least as long as the tombstone would have (see pinned entries in :mod:`tierstore.tiers.entry`).
* ``fill``: store a value only where the key still holds the caller's lease; an empty value gives the lease up
  (nothing to cache: the item does not exist, or is too large), a tombstone value gives a marked lease up.
* ``invalidate``: replace entries and leases by a tombstone (so a fill racing the invalidation finds no lease)
  and publish the keys on the invalidation channel, in the same step (no extra round trip).
* ``set`` (write-through): never replace a newer version, never land on a tombstone; a marked lease or a pinned
  entry becomes a tombstone instead; publish as invalidate does.
* ``refresh`` (stale mode): replace a soft-expired entry only if it is still the one the refresher saw, so an
  invalidation (and any fill after it) always wins over a refresh that read the store before it.
"""

from __future__ import annotations

import hashlib
from string import Template
from typing import TYPE_CHECKING, Any

from redis.exceptions import NoScriptError

from tierstore.tiers.entry import (
    DATA,
    DATA_HEADER,
    LEASE,
    LEASE_MARK,
    LEASE_OVER_TOMBSTONE,
    PINNED_DIGITS,
    STALE,
    STALE_HEADER,
    TOMBSTONE,
    TOMBSTONE_VALUE,
)

if TYPE_CHECKING:
    from tierstore.stats import TierStats
    from tierstore.tiers.redis.protocol import Node

__all__ = ["SCRIPTS", "evalsha"]

_BYTES = {
    "DATA": DATA, "STALE": STALE, "TOMBSTONE": TOMBSTONE, "LEASE_MARK": LEASE_MARK.decode(),
    "TOMBSTONE_VALUE": TOMBSTONE_VALUE.decode(), "LEASE": LEASE,
    # string.sub is 1-based and inclusive: the version is bytes 2..DATA_HEADER, a stale header 1..STALE_HEADER
    "VERSION_END": DATA_HEADER, "STALE_HEADER": STALE_HEADER, "PINNED": PINNED_DIGITS.decode(),
    "LEASE_OVER_TOMBSTONE": LEASE_OVER_TOMBSTONE.decode(),
}


def _lua(text: str) -> str:
    return Template(text).substitute(_BYTES)


# KEYS = the keys; ARGV = lease token, lease_ms.
_LEASE = _lua("""
local out = {}
for i = 1, #KEYS do
  local v = redis.pcall('GET', KEYS[i])
  if type(v) == 'table' then
    v = false  -- not a string (WRONGTYPE): not an entry; the lease replaces it
  end
  local t = v and string.byte(v, 1)
  if (not v) or (t == ${LEASE} and redis.call('PTTL', KEYS[i]) < 0) then
    local m = '${LEASE_MARK}' .. ARGV[1] .. ':' .. i
    redis.call('SET', KEYS[i], m, 'PX', ARGV[2])
    out[i] = m
  elseif t == ${TOMBSTONE} then
    local m = '${LEASE_OVER_TOMBSTONE}' .. ARGV[1] .. ':' .. i
    redis.call('SET', KEYS[i], m, 'PX', math.max(tonumber(ARGV[2]), redis.call('PTTL', KEYS[i])))
    out[i] = m
  elseif t == ${LEASE} then
    out[i] = false
  else
    out[i] = v
  end
end
return out
""")
# ARGV = ttl_ms, tombstone_ms, then (lease marker, value) per key.
_FILL = _lua("""
local n = 0
for i = 1, #KEYS do
  if redis.call('GET', KEYS[i]) == ARGV[2 * i + 1] then
    local v = ARGV[2 * i + 2]
    if v == '' then
      redis.call('DEL', KEYS[i])
    elseif v == '${TOMBSTONE_VALUE}' then
      redis.call('SET', KEYS[i], v, 'PX', ARGV[2])
    else
      redis.call('SET', KEYS[i], v, 'PX', ARGV[1])
      n = n + 1
    end
  end
end
return n
""")
# ARGV = tombstone_ms, channel ('' = none), payload.
_INVALIDATE = _lua("""
for i = 1, #KEYS do
  redis.call('SET', KEYS[i], '${TOMBSTONE_VALUE}', 'PX', ARGV[1])
end
if ARGV[2] ~= '' then
  redis.call('PUBLISH', ARGV[2], ARGV[3])
end
return #KEYS
""")
# ARGV = ttl_ms, channel, payload, tombstone_ms, then one stored entry (see tiers/entry.py) per key.
_SET = _lua("""
local n = 0
for i = 1, #KEYS do
  local new = ARGV[4 + i]
  local v = redis.pcall('GET', KEYS[i])
  if type(v) == 'table' then
    v = false  -- not a string (WRONGTYPE): replaced
  end
  local t = v and string.byte(v, 1)
  if t == ${TOMBSTONE} then
    -- deleted or invalidated a moment ago: the next reader fills from the store
  elseif (t == ${LEASE} and string.sub(v, 1, 2) == '${LEASE_OVER_TOMBSTONE}')
      or ((t == ${DATA} or t == ${STALE}) and string.sub(v, 2, ${VERSION_END}) == '${PINNED}') then
    redis.call('SET', KEYS[i], '${TOMBSTONE_VALUE}', 'PX', ARGV[4])
  elseif not ((t == ${DATA} or t == ${STALE})
      and string.sub(v, 2, ${VERSION_END}) > string.sub(new, 2, ${VERSION_END})) then
    redis.call('SET', KEYS[i], new, 'PX', ARGV[1])
    n = n + 1
  end
end
if ARGV[2] ~= '' then
  redis.call('PUBLISH', ARGV[2], ARGV[3])
end
return n
""")
# KEYS = (entry, refresh lock) pairs; ARGV = ttl_ms, then per pair the header of the entry the refresher saw and
# the new value (empty: the item is gone).
_REFRESH = _lua("""
local n = 0
for i = 1, #KEYS, 2 do
  local j = (i + 1) / 2
  local cur = redis.call('GET', KEYS[i])
  if cur and string.sub(cur, 1, ${STALE_HEADER}) == ARGV[2 * j] then
    local v = ARGV[2 * j + 1]
    if v == '' then
      redis.call('DEL', KEYS[i])
    else
      redis.call('SET', KEYS[i], v, 'PX', ARGV[1])
      n = n + 1
    end
  end
  redis.call('DEL', KEYS[i + 1])
end
return n
""")

SCRIPTS = {"lease": _LEASE, "fill": _FILL, "invalidate": _INVALIDATE, "set": _SET, "refresh": _REFRESH}
_SHA = {name: hashlib.sha1(text.encode(), usedforsecurity=False).hexdigest() for name, text in SCRIPTS.items()}


async def evalsha(node: Node, name: str, calls: list[tuple[Any, ...]], stats: TierStats) -> list[Any]:
    """Run the script ``name`` once per call (``(numkeys, *keys, *args)``) on ``node``, in one round trip;
    load it on ``NOSCRIPT`` and run the calls that missed it again. Error replies are returned in place."""
    sha = _SHA[name]
    commands = [("EVALSHA", sha, *c) for c in calls]
    replies = await node.call(commands)
    stats.round_trips += 1
    missing = [j for j, r in enumerate(replies) if isinstance(r, NoScriptError)]
    if missing:
        await node.call([("SCRIPT", "LOAD", SCRIPTS[name])])
        again = await node.call([commands[j] for j in missing])
        stats.round_trips += 2
        for j, r in zip(missing, again, strict=True):
            replies[j] = r
    return replies
