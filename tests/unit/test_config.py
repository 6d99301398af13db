from __future__ import annotations

import subprocess
import sys

import pytest

import tierstore
from tierstore import ConfigError, MemoryStore
from tierstore.config import parse_duration, parse_size, redact_url, store_config, tier_config


@pytest.mark.parametrize(
    ("text", "seconds"), [("1.5", 1.5), ("300ms", 0.3), ("5s", 5), ("2m", 120), ("1h", 3600), ("1d", 86400), (3, 3.0)]
)
def test_durations(text: str | int, seconds: float) -> None:
    assert parse_duration(text) == pytest.approx(seconds)


@pytest.mark.parametrize("bad", ["", "abc", "5 weeks", "-1s", True])
def test_bad_durations(bad: object) -> None:
    with pytest.raises(ConfigError):
        parse_duration(bad)  # type: ignore[arg-type]


def test_sizes() -> None:
    assert parse_size("64MiB") == 64 * 2**20 and parse_size("10kb") == 10_000 and parse_size(7) == 7
    with pytest.raises(ConfigError):
        parse_size("lots")


def test_redaction() -> None:
    assert redact_url("redis://user:hunter2@h:6379/0") == "redis://user:***@h:6379/0"
    assert redact_url("postgresql+asyncpg://app:s3cr%40t@db/app") == "postgresql+asyncpg://app:***@db/app"
    assert redact_url("memory://") == "memory://"


def test_unknown_scheme_and_garbage() -> None:
    with pytest.raises(ConfigError, match="unknown store scheme"):
        store_config("db2://x")
    with pytest.raises(ConfigError, match="unknown cache scheme"):
        tier_config("postgresql://x")
    with pytest.raises(ConfigError, match="expected a backend URL"):
        tierstore.connect("not a url")
    with pytest.raises(ConfigError):
        tierstore.connect(MemoryStore(), [42])  # type: ignore[list-item]


def test_secret_never_in_errors() -> None:
    with pytest.raises(ConfigError) as info:
        store_config("memory://u:hunter2@x?nope=1")
    assert "hunter2" not in str(info.value)


def test_import_does_no_work() -> None:
    code = (
        "import sys, threading, logging; import tierstore; "
        "assert threading.active_count() == 1; "
        "assert not logging.getLogger('tierstore').handlers; "
        "heavy = [m for m in ('sqlalchemy', 'redis', 'aiomcache', 'aioboto3', 'botocore') if m in sys.modules]; "
        "assert not heavy, heavy"
    )
    subprocess.run([sys.executable, "-c", code], check=True)


def test_ping_true_means_the_default_interval_and_cannot_be_turned_off() -> None:
    pytest.importorskip("redis")
    assert tier_config("redis://127.0.0.1?ping=true").ping == 1.0  # type: ignore[attr-defined]
    assert tier_config("redis://127.0.0.1?ping=250ms").ping == 0.25  # type: ignore[attr-defined]
    with pytest.raises(ConfigError, match="cannot be turned off"):
        tier_config("redis://127.0.0.1?ping=false")
    with pytest.raises(ConfigError, match="must be > 0"):
        tier_config("redis://127.0.0.1?ping=0")


def test_postgres_sslmode_is_asyncpg_ssl() -> None:
    for mode in ("disable", "allow", "prefer", "require", "verify-ca", "verify-full"):
        cfg = store_config(f"postgresql+asyncpg://app:pw@db/app?sslmode={mode}&pool_size=2")
        assert cfg.url.endswith(f"?ssl={mode}"), cfg  # type: ignore[attr-defined]
    with pytest.raises(ConfigError, match="sslmode must be one of"):
        store_config("postgresql+asyncpg://app@db/app?sslmode=sometimes")
    with pytest.raises(ConfigError, match="disagree"):
        store_config("postgresql+asyncpg://app@db/app?sslmode=require&ssl=disable")
    with pytest.raises(ConfigError, match="unknown parameter"):
        store_config("mysql+aiomysql://app@db/app?sslmode=require")  # libpq's spelling is PostgreSQL's only
