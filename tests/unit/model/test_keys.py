"""Key markers are type annotations only: msgspec encodes the fields as their plain values."""

from __future__ import annotations

import msgspec

from tierstore.model.keys import EXPIRES, PARTITION, SORT, VERSION

from _models import Event, Order


def test_key_markers_encode_as_plain_values() -> None:
    raw = msgspec.json.encode(Order("c", "o", 1))
    assert raw.startswith(b'{"customer_id":"c","order_id":"o"')
    assert msgspec.msgpack.decode(msgspec.msgpack.encode(Event("t", "s", 1, expires_at=5)))["expires_at"] == 5


def test_markers_name_their_role() -> None:
    assert [repr(m) for m in (PARTITION, SORT, VERSION, EXPIRES)] == [
        "<partition key>", "<sort key>", "<version>", "<ttl>"
    ]
