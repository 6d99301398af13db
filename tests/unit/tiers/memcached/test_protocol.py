"""Key spelling and TTLs of the memcached text protocol (tiers/memcached/protocol.py); nothing connects."""

from __future__ import annotations

import time

import pytest

from tierstore.tiers.memcached import memcached_key
from tierstore.tiers.memcached.protocol import exptime


@pytest.mark.parametrize(
    "key",
    [
        "a\r\nflush_all",
        "a flush_all",
        "tab\there",
        "nul\x00",
        "del\x7f",
        "é" * 125,  # 250 characters, 250 bytes of UTF-8 + namespace: too long in bytes
        "x" * 251,
        "#looks-hashed",
        "\u0085next-line",
    ],
)
def test_memcached_keys_are_safe_bytes(key: str) -> None:
    mk = memcached_key(b"ns:g1:", key)
    assert len(mk) <= 250
    assert all(0x21 <= b <= 0x7E for b in mk), mk
    assert mk.startswith(b"ns:g1:#")  # hashed
    assert memcached_key(b"ns:g1:", key) == mk  # stable


def test_plain_keys_are_kept_and_limits_are_counted_in_bytes() -> None:
    assert memcached_key(b"ns:", "{orders:c1}:o1") == b"ns:{orders:c1}:o1"
    assert memcached_key(b"n:", "k" * 248) == b"n:" + b"k" * 248  # exactly 250 bytes: kept
    assert memcached_key(b"n:", "k" * 249).startswith(b"n:#")  # 251 bytes: hashed
    assert memcached_key(b"n:", "é" * 100).startswith(b"n:#")  # 100 characters but 200 non-ASCII bytes


def test_ttls_over_thirty_days_become_absolute_times() -> None:
    assert exptime(0.2) == 1
    assert exptime(60) == 60
    assert exptime(30 * 86400) == 30 * 86400
    now = time.time()
    absolute = exptime(31 * 86400)
    assert now + 31 * 86400 - 2 <= absolute <= time.time() + 31 * 86400 + 2
