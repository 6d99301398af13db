"""SqlStoreConfig: URL parameters, rejected URLs, redacted passwords."""

from __future__ import annotations

import pytest

from tierstore import ConfigError
from tierstore.config import store_config
from tierstore.stores.sql import SqlStoreConfig


def test_config_from_url() -> None:
    cfg = SqlStoreConfig.from_url(
        "postgresql://app:pw@db:5432/main?pool_size=7&pool_timeout=2s&pool_recycle=1h&page_size=50"
        "&command_timeout=500ms&ssl=require"
    )
    assert (cfg.pool_size, cfg.pool_timeout, cfg.pool_recycle, cfg.page_size) == (7, 2.0, 3600.0, 50)
    assert cfg.command_timeout == 0.5 and cfg.backend == "postgres"
    assert cfg.url == "postgresql://app:pw@db:5432/main?ssl=require"  # own params consumed, driver's kept
    assert "pw" not in repr(cfg) and "***" in repr(cfg)
    lite_cfg = SqlStoreConfig.from_url("sqlite+aiosqlite:////tmp/x.db?synchronous=NORMAL&busy_timeout=1s")
    assert (lite_cfg.synchronous, lite_cfg.busy_timeout, lite_cfg.url) == ("normal", 1.0, "sqlite+aiosqlite:////tmp/x.db")
    assert SqlStoreConfig.from_url("mariadb://root@h/db").backend == "mysql"
    assert isinstance(store_config("mysql+aiomysql://root@h/db?pool_size=2"), SqlStoreConfig)


@pytest.mark.parametrize(
    "url",
    [
        "postgresql://h/db?pool_sise=3",  # typo
        "sqlite:///x.db?ssl=require",  # a driver option of another backend
        "sqlite:///x.db?command_timeout=1",  # SQLite's waits are bounded by busy_timeout
        "mysql://h/db?command_timeout=-1s",
        "postgresql://h/db?pool_size=0",
        "sqlite:///x.db?synchronous=sometimes",
        "postgresql+psycopg://h/db",
        "oracle://h/db",
    ],
)
def test_config_rejects(url: str) -> None:
    with pytest.raises(ConfigError):
        SqlStoreConfig.from_url(url)


def test_config_errors_hide_the_password() -> None:
    with pytest.raises(ConfigError) as info:
        SqlStoreConfig.from_url("postgresql://u:hunter2@h/db?nope=1")
    assert "hunter2" not in str(info.value)


def test_config_is_frozen() -> None:
    cfg = SqlStoreConfig(url="sqlite://")
    with pytest.raises(AttributeError):
        cfg.pool_size = 3  # type: ignore[misc]


def test_command_timeout_has_a_default_deadline() -> None:
    for url in ("postgresql://h/db", "mysql://h/db"):
        assert SqlStoreConfig.from_url(url).command_timeout == 30.0
        assert SqlStoreConfig.from_url(url + "?command_timeout=none").command_timeout is None
        assert SqlStoreConfig.from_url(url + "?command_timeout=2s").command_timeout == 2.0
    with pytest.raises(ConfigError):
        SqlStoreConfig(url="sqlite:///x.db", command_timeout=5.0)
    with pytest.raises(ConfigError):
        SqlStoreConfig(url="postgresql://h/db", command_timeout=0)
