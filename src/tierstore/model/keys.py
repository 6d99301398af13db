"""Field markers. ``PartitionKey[str]`` is ``Annotated[str, <marker>]``: msgspec encodes it as plain ``str``."""

from __future__ import annotations

from typing import Annotated, TypeAlias, TypeVar

__all__ = ["TTL", "Key", "KeyMarker", "KeyPart", "PartitionKey", "SortKey", "Version"]

_T = TypeVar("_T")

KeyPart = str | int | bytes
"""One part of a key: key fields are ``str``, ``int`` or ``bytes``."""
Key = tuple[KeyPart, ...]
"""A key as carried internally: a flat tuple of the partition parts, then the sort parts."""


class KeyMarker:
    """Marks a field's role in the schema. Compared by identity."""

    __slots__ = ("role",)

    def __init__(self, role: str) -> None:
        self.role = role

    def __repr__(self) -> str:
        return f"<{self.role}>"


PARTITION = KeyMarker("partition key")
SORT = KeyMarker("sort key")
VERSION = KeyMarker("version")
EXPIRES = KeyMarker("ttl")

PartitionKey: TypeAlias = Annotated[_T, PARTITION]
"""The field holding (part of) the partition key: ``id: PartitionKey[str]``."""

SortKey: TypeAlias = Annotated[_T, SORT]
"""The field holding (part of) the sort key: ``order_id: SortKey[str]``."""

Version: TypeAlias = Annotated[int, VERSION]
"""Optimistic-locking version; the store sets it to old + 1 on every write."""

TTL: TypeAlias = Annotated[int, EXPIRES]
"""Expiry as Unix epoch seconds (DynamoDB's TTL convention); 0 means never. Expired items read as absent."""
