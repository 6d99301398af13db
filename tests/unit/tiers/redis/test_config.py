"""Redis tier URLs and their checks (tiers/redis/config.py); nothing connects."""

from __future__ import annotations

import pytest

from tierstore import ConfigError
from tierstore.config import tier_config
from tierstore.tiers.redis import RedisTierConfig


def test_config_from_url() -> None:
    cfg = RedisTierConfig.from_url(
        "rediss://app:p%40ss@cache.example:6380/2?prefix=svc&timeout=50ms&connect_timeout=1s&pool_size=4"
        "&lease=2s&tombstone=3s&breaker_failures=3&breaker_cooldown=500ms&max_value=64KiB&max_pending=100"
        "&coherence=false&ping=250ms&tls_verify=false"
    )
    assert cfg.hosts == (("cache.example", 6380),) and cfg.tls and not cfg.cluster and cfg.db == 2
    assert (cfg.username, cfg.password) == ("app", "p@ss")
    assert cfg.prefix == "svc" and cfg.timeout == 0.05 and cfg.connect_timeout == 1.0 and cfg.pool_size == 4
    assert (cfg.lease, cfg.tombstone, cfg.breaker_failures, cfg.breaker_cooldown) == (2.0, 3.0, 3, 0.5)
    assert cfg.max_value == 65536 and cfg.max_pending == 100 and not cfg.coherence and cfg.ping == 0.25
    assert not cfg.tls_verify
    assert "p@ss" not in repr(cfg) and "p%40ss" not in repr(cfg)
    assert "p@ss" not in repr(cfg.build())

    cluster = RedisTierConfig.from_url("redis+cluster://h1:7001,h2:7002,[::1]:7003")
    assert cluster.cluster and cluster.hosts == (("h1", 7001), ("h2", 7002), ("::1", 7003))
    assert RedisTierConfig.from_url("redis://h").hosts == (("h", 6379),)
    assert RedisTierConfig.from_url("redis://h1,h2:6380").hosts == (("h1", 6379), ("h2", 6380))


@pytest.mark.parametrize(
    "url",
    [
        "redis://h?nope=1",  # unknown parameter: a typo must not pass silently
        "redis://h?prefix=a b",
        "redis://h?prefix={tag}",  # braces would become the cluster hash tag
        "redis://h?timeout=0",
        "redis://h?pool_size=0",
        "redis://h:99999",
        "redis://h/notadb",
        "redis+cluster://h1:7001/3",  # a cluster has database 0 only
        "redis://secret:hunter2@h?bad=1",
    ],
)
def test_bad_urls_are_config_errors_without_secrets(url: str) -> None:
    with pytest.raises(ConfigError) as info:
        tier_config(url)
    assert "hunter2" not in str(info.value)
