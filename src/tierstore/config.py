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
from urllib.parse import parse_qsl, quote, urlsplit

from tierstore.errors import ConfigError

__all__ = [
    "BackendConfig",
    "normalize_credentials",
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
    if entry is None and table is STORE_SCHEMES and scheme.split("+", 1)[0] in ("mssql", "oracle"):
        entry = ("tierstore.stores.sql", "SqlStoreConfig", None)  # which says why SqlStore does not run there
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


# What may follow the ``@`` that ends the credentials: hosts, then an optional path, query and fragment.
_AFTER_USERINFO = re.compile(r"[^/?#@]*(?:/[^?#]*)?(?:\?[^#]*)?(?:#.*)?\Z", re.DOTALL)
_PORTS = re.compile(r"\d*(?:,[^,@/?#]*)*\Z")  # the tail of ``host:port`` or ``h1:p1,h2:p2``
_SECRET_PARAM = re.compile(r"(?i)([?&][^=&#]*(?:password|passwd|secret|token)[^=&#]*=)([^&#]*)")


def _userinfo_end(url: str) -> tuple[int, int] | None:
    """``(start, end)`` of the credentials in ``url`` (``end`` is the index of the ``@`` closing them), or None.

    A well-formed URL's credentials end at the last ``@`` of its authority (up to the first ``/``, ``?`` or
    ``#``). A password holding a raw ``/``, ``?`` or ``#`` ends that authority early (``u:pa/ss@host`` reads
    as host ``u``, port ``pa``), so when the authority has no ``@`` but a ``user:pass`` shape (its part after
    the first ``:`` is not a port list), the credentials run to a later ``@`` followed by what a URL can hold
    after them (hosts, path, query): the last such ``@`` unless a query parameter (``=``) comes before it."""
    sep = url.find("://")
    start = sep + 3 if sep >= 0 else 0
    rest = url[start:]
    cut = min((i for i in (rest.find(c) for c in "/?#") if i >= 0), default=len(rest))
    authority = rest[:cut]
    if "@" in authority:
        return start, start + authority.rindex("@")
    user, colon, tail = authority.partition(":")
    if not colon or _PORTS.match(tail) or any(c in user for c in "/?#"):
        return None
    ends = [i for i, c in enumerate(rest) if c == "@" and i > cut and _AFTER_USERINFO.match(rest, i + 1)]
    if not ends:
        return None
    at = ends[0]
    for later in ends[1:]:
        if "=" in rest[at:later]:
            break  # the later ``@`` is inside a query parameter (``?endpoint_url=http://u@h``)
        at = later  # the password holds an ``@`` too
    return start, start + at


def normalize_credentials(url: str) -> str:
    """``url`` with raw ``/ ? # @`` inside its user name and password percent-encoded, so every URL parser
    (``urllib``, SQLAlchemy, the client libraries) reads the same host and the same secret; unchanged when
    the URL is well-formed."""
    span = _userinfo_end(url)
    if span is None:
        return url
    start, end = span
    userinfo = url[start:end]
    if not any(c in userinfo for c in "/?#@"):
        return url
    user, colon, password = userinfo.partition(":")
    encoded = quote(user, safe="%!$&'()*+,;=") + colon + quote(password, safe="%!$&'()*+,;=:")
    return url[:start] + encoded + url[end:]


def redact_url(url: str) -> str:
    """``url`` with any password replaced by ``***`` (safe for logs, reprs and errors).

    Works on any string, well-formed or not: the password is found as :func:`normalize_credentials` finds it,
    and when an ``@`` still follows (a password holding ``@`` as well as ``/``), everything up to the last
    ``@`` is hidden. Query parameters named like a secret (``password``, ``secret``, ``token``) are hidden too."""
    text = url if isinstance(url, str) else str(url)
    span = _userinfo_end(text)
    if span is not None:
        start, end = span
        user, colon, _ = text[start:end].partition(":")
        rest = text[end:]
        if colon and "@" in rest[1:] and ":" not in user:
            # ``u:p@a/b@host``: the first reading may stop at an ``@`` inside the password; hide up to the last.
            last = text.rindex("@")
            end, rest = last, text[last:]
        if colon:
            text = text[:start] + user + ":***" + rest
    elif "://" in text and "@" in text.split("://", 1)[1]:
        # No reading finds the credentials, but an ``@`` is there: hide everything up to the last one.
        scheme, _, rest = text.partition("://")
        if ":" in rest[: rest.rindex("@")]:
            text = f"{scheme}://***{rest[rest.rindex('@'):]}"
    return _SECRET_PARAM.sub(r"\1***", text)


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
