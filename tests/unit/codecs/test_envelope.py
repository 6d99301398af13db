"""The cache envelope: marker byte, schema id, msgpack payload; unusable bytes are a miss, never an error."""

from __future__ import annotations

import msgspec

from tierstore import Entity, PartitionKey
from tierstore.codecs import ABSENT, Codec, codec_for
from tierstore.model.schema import schema_of

from _models import Customer, Order


def test_roundtrip_and_reuse() -> None:
    codec = codec_for(schema_of(Customer))
    assert codec is codec_for(schema_of(Customer))
    c = Customer("c1", "Ann", tags=["x"], version=3)
    assert codec.decode(codec.encode(c)) == c
    assert codec.decode(codec.absent_bytes) is ABSENT


def test_garbage_is_a_miss_not_an_exception() -> None:
    codec = codec_for(schema_of(Customer))
    for junk in (b"", b"\x00", b"hello world", codec.encode(Customer("c", "n"))[:7], b"\xa7\x00\x00\x00\x00\xc1"):
        assert codec.decode(junk) is None
    assert codec.incompatible >= 5


def test_an_entry_of_another_schema_decodes_when_compatible() -> None:
    class V1(Entity, table="evolve"):
        id: PartitionKey[str]
        name: str

    class V2(Entity, table="evolve"):
        id: PartitionKey[str]
        name: str
        email: str = "none"

    class V3(Entity, table="evolve"):
        id: PartitionKey[str]
        name: int  # changed type: incompatible

    old = Codec(schema_of(V1)).encode(V1("a", "Ann"))
    assert schema_of(V1).schema_id != schema_of(V2).schema_id
    assert Codec(schema_of(V2)).decode(old) == V2("a", "Ann", "none")
    assert Codec(schema_of(V3)).decode(old) is None


def test_envelope_carries_the_schema_id() -> None:
    s = schema_of(Order)
    raw = Codec(s).encode(Order("c", "o", 1))
    assert raw[0] == 0xA7 and int.from_bytes(raw[1:5], "big") == s.schema_id
    assert msgspec.msgpack.decode(raw[5:])["customer_id"] == "c"
