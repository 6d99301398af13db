"""Partition-key routing: partition → stable hash → one of N logical slots → shard, via a slot map.

A :class:`Router` is a value: built from config (``Router.uniform(["pg-a", "pg-b"])`` or the spec string
``"pg-a=0-511,pg-b=512-1023"``), printable, comparable, hashable. The hash is the first 8 bytes of BLAKE2b
over the UTF-8 partition token (``Schema.partition_token``: the same text as inside the cache key's braces
after the table), read big-endian, modulo the slot count. It depends on nothing but the partition value, so
entities that share a partition value (a customer and its orders) live on the same shard, and any language
can compute it.

Resharding moves whole slots: :meth:`Router.plan` lists the moving slot ranges and the fraction of keys they
hold (slots are equally likely under the hash). This module is a leaf: it knows keys and shard names, nothing
of stores, tiers or repositories.
"""

from __future__ import annotations

import re
from collections.abc import Iterable, Mapping, Sequence
from dataclasses import dataclass
from hashlib import blake2b
from typing import Any

from tierstore.errors import ConfigError
from tierstore.model.cachekey import escape, token
from tierstore.model.schema import Key, Schema

__all__ = [
    "DEFAULT_SLOTS",
    "MAX_SLOTS",
    "ReshardPlan",
    "Router",
    "SlotMove",
    "SlotRange",
    "hash_token",
    "partition_token",
]

DEFAULT_SLOTS = 1024
MAX_SLOTS = 1 << 16
HASH_NAME = "blake2b-64"
_MEMO_MAX = 1 << 16
_SHARD_NAME = re.compile(r"[A-Za-z0-9_.\-]{1,64}\Z")
_RANGE = re.compile(r"\s*([A-Za-z0-9_.\-]+)\s*=\s*(\d+)(?:\s*-\s*(\d+))?\s*\Z")


def hash_token(token: str) -> int:
    """The 64-bit routing hash of a partition token (stable across processes, versions and languages)."""
    return int.from_bytes(blake2b(token.encode(), digest_size=8).digest(), "big")


def partition_token(partition: Key) -> str:
    """The token of a flat partition tuple, as ``Schema.partition_token`` spells it (fast path for one str)."""
    if len(partition) == 1:
        p = partition[0]
        if type(p) is str:
            return escape(p)
    return ",".join(token(p) for p in partition)


@dataclass(frozen=True, slots=True)
class SlotRange:
    """Slots ``start`` … ``stop - 1`` on ``shard``."""

    start: int
    stop: int
    shard: str

    def __len__(self) -> int:
        return self.stop - self.start

    def __str__(self) -> str:
        return f"{self.shard}={_span(self.start, self.stop)}"


@dataclass(frozen=True, slots=True)
class SlotMove:
    """Slots ``start`` … ``stop - 1`` move from shard ``source`` to shard ``target``."""

    start: int
    stop: int
    source: str
    target: str

    def __len__(self) -> int:
        return self.stop - self.start

    def __contains__(self, slot: object) -> bool:
        return isinstance(slot, int) and self.start <= slot < self.stop

    def __str__(self) -> str:
        return f"slots {_span(self.start, self.stop)}: {self.source} -> {self.target}"


def _span(start: int, stop: int) -> str:
    return str(start) if stop == start + 1 else f"{start}-{stop - 1}"


@dataclass(frozen=True, slots=True)
class ReshardPlan:
    """What changes between two routers over the same slots. ``fraction``: share of keys that move."""

    old: Router
    new: Router
    moves: tuple[SlotMove, ...]

    @property
    def slots_moving(self) -> int:
        return sum(len(m) for m in self.moves)

    @property
    def fraction(self) -> float:
        """Expected fraction of keys that move (each slot holds 1/slots of the keys under the hash)."""
        return self.slots_moving / self.old.slots

    @property
    def sources(self) -> tuple[str, ...]:
        return tuple(dict.fromkeys(m.source for m in self.moves))

    @property
    def targets(self) -> tuple[str, ...]:
        return tuple(dict.fromkeys(m.target for m in self.moves))

    def move_of(self, slot: int) -> SlotMove | None:
        """The move that carries ``slot``, or ``None`` when the slot stays."""
        if self.old.shard_of_slot(slot) == self.new.shard_of_slot(slot):
            return None
        for m in self.moves:
            if slot in m:
                return m
        raise AssertionError("unreachable: a slot that changes shard is in a move")

    def __bool__(self) -> bool:
        return bool(self.moves)

    def __str__(self) -> str:
        head = (
            f"{self.slots_moving} of {self.old.slots} slots move "
            f"({self.fraction:.1%} of keys), {len(self.moves)} range(s)"
        )
        return "\n".join([head, *(f"  {m}" for m in self.moves)])


class Router:
    """A slot map: ``slots`` logical slots, each owned by one shard. Immutable; compare with ``==``.

    >>> r = Router.uniform(["pg-a", "pg-b"], slots=1024)
    >>> str(r)
    'pg-a=0-511,pg-b=512-1023'
    """

    __slots__ = ("_hash", "_index", "_memo", "_slot_shard", "shards", "slots")

    def __init__(self, slot_shards: Sequence[str]) -> None:
        """``slot_shards[i]`` names the shard of slot ``i``. Prefer :meth:`uniform`, :meth:`parse`."""
        n = len(slot_shards)
        if not 1 <= n <= MAX_SLOTS:
            raise ConfigError(f"a router needs 1 to {MAX_SLOTS} slots, got {n}")
        names = tuple(dict.fromkeys(slot_shards))
        for name in names:
            if not isinstance(name, str) or not _SHARD_NAME.match(name):
                raise ConfigError(f"shard name {name!r} must match {_SHARD_NAME.pattern}")
        self.slots = n
        self.shards: tuple[str, ...] = names
        self._index = {name: i for i, name in enumerate(names)}
        self._slot_shard: tuple[str, ...] = tuple(slot_shards)
        self._hash = hash(self._slot_shard)
        self._memo: dict[Key, int] = {}  # partition -> shard index: hot partitions skip the hash

    # -- construction ------------------------------------------------------------------------------

    @classmethod
    def uniform(cls, shards: Sequence[str], *, slots: int = DEFAULT_SLOTS) -> Router:
        """Contiguous, equal ranges (sizes differ by at most one slot), in the order given."""
        shards = list(shards)
        if not shards:
            raise ConfigError("a router needs at least one shard")
        if len(set(shards)) != len(shards):
            raise ConfigError(f"shard names repeat: {shards}")
        if not isinstance(slots, int) or isinstance(slots, bool) or not len(shards) <= slots <= MAX_SLOTS:
            raise ConfigError(f"slots must be an int from {len(shards)} to {MAX_SLOTS}, got {slots!r}")
        base, extra = divmod(slots, len(shards))
        out: list[str] = []
        for i, name in enumerate(shards):
            out.extend([name] * (base + (1 if i < extra else 0)))
        return cls(out)

    @classmethod
    def parse(cls, spec: str) -> Router:
        """Read ``"pg-a=0-511,pg-b=512-1023"`` (what ``str(router)`` prints). Ranges are inclusive and must
        cover slots ``0 … n-1`` exactly once."""
        if not isinstance(spec, str) or not spec.strip():
            raise ConfigError(f"router spec must be like 'a=0-511,b=512-1023', got {spec!r}")
        ranges: list[tuple[int, int, str]] = []
        for part in spec.split(","):
            m = _RANGE.match(part)
            if not m:
                raise ConfigError(f"router spec: cannot read {part.strip()!r} (expected shard=start-end)")
            name, lo, hi = m.group(1), int(m.group(2)), int(m.group(3) or m.group(2))
            if hi < lo:
                raise ConfigError(f"router spec: range {lo}-{hi} runs backwards")
            ranges.append((lo, hi + 1, name))
        ranges.sort()
        total = ranges[-1][1]
        if total > MAX_SLOTS:
            raise ConfigError(f"router spec: at most {MAX_SLOTS} slots")
        slot_shards: list[str] = []
        for lo, hi, name in ranges:
            if lo != len(slot_shards):
                problem = "overlap" if lo < len(slot_shards) else "a gap"
                raise ConfigError(f"router spec: {problem} at slot {min(lo, len(slot_shards))}")
            slot_shards.extend([name] * (hi - lo))
        return cls(slot_shards)

    @classmethod
    def from_config(cls, config: str | Mapping[str, Any] | Router) -> Router:
        """A router from its spec string, from ``to_config()`` output, or from
        ``{"shards": [...], "slots": 1024}`` (uniform)."""
        if isinstance(config, Router):
            return config
        if isinstance(config, str):
            return cls.parse(config)
        if not isinstance(config, Mapping):
            raise ConfigError(f"router config must be a spec string or a mapping, got {type(config).__name__}")
        unknown = set(config) - {"hash", "slots", "shards", "ranges"}
        if unknown:
            raise ConfigError(f"router config: unknown keys {sorted(unknown)}")
        if config.get("hash", HASH_NAME) != HASH_NAME:
            raise ConfigError(f"router config: hash {config['hash']!r} is not {HASH_NAME!r}")
        if "ranges" in config:
            ranges = config["ranges"]
            spec = ranges if isinstance(ranges, str) else ",".join(
                f"{name}={lo}-{hi}" for lo, hi, name in ranges
            )
            router = cls.parse(spec)
            if "slots" in config and config["slots"] != router.slots:
                raise ConfigError(f"router config: ranges cover {router.slots} slots, not {config['slots']}")
            return router
        if "shards" in config:
            return cls.uniform(list(config["shards"]), slots=config.get("slots", DEFAULT_SLOTS))
        raise ConfigError("router config needs 'ranges' or 'shards'")

    def to_config(self) -> dict[str, Any]:
        """A JSON-able description that :meth:`from_config` reads back (ranges inclusive)."""
        return {
            "hash": HASH_NAME,
            "slots": self.slots,
            "ranges": [[r.start, r.stop - 1, r.shard] for r in self.ranges()],
        }

    def with_shards(self, shards: Sequence[str]) -> Router:
        """A router over ``shards`` that moves as few slots as possible from this one.

        Shards that stay keep their slots up to an equal share; slots of removed shards and the excess of
        over-full shards go to the shards below their share (new shards first get slots from the ends of
        existing ranges, so ranges stay few).
        """
        shards = list(shards)
        if not shards or len(set(shards)) != len(shards):
            raise ConfigError(f"with_shards needs distinct shard names, got {shards}")
        if len(shards) > self.slots:
            raise ConfigError(f"{len(shards)} shards do not fit in {self.slots} slots")
        base, extra = divmod(self.slots, len(shards))
        # Existing shards that stay are first in line for the larger quotas: fewer moves.
        order = sorted(shards, key=lambda s: (s not in self._index, shards.index(s)))
        quota = {s: base + (1 if i < extra else 0) for i, s in enumerate(order)}
        owner: list[str | None] = list(self._slot_shard)
        held = {s: 0 for s in shards}
        # Walk each shard's slots from the front; keep up to its quota, free the rest (from the back).
        for slot, s in enumerate(self._slot_shard):
            if s in held and held[s] < quota[s]:
                held[s] += 1
            else:
                owner[slot] = None
        free = [i for i, s in enumerate(owner) if s is None]
        for s in shards:
            need = quota[s] - held[s]
            for slot in free[:need]:
                owner[slot] = s
            free = free[need:]
        assert not free and all(o is not None for o in owner)
        return Router([o for o in owner if o is not None])

    # -- routing -----------------------------------------------------------------------------------

    def slot_of_token(self, token: str) -> int:
        return int.from_bytes(blake2b(token.encode(), digest_size=8).digest(), "big") % self.slots

    def slot_of(self, partition: Key) -> int:
        """The slot of a flat partition tuple (``schema.partition_of(key)``)."""
        return self.slot_of_token(partition_token(partition))

    def slot_for(self, schema: Schema[Any], key: Key) -> int:
        """The slot of a flat key (partition parts, then sort parts) of ``schema``."""
        return self.slot_of_token(partition_token(key[: len(schema.partition)]))

    def shard_of_slot(self, slot: int) -> str:
        return self._slot_shard[slot]

    def shard_of(self, partition: Key) -> str:
        """The shard of a flat partition tuple."""
        return self.shards[self.shard_index_of(partition)]

    def shard_for(self, schema: Schema[Any], key: Key) -> str:
        """The shard holding the item with flat key ``key``."""
        return self.shards[self.shard_index_of(key[: len(schema.partition)])]

    def shard_index_for(self, schema: Schema[Any], key: Key) -> int:
        """Position in :attr:`shards` of the shard of flat key ``key`` (the store's hot path)."""
        return self.shard_index_of(key[: len(schema.partition)])

    def shard_index_of(self, partition: Key) -> int:
        """Position in :attr:`shards` of the shard of ``partition``; recent partitions skip the hash."""
        found = self._memo.get(partition)
        if found is None:
            token = partition_token(partition)
            slot = int.from_bytes(blake2b(token.encode(), digest_size=8).digest(), "big") % self.slots
            found = self._index[self._slot_shard[slot]]
            if len(self._memo) >= _MEMO_MAX:
                self._memo.clear()
            self._memo[partition] = found
        return found

    def group(self, schema: Schema[Any], keys: Iterable[Key]) -> dict[str, list[int]]:
        """Request positions of ``keys`` grouped by shard (each group in request order)."""
        out: dict[str, list[int]] = {}
        for i, key in enumerate(keys):
            out.setdefault(self.shard_for(schema, key), []).append(i)
        return out

    # -- inspection --------------------------------------------------------------------------------

    def ranges(self) -> list[SlotRange]:
        """Maximal runs of consecutive slots on one shard, in slot order."""
        out: list[SlotRange] = []
        start = 0
        for i in range(1, self.slots + 1):
            if i == self.slots or self._slot_shard[i] != self._slot_shard[start]:
                out.append(SlotRange(start, i, self._slot_shard[start]))
                start = i
        return out

    def slot_counts(self) -> dict[str, int]:
        counts = dict.fromkeys(self.shards, 0)
        for s in self._slot_shard:
            counts[s] += 1
        return counts

    def slots_of(self, shard: str) -> list[int]:
        return [i for i, s in enumerate(self._slot_shard) if s == shard]

    def plan(self, new: Router | str | Mapping[str, Any]) -> ReshardPlan:
        """The slot ranges that change shard between this router and ``new`` (same slot count)."""
        new = Router.from_config(new)
        if new.slots != self.slots:
            raise ConfigError(
                f"cannot plan between {self.slots} and {new.slots} slots: the slot count is fixed "
                f"for the life of the data (changing it moves almost every key)"
            )
        moves: list[SlotMove] = []
        old_map, new_map = self._slot_shard, new._slot_shard
        i = 0
        while i < self.slots:
            if old_map[i] == new_map[i]:
                i += 1
                continue
            j = i + 1
            while j < self.slots and old_map[j] == old_map[i] and new_map[j] == new_map[i]:
                j += 1
            moves.append(SlotMove(i, j, old_map[i], new_map[i]))
            i = j
        return ReshardPlan(self, new, tuple(moves))

    # -- value semantics ---------------------------------------------------------------------------

    def __eq__(self, other: object) -> bool:
        return isinstance(other, Router) and self._slot_shard == other._slot_shard

    def __hash__(self) -> int:
        return self._hash

    def __str__(self) -> str:
        return ",".join(str(r) for r in self.ranges())

    def __repr__(self) -> str:
        return f"Router({str(self)!r})"

    def __reduce__(self) -> tuple[Any, ...]:
        return (Router.parse, (str(self),))
