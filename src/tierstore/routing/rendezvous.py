"""Rendezvous (highest-random-weight) hashing: which of several cache nodes owns a partition.

Used where there is no slot map to consult: several standalone Redis or memcached nodes, and the nodes of a
sharded tier. The choice depends only on the partition tag and the node names, so every process agrees.
"""

from __future__ import annotations

import hashlib
from collections.abc import Iterable

from tierstore.errors import ConfigError
from tierstore.model.cachekey import partition_tag

__all__ = ["Rendezvous"]

_M64 = (1 << 64) - 1


def _mix64(x: int) -> int:
    """splitmix64's finaliser: a cheap, well-spread 64-bit mix."""
    x = ((x ^ (x >> 30)) * 0xBF58476D1CE4E5B9) & _M64
    x = ((x ^ (x >> 27)) * 0x94D049BB133111EB) & _M64
    return x ^ (x >> 31)


def _hash64(data: bytes) -> int:
    return int.from_bytes(hashlib.blake2b(data, digest_size=8).digest(), "big")


class Rendezvous:
    """Highest-random-weight choice of a node per partition tag: stable, and adding or removing a node moves
    only the partitions that node wins or held (about 1/N of them)."""

    __slots__ = ("_cache", "_seeds", "names")

    def __init__(self, names: Iterable[str]) -> None:
        self.names = tuple(names)
        if not self.names:
            raise ConfigError("rendezvous hashing needs at least one node")
        self._seeds = tuple(_hash64(n.encode()) for n in self.names)
        self._cache: dict[str, int] = {}

    def __repr__(self) -> str:
        return f"Rendezvous({list(self.names)})"

    def index(self, key: str) -> int:
        """Index of the node that owns ``key``'s partition."""
        if len(self._seeds) == 1:
            return 0
        tag = partition_tag(key)
        found = self._cache.get(tag)
        if found is None:
            h = _hash64(tag.encode())
            seeds = self._seeds
            found = max(range(len(seeds)), key=lambda j: _mix64(h ^ seeds[j]))
            if len(self._cache) >= 65_536:
                self._cache.clear()
            self._cache[tag] = found
        return found
