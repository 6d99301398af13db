"""memcached tier URLs and their checks (tiers/memcached/config.py); nothing connects."""

from __future__ import annotations

import pytest

from tierstore import ConfigError
from tierstore.config import tier_config
from tierstore.tiers.memcached import MemcachedTierConfig


def test_config_from_url() -> None:
    cfg = MemcachedTierConfig.from_url(
        "memcached://m1:11211,m2?prefix=svc&timeout=20ms&pool_size=2&lease=3s&tombstone=4s&max_value=512KiB"
    )
    assert cfg.hosts == (("m1", 11211), ("m2", 11211)) and cfg.prefix == "svc" and cfg.timeout == 0.02
    assert (cfg.pool_size, cfg.lease, cfg.tombstone, cfg.max_value) == (2, 3.0, 4.0, 512 * 1024)
    for bad in ("memcached://h?lease=1s", "memcached://u:pw@h", "memcached://h?x=1", "memcached://h?prefix=a%20b",
                "memcached://h?max_value=100"):
        with pytest.raises(ConfigError):
            tier_config(bad)
