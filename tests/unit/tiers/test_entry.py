"""The stored entry format of the shared tiers (tiers/entry.py): header layouts, version order, soft expiry, and
the Redis scripts spelling the same bytes."""

from __future__ import annotations

import time

from tierstore.tiers import entry as fmt
from tierstore.tiers.entry import (
    DATA,
    DATA_HEADER,
    LEASE,
    MAX_VERSION,
    REFRESH,
    REFRESH_SEEN,
    SOFT_EXPIRY,
    STALE,
    STALE_HEADER,
    TOMBSTONE,
    VERSION,
    entry,
)
from tierstore.tiers.redis.scripts import SCRIPTS


def test_type_bytes_are_the_letters() -> None:
    assert bytes([DATA, STALE, LEASE, TOMBSTONE]) == b"DSLT"
    assert fmt.TOMBSTONE_VALUE == b"T" and fmt.LEASE_MARK == b"L"
    assert REFRESH[0] not in (DATA, STALE, LEASE, TOMBSTONE)


def test_a_data_entry_is_a_type_byte_a_version_and_the_envelope() -> None:
    stored = entry(b"envelope", 42, ttl=60, stale=0)
    assert stored[0] == DATA and len(stored) == DATA_HEADER + len(b"envelope")
    assert stored[DATA_HEADER:] == b"envelope" and int(stored[VERSION], 16) == 42


def test_versions_compare_as_bytes_and_are_clamped() -> None:
    versions = [0, 1, 9, 10, 255, 2**40, MAX_VERSION]
    stored = [entry(b"", v, 60, 0) for v in versions]
    assert sorted(stored, key=lambda s: s[VERSION]) == stored  # fixed-width hex: bytes order is number order
    assert entry(b"", -5, 60, 0)[VERSION] == b"0" * 16
    assert entry(b"", 2**70, 60, 0)[VERSION] == b"f" * 16


def test_a_stale_entry_carries_its_soft_expiry_and_a_nonce() -> None:
    before = int(time.time() * 1000)
    stored = entry(b"env", 7, ttl=30, stale=60)
    after = int(time.time() * 1000)
    assert stored[0] == STALE and stored[STALE_HEADER:] == b"env" and int(stored[VERSION], 16) == 7
    assert before + 30_000 <= int(stored[SOFT_EXPIRY], 16) <= after + 30_000
    token = REFRESH + stored[:STALE_HEADER] + b"reader"
    assert token[REFRESH_SEEN] == stored[:STALE_HEADER]  # a refresh lease names the very entry it replaces


def test_two_fills_of_one_key_are_told_apart() -> None:
    headers = {entry(b"v", 0, 30, 60)[:STALE_HEADER] for _ in range(50)}
    assert len(headers) > 1  # the nonce differs (2^-32 per pair that it does not)


def test_the_redis_scripts_spell_the_same_bytes() -> None:
    assert f"t == {TOMBSTONE}" in SCRIPTS["lease"] and f"t == {LEASE}" in SCRIPTS["lease"]
    assert "'L' .. ARGV[1]" in SCRIPTS["lease"]
    assert "'T', 'PX'" in SCRIPTS["invalidate"]
    assert f"t == {DATA} or t == {STALE}" in SCRIPTS["set"]
    assert f"string.sub(v, 2, {DATA_HEADER})" in SCRIPTS["set"]
    assert f"string.sub(cur, 1, {STALE_HEADER})" in SCRIPTS["refresh"]
    assert all("${" not in text for text in SCRIPTS.values())
