"""The cache envelope: marker byte, schema id, key digest, msgpack payload; unusable bytes are a miss, never an
error; an envelope read under another key than its own is a miss."""

from __future__ import annotations

import msgspec

from tierstore import Entity, PartitionKey
from tierstore.codecs import ABSENT, ENVELOPE_OVERHEAD, Codec, codec_for
from tierstore.model.schema import schema_of

from _models import Customer, Order

CK = "{ts_customers:c1}"


def test_roundtrip_and_reuse() -> None:
    codec = codec_for(schema_of(Customer))
    assert codec is codec_for(schema_of(Customer))
    c = Customer("c1", "Ann", tags=["x"], version=3)
    assert codec.decode(codec.encode(c, CK), CK) == c
    assert codec.decode(codec.absent(CK), CK) is ABSENT


def test_garbage_is_a_miss_not_an_exception() -> None:
    codec = codec_for(schema_of(Customer))
    before = codec.incompatible
    junk = (b"", b"\x00", b"hello world", codec.encode(Customer("c", "n"), CK)[:7], b"\xb1\x00\x00\x00\x00\xc1",
            b"\xa7\x00\x00\x00\x00\xc1")
    for j in junk:
        assert codec.decode(j, CK) is None
    assert codec.incompatible == before + len(junk)


def test_a_value_starting_with_the_absent_marker_is_not_a_cached_absence() -> None:
    codec = codec_for(schema_of(Customer))
    absent = codec.absent(CK)
    for foreign in (b"\xb2", b"\xb2 user bytes", absent + b"x", absent[:5] + b"\x00\x00\x00\x00", b"\xa8" + absent[1:],
                    b"\xa8\x00\x00\x00\x00"):
        assert codec.decode(foreign, CK) is None


def test_an_envelope_read_under_another_key_is_a_miss() -> None:
    codec = codec_for(schema_of(Customer))
    other = "{ts_customers:c2}"
    assert codec.decode(codec.encode(Customer("c2", "Bob"), other), CK) is None
    assert codec.decode(codec.absent(other), CK) is None
    assert codec.decode(codec.encode(Customer("c2", "Bob"), other), other) == Customer("c2", "Bob")


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

    ck = "{evolve:a}"
    old = Codec(schema_of(V1)).encode(V1("a", "Ann"), ck)
    assert schema_of(V1).schema_id != schema_of(V2).schema_id
    assert Codec(schema_of(V2)).decode(old, ck) == V2("a", "Ann", "none")
    assert Codec(schema_of(V2)).decode(old, "{evolve:b}") is None
    assert Codec(schema_of(V3)).decode(old, ck) is None


def test_envelope_carries_the_schema_id_and_key_digest_in_9_bytes() -> None:
    s = schema_of(Order)
    raw = Codec(s).encode(Order("c", "o", 1), "{ts_orders:c}:o")
    assert ENVELOPE_OVERHEAD == 9
    assert raw[0] == 0xB1 and int.from_bytes(raw[1:5], "big") == s.schema_id
    assert msgspec.msgpack.decode(raw[ENVELOPE_OVERHEAD:])["customer_id"] == "c"
    assert len(raw) == ENVELOPE_OVERHEAD + len(s.pack(Order("c", "o", 1)))


class Wide(Entity, table="wide_ints"):
    id: PartitionKey[str]
    n: int = 0
    many: list[int] = []
    by_id: dict[int, int] = {}


def test_integers_beyond_64_bits_round_trip_through_the_envelope() -> None:
    codec = codec_for(schema_of(Wide))
    ck = "{wide_ints:w}"
    for item in (Wide("w", 10**20), Wide("w", -(10**37), [1, 2**64, -(2**63) - 1]), Wide("w", by_id={10**30: -1})):
        raw = codec.encode(item, ck)
        assert codec.decode(raw, ck) == item
        assert codec.decode(raw, "{wide_ints:x}") is None
    plain = Wide("w", 2**64 - 1, [-(2**63)])  # the edges msgpack holds itself: the plain form
    assert codec.decode(codec.encode(plain, ck), ck) == plain
    assert schema_of(Wide).pack(plain) == msgspec.msgpack.encode(plain)


def test_decode_all_agrees_with_decode_and_says_whether_every_entry_is_an_item() -> None:
    codec = codec_for(schema_of(Customer))
    cks = [f"{{ts_customers:c{i}}}" for i in range(6)]
    items = [Customer(f"c{i}", "n" * (5000 if i == 2 else 3)) for i in range(6)]  # one payload past the copy bound
    plain = [codec.encode(c, ck) for c, ck in zip(items, cks, strict=True)]
    assert codec.decode_all(plain, cks) == (items, True)
    before = codec.incompatible
    odd = [*plain]
    odd[1] = codec.absent(cks[1])
    odd[3] = plain[4]  # written under another key: a miss
    odd[5] = b"\xb1junk"
    values, all_items = codec.decode_all(odd, cks)
    assert not all_items and values == [codec.decode(d, ck) for d, ck in zip(odd, cks, strict=True)]
    assert values[1] is ABSENT and values[3] is None and values[5] is None
    assert codec.incompatible == before + 4  # two misses, counted once by each of the two reads above
    assert codec.decode_all([plain[0]], cks[:1]) == ([items[0]], True)
