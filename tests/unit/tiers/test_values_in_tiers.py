"""Values a tier must refuse or bound: non-finite and out-of-range TTLs, expiries memcached cannot hold,
malformed stale-entry headers."""

from __future__ import annotations

import math
import time

import pytest

from tierstore import CachePolicy, ConfigError
from tierstore.tiers.entry import STALE_HEADER, entry, soft_expiry
from tierstore.tiers.memcached.protocol import MAX_EXPTIME, THIRTY_DAYS, exptime
from tierstore.tiers.policy import MAX_TTL


@pytest.mark.parametrize(
    "kwargs",
    [
        {"ttl": math.nan}, {"ttl": math.inf}, {"ttl": -math.inf}, {"ttl": -1.0}, {"ttl": 0}, {"ttl": MAX_TTL + 1},
        {"ttl": "300"}, {"ttl": True}, {"negative_ttl": math.nan}, {"negative_ttl": math.inf},
        {"negative_ttl": -5.0}, {"ttl_jitter": math.nan}, {"lease_wait": math.nan}, {"lease_wait": math.inf},
        {"breaker_cooldown": math.nan}, {"breaker_cooldown": math.inf},
    ],
)
def test_cache_policy_refuses_non_finite_and_out_of_range_durations(kwargs: dict[str, object]) -> None:
    with pytest.raises(ConfigError):
        CachePolicy(**kwargs)  # type: ignore[arg-type]


def test_cache_policy_takes_long_finite_ttls() -> None:
    assert CachePolicy(ttl=MAX_TTL, negative_ttl=60).ttl == MAX_TTL


def test_memcached_expiry_beyond_30_days_is_absolute_and_clamped_to_2038() -> None:
    assert exptime(0.2) == 1
    assert exptime(THIRTY_DAYS) == THIRTY_DAYS
    now = int(time.time())
    assert now + 40 * 86400 <= exptime(40 * 86400) <= now + 40 * 86400 + 2  # absolute Unix time
    for seconds in (100 * 365 * 86400, 1e300, math.inf):
        assert exptime(seconds) == MAX_EXPTIME == 2**31 - 1


def test_a_malformed_stale_header_has_no_soft_expiry() -> None:
    good = entry(b"payload", 3, 10.0, 5.0)
    assert soft_expiry(good) is not None and soft_expiry(good) > time.time() * 1000
    for bad in (b"S", b"S12", good[:STALE_HEADER - 1], b"S" + b"z" * 40, b"S" + b"0" * 16 + b"-1" + b"0" * 30,
                b"S" + b"0" * 16 + b" " * 12 + b"0" * 8, b"S" + b"0" * 16 + b"_1" + b"0" * 18):
        assert soft_expiry(bad) is None
