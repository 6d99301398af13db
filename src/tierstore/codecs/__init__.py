"""The cache envelope: one marker byte, the 4-byte schema id, then the msgspec msgpack payload.

An entry written under another schema is decoded anyway when msgspec's evolution rules allow it (new fields
with defaults, removed fields ignored) and is otherwise a miss, never an exception to the caller.
"""

from __future__ import annotations

from typing import Any, Final, Generic, TypeVar

import msgspec

from tierstore.model.schema import Schema

__all__ = ["ABSENT", "Codec", "codec_for"]

T = TypeVar("T")

_PRESENT: Final = 0xA7
_ABSENT_MARK: Final = 0xA8


class _Absent:
    """Decoded negative-cache entry: the store said the item does not exist."""

    __slots__ = ()

    def __repr__(self) -> str:
        return "ABSENT"


ABSENT: Final = _Absent()


class Codec(Generic[T]):
    """Encodes items of one entity into cache envelopes and back. One per schema, reused."""

    __slots__ = ("_decode", "_encode", "_header", "absent_bytes", "incompatible", "keep_objects", "schema",
                 "share_objects")

    def __init__(self, schema: Schema[Any]) -> None:
        self.schema = schema
        self._header = bytes([_PRESENT]) + schema.schema_id.to_bytes(4, "big")
        self.absent_bytes = bytes([_ABSENT_MARK]) + schema.schema_id.to_bytes(4, "big")
        self._encode = schema.encoder.encode
        self._decode = schema.decoder.decode
        self.incompatible = 0
        # An in-process tier may keep the decoded object of a hot entry when every field's type is immutable
        # (a shallow copy per read is then a full copy, ~0.06 us against ~0.4 us to decode); a deeply
        # immutable entity with no relations to load is shared as it is.
        self.keep_objects: bool = schema.flat
        self.share_objects: bool = schema.immutable and not schema.relations

    def encode(self, item: T) -> bytes:
        return self._header + self._encode(item)

    def decode(self, data: bytes) -> T | _Absent | None:
        """The item, :data:`ABSENT` for a negative entry, or ``None`` when the bytes are unusable."""
        if data[:5] == self._header:
            try:
                return self._decode(memoryview(data)[5:])  # type: ignore[no-any-return]
            except (msgspec.DecodeError, msgspec.ValidationError):
                self.incompatible += 1
                return None
        if not data:
            self.incompatible += 1
            return None
        if data[0] == _ABSENT_MARK:
            return ABSENT
        if data[0] == _PRESENT:
            try:  # another schema version: usable if msgspec's evolution rules allow
                return self._decode(memoryview(data)[5:])  # type: ignore[no-any-return]
            except (msgspec.DecodeError, msgspec.ValidationError):
                pass
        self.incompatible += 1
        return None


def codec_for(schema: Schema[Any]) -> Codec[Any]:
    codec = getattr(schema, "_codec", None)
    if codec is None:
        codec = Codec(schema)
        schema._codec = codec  # type: ignore[attr-defined]
    return codec
