"""Items holding integers beyond 64 bits, in msgspec msgpack.

msgspec's msgpack encoder refuses integers outside ``[-2**63, 2**64 - 1]`` (``OverflowError``) and its typed
decoder accepts no extension where an ``int`` is declared. DynamoDB keeps 38 digits, so an item that store
accepts must still round-trip through the cache envelope and the memory store. Such an item (and only such
an item: the plain encoder is tried first) is written as one msgpack extension (type 1) holding the item's
builtins form, each wide integer in it an extension of type 2 (its decimal text). It is read back untyped and
converted to the entity (strictly, as the typed decoder would). A plain encoded Struct is always a msgpack map
or array, never an extension, so the two forms cannot be mistaken for each other.

msgspec has no hook for this (``enc_hook`` is not called for ``int``), hence this small module.
"""

from __future__ import annotations

import datetime
import decimal
import uuid
from typing import Any, Final, TypeVar

import msgspec

__all__ = ["INT64_MAX", "INT64_MIN", "UINT64_MAX", "is_wide", "pack_wide", "unpack_wide"]

T = TypeVar("T")

INT64_MIN: Final = -(2**63)
INT64_MAX: Final = 2**63 - 1
UINT64_MAX: Final = 2**64 - 1
_ITEM: Final = 1
_INT: Final = 2
# The first byte of a msgpack extension: fixext 1/2/4/8/16, ext 8/16/32.
_EXT_FIRST: Final = frozenset({0xD4, 0xD5, 0xD6, 0xD7, 0xD8, 0xC7, 0xC8, 0xC9})
_PASS_THROUGH: Final = (
    bytes, bytearray, memoryview, datetime.datetime, datetime.date, datetime.time, datetime.timedelta,
    uuid.UUID, decimal.Decimal,
)


class _Wide:
    """A wide integer on its way to the encoder (hashable, so it may be a map key)."""

    __slots__ = ("value",)

    def __init__(self, value: int) -> None:
        self.value = value

    def __hash__(self) -> int:
        return hash(self.value)

    def __eq__(self, other: object) -> bool:
        return isinstance(other, _Wide) and other.value == self.value


def _enc_hook(obj: Any) -> Any:
    if isinstance(obj, _Wide):
        return msgspec.msgpack.Ext(_INT, str(obj.value).encode())
    raise NotImplementedError(f"cannot encode {type(obj).__name__}")


def _ext_hook(code: int, data: memoryview) -> Any:
    if code == _INT:
        return int(bytes(data))
    return msgspec.msgpack.Ext(code, bytes(data))


_encoder = msgspec.msgpack.Encoder(enc_hook=_enc_hook)


def _widen(value: Any) -> Any:
    t = type(value)
    if t is int:
        return value if INT64_MIN <= value <= UINT64_MAX else _Wide(value)
    if t is list or t is tuple:
        return [_widen(v) for v in value]
    if t is dict:
        return {_widen(k): _widen(v) for k, v in value.items()}
    return value


def is_wide(data: bytes | memoryview) -> bool:
    """Whether ``data`` (a msgpack payload) is the wide form written by :func:`pack_wide`."""
    return len(data) > 0 and data[0] in _EXT_FIRST


def pack_wide(item: Any) -> bytes:
    """``item`` (a Struct) in the wide form; raises what msgspec raises for values it cannot encode at all."""
    inner = _encoder.encode(_widen(msgspec.to_builtins(item, builtin_types=_PASS_THROUGH)))
    return _encoder.encode(msgspec.msgpack.Ext(_ITEM, inner))


def unpack_wide(data: bytes | memoryview, cls: type[T]) -> T:
    """The item of class ``cls`` held in the wide form ``data``; ``msgspec.ValidationError`` or
    ``msgspec.DecodeError`` when it is not one."""
    outer = msgspec.msgpack.decode(data)
    if not isinstance(outer, msgspec.msgpack.Ext) or outer.code != _ITEM:
        raise msgspec.ValidationError("not a wide-form item")
    return msgspec.convert(msgspec.msgpack.decode(outer.data, ext_hook=_ext_hook), cls, strict=True)
