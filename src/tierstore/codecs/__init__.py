"""The cache envelope: a marker byte, the 4-byte schema id, a 4-byte digest of the cache key, then the msgspec
msgpack payload (:meth:`Schema.pack`; integers beyond 64 bits take its wide form).

::

    0xB1 <schema id: 4> <key digest: 4> <payload>    an item
    0xB2 <schema id: 4> <key digest: 4>              a cached "not found"

9 bytes of overhead per entry. The key digest (CRC-32 of the cache key's UTF-8 bytes) is checked on every
decode: an entry read under another key than the one it was written under (a copied or misrouted value) is
a miss, never served as the item. A "not found" is recognised only by its exact bytes, so a foreign value
that merely starts with its marker is a miss too. An entry written under another schema is decoded anyway
when msgspec's evolution rules allow it (new fields with defaults, removed fields ignored) and is otherwise a
miss, never an exception to the caller. Entries in the earlier 5-byte format (markers 0xA7/0xA8) read as
misses and are replaced.
"""

from __future__ import annotations

import zlib
from collections.abc import Sequence
from typing import Any, Final, Generic, TypeVar

import msgspec

from tierstore.model.schema import Schema

__all__ = ["ABSENT", "ENVELOPE_OVERHEAD", "Codec", "codec_for"]

T = TypeVar("T")

_PRESENT: Final = 0xB1
_ABSENT_MARK: Final = 0xB2
_PRESENT_BYTE: Final = bytes([_PRESENT])
ENVELOPE_OVERHEAD: Final = 9
"""Bytes an envelope adds to the msgpack payload (marker, schema id, key digest)."""


class _Absent:
    """Decoded negative-cache entry: the store said the item does not exist."""

    __slots__ = ()

    def __repr__(self) -> str:
        return "ABSENT"


ABSENT: Final = _Absent()


_crc = zlib.crc32
_COPY_BELOW = 2048  # payloads shorter than this are sliced as bytes when decoded
_HEADS = 8192
"""Bound of a codec's memo of expected envelope headers per cache key (cleared whole when full)."""


def _digest(ck: str) -> bytes:
    return _crc(ck.encode()).to_bytes(4, "big")


class Codec(Generic[T]):
    """Encodes items of one entity into cache envelopes and back. One per schema, reused."""

    __slots__ = ("_absent", "_decode", "_header", "_heads", "_pack", "_unpack", "incompatible", "keep_objects",
                 "schema", "share_objects")

    def __init__(self, schema: Schema[Any]) -> None:
        self.schema = schema
        sid = schema.schema_id.to_bytes(4, "big")
        self._header = bytes([_PRESENT]) + sid
        self._absent = bytes([_ABSENT_MARK]) + sid
        self._pack = schema.pack
        self._decode = schema.decoder.decode
        self._unpack = schema.unpack
        self.incompatible = 0
        # cache key -> the 9 bytes an item's envelope under it starts with: hot keys are read far more often
        # than they are new, and the CRC of the key costs more than the lookup.
        self._heads: dict[str, bytes] = {}
        # An in-process tier may keep the decoded object of a hot entry when every field's type is immutable
        # (a shallow copy per read is then a full copy, ~0.06 us against ~0.4 us to decode); a deeply
        # immutable entity with no relations to load is shared as it is.
        self.keep_objects: bool = schema.flat
        self.share_objects: bool = schema.immutable and not schema.relations

    def _head(self, ck: str) -> bytes:
        """The first 9 bytes of an item's envelope under ``ck`` (marker, schema id, key digest), remembered."""
        head = self._header + _digest(ck)
        heads = self._heads
        if len(heads) >= _HEADS:
            heads.clear()
        heads[ck] = head
        return head

    def encode(self, item: T, ck: str) -> bytes:
        """The envelope of ``item`` stored under the cache key ``ck``."""
        head = self._heads.get(ck)
        return (head if head is not None else self._head(ck)) + self._pack(item)

    def absent(self, ck: str) -> bytes:
        """The envelope of a cached "not found" under the cache key ``ck``."""
        return self._absent + _digest(ck)

    def decode(self, data: bytes, ck: str) -> T | _Absent | None:
        """The item, :data:`ABSENT` for a negative entry, or ``None`` when the bytes are unusable here (not an
        envelope, written under another key, or of an incompatible schema)."""
        expected = self._heads.get(ck)
        if expected is None:
            expected = self._head(ck)
        head = data[:9]
        if head == expected:
            # A small payload is copied (cheaper than a memoryview and its slice), a large one is not.
            payload = data[9:] if len(data) < _COPY_BELOW else memoryview(data)[9:]
            try:
                return self._decode(payload)  # type: ignore[no-any-return]
            except msgspec.ValidationError:
                try:  # the wide form (an integer beyond 64 bits)
                    return self._unpack(payload)  # type: ignore[no-any-return]
                except (msgspec.DecodeError, msgspec.ValidationError):
                    pass
            except msgspec.DecodeError:
                pass
        elif head[:5] == self._header:
            pass  # written under another key: a miss
        elif len(data) == 9 and data[:5] == self._absent:
            if data[5:] == _digest(ck):
                return ABSENT
        elif data[:1] == _PRESENT_BYTE and data[5:9] == _digest(ck):
            try:  # another schema version: usable if msgspec's evolution rules allow
                return self._unpack(memoryview(data)[9:])  # type: ignore[no-any-return]
            except (msgspec.DecodeError, msgspec.ValidationError):
                pass
        self.incompatible += 1
        return None


    def decode_all(self, datas: Sequence[bytes], cks: Sequence[str]) -> tuple[list[T | _Absent | None], bool]:
        """:meth:`decode` of each envelope under its cache key, in one loop; and whether every one is an item
        (no :data:`ABSENT`, nothing unusable)."""
        heads = self._heads
        decode = self._decode
        out: list[T | _Absent | None] = []
        append = out.append
        items = True
        for data, ck in zip(datas, cks, strict=True):
            expected = heads.get(ck)
            if expected is None:
                expected = self._head(ck)
            if data[:9] == expected and len(data) < _COPY_BELOW:
                try:
                    append(decode(data[9:]))
                    continue
                except (msgspec.ValidationError, msgspec.DecodeError):
                    pass
            value = self.decode(data, ck)  # everything else, on the one-entry path
            if value is None or value is ABSENT:
                items = False
            append(value)
        return out, items


def codec_for(schema: Schema[Any]) -> Codec[Any]:
    codec = getattr(schema, "_codec", None)
    if codec is None:
        codec = Codec(schema)
        schema._codec = codec  # type: ignore[attr-defined]
    return codec
