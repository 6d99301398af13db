"""Backend configuration: URLs and typed config objects lead to the same frozen configs.

Each backend module defines a frozen config class with ``from_url(url)`` and ``build()``; this module maps
URL schemes to them and imports a backend only when it is used, so a missing extra fails with a message
naming the extra.
"""

from __future__ import annotations

import importlib
import importlib.util
import re
from typing import Any, Protocol, runtime_checkable
from urllib.parse import parse_qsl, urlsplit, urlunsplit

from tierstore.errors import ConfigError

__all__ = [
    "BackendConfig",
    "parse_bool",
    "parse_duration",
    "parse_int",
    "parse_size",
    "query_params",
    "redact_url",
    "require_extra",
    "store_config",
    "tier_config",
]

# scheme -> (module, config class, extra that installs its client library)
STORE_SCHEMES: dict[str, tuple[str, str, str | None]] = {
    "memory": ("tierstore.stores.memory", "MemoryStoreConfig", None),
    "sqlite": ("tierstore.stores.sql", "SqlStoreConfig", None),
    "sqlite+aiosqlite": ("tierstore.stores.sql", "SqlStoreConfig", None),
    "postgresql": ("tierstore.stores.sql", "SqlStoreConfig", "postgres"),
    "postgresql+asyncpg": ("tierstore.stores.sql", "SqlStoreConfig", "postgres"),
    "postgres": ("tierstore.stores.sql", "SqlStoreConfig", "postgres"),
    "mysql": ("tierstore.stores.sql", "SqlStoreConfig", "mysql"),
    "mysql+aiomysql": ("tierstore.stores.sql", "SqlStoreConfig", "mysql"),
    "mariadb": ("tierstore.stores.sql", "SqlStoreConfig", "mysql"),
    "mariadb+aiomysql": ("tierstore.stores.sql", "SqlStoreConfig", "mysql"),
    "dynamodb": ("tierstore.stores.dynamodb", "DynamoStoreConfig", "dynamodb"),
    "dax": ("tierstore.stores.dax", "DaxStoreConfig", "dax"),
    "daxs": ("tierstore.stores.dax", "DaxStoreConfig", "dax"),
}
TIER_SCHEMES: dict[str, tuple[str, str, str | None]] = {
    "memory": ("tierstore.tiers.memory", "MemoryTierConfig", None),
    "redis": ("tierstore.tiers.redis", "RedisTierConfig", "redis"),
    "rediss": ("tierstore.tiers.redis", "RedisTierConfig", "redis"),
    "redis+cluster": ("tierstore.tiers.redis", "RedisTierConfig", "redis"),
    "rediss+cluster": ("tierstore.tiers.redis", "RedisTierConfig", "redis"),
    "memcached": ("tierstore.tiers.memcached", "MemcachedTierConfig", "memcached"),
}


@runtime_checkable
class BackendConfig(Protocol):
    """A frozen backend config: parse once, build the backend object (not yet connected)."""

    def build(self) -> Any: ...


def _scheme(url: str) -> str:
    if not isinstance(url, str) or "://" not in url:
        raise ConfigError(f"expected a backend URL like 'redis://host:6379/0', got {redact_url(str(url))!r}")
    return url.split("://", 1)[0].lower()


def _load(table: dict[str, tuple[str, str, str | None]], url: str, what: str) -> Any:
    scheme = _scheme(url)
    entry = table.get(scheme)
    if entry is None:
        raise ConfigError(f"unknown {what} scheme {scheme!r}; known: {', '.join(sorted(table))}")
    module_name, class_name, extra = entry
    try:
        module = importlib.import_module(module_name)
    except ImportError as exc:
        hint = f"; install it with: pip install 'tierstore[{extra}]'" if extra else ""
        raise ConfigError(f"the {scheme} backend needs a client library that is missing ({exc.name}){hint}") from None
    return getattr(module, class_name).from_url(url)


# extra -> the client libraries it installs (top-level module names), checked before a backend is built.
EXTRA_MODULES: dict[str, tuple[str, ...]] = {
    "dynamodb": ("aioboto3", "botocore", "aiohttp"),
    "dax": ("amazondax", "aioboto3", "botocore", "boto3"),
    "postgres": ("asyncpg",),
    "mysql": ("aiomysql",),
    "redis": ("redis",),
    "memcached": ("aiomcache",),
}


def require_extra(extra: str, what: str) -> None:
    """Raise a ``ConfigError`` naming ``pip install 'tierstore[extra]'`` unless every client library of
    ``extra`` can be imported. ``what`` names the backend in the message. Looks modules up, imports none."""
    for name in EXTRA_MODULES[extra]:
        try:
            found = importlib.util.find_spec(name) is not None
        except (ImportError, ValueError):
            found = False
        if not found:
            raise ConfigError(
                f"the {what} backend needs a client library that is missing ({name}); "
                f"install it with: pip install 'tierstore[{extra}]'"
            )


def store_config(url: str) -> BackendConfig:
    """Parse a store URL into its frozen config."""
    return _load(STORE_SCHEMES, url, "store")  # type: ignore[no-any-return]


def tier_config(url: str) -> BackendConfig:
    """Parse a cache-tier URL into its frozen config."""
    return _load(TIER_SCHEMES, url, "cache")  # type: ignore[no-any-return]


def redact_url(url: str) -> str:
    """The URL with any password replaced by ``***`` (safe for logs, reprs and errors)."""
    try:
        parts = urlsplit(url)
    except ValueError:
        return "<unparseable url>"
    if parts.password is None:
        return url
    netloc = parts.netloc.rsplit("@", 1)
    user = parts.username or ""
    host = netloc[1] if len(netloc) == 2 else ""
    return urlunsplit(parts._replace(netloc=f"{user}:***@{host}"))


def query_params(url: str, allowed: set[str]) -> dict[str, str]:
    """Query parameters of ``url``; an unknown one is a ``ConfigError`` (typos must not pass silently)."""
    params = dict(parse_qsl(urlsplit(url).query, keep_blank_values=True))
    unknown = set(params) - allowed
    if unknown:
        raise ConfigError(
            f"unknown parameter(s) {sorted(unknown)} in {redact_url(url)!r}; allowed: {sorted(allowed)}"
        )
    return params


_DURATION = re.compile(r"\s*(\d+(?:\.\d+)?)\s*(ms|s|m|h|d)?\s*\Z")
_UNITS = {"ms": 0.001, "s": 1.0, "m": 60.0, "h": 3600.0, "d": 86400.0, None: 1.0}


def parse_duration(value: str | float | int, what: str = "duration") -> float:
    """Seconds from ``1.5``, ``"300ms"``, ``"5m"``, ``"2h"``, ``"1d"``."""
    if isinstance(value, bool):
        raise ConfigError(f"{what}: expected a duration, got {value!r}")
    if isinstance(value, int | float):
        seconds = float(value)
    else:
        m = _DURATION.match(value)
        if not m:
            raise ConfigError(f"{what}: cannot read {value!r} as a duration (e.g. 300ms, 5s, 2m)")
        seconds = float(m.group(1)) * _UNITS[m.group(2)]
    if seconds < 0:
        raise ConfigError(f"{what}: must not be negative")
    return seconds


_SIZE = re.compile(r"\s*(\d+)\s*(b|kb|kib|mb|mib|gb|gib)?\s*\Z", re.IGNORECASE)
_SIZES = {None: 1, "b": 1, "kb": 1000, "kib": 1024, "mb": 10**6, "mib": 2**20, "gb": 10**9, "gib": 2**30}


def parse_size(value: str | int, what: str = "size") -> int:
    """Bytes from ``4096``, ``"64MiB"``, ``"10kb"``."""
    if isinstance(value, int) and not isinstance(value, bool):
        return value
    m = _SIZE.match(str(value))
    if not m:
        raise ConfigError(f"{what}: cannot read {value!r} as a size (e.g. 64MiB)")
    unit = m.group(2).lower() if m.group(2) else None
    return int(m.group(1)) * _SIZES[unit]


def parse_int(value: str, what: str) -> int:
    """An integer URL parameter; anything else is a ``ConfigError`` naming ``what``."""
    try:
        return int(value)
    except ValueError:
        raise ConfigError(f"{what}: expected an integer, got {value!r}") from None


def parse_bool(value: str, what: str) -> bool:
    """``1/true/yes/on`` or ``0/false/no/off`` (any case); anything else is a ``ConfigError``."""
    v = value.lower()
    if v in ("1", "true", "yes", "on"):
        return True
    if v in ("0", "false", "no", "off"):
        return False
    raise ConfigError(f"{what}: expected true/false, got {value!r}")
