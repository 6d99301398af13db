"""``SqlStoreConfig``: the SQL store's URL and its parameters, checked before any connection is made.

One URL names the database and tunes the store (``?pool_size=10&pool_timeout=2s``); the store's own
parameters are consumed here, the client's options it knows (TLS, a socket path) stay in the URL for the
driver, and anything else is a ``ConfigError`` naming the allowed parameters, with the password redacted.
"""

from __future__ import annotations

import re
from dataclasses import dataclass, field
from typing import TYPE_CHECKING, Any
from urllib.parse import parse_qsl, urlencode

from tierstore.config import normalize_credentials, parse_duration, query_params, redact_url
from tierstore.errors import ConfigError

if TYPE_CHECKING:
    from tierstore.stores.sql.store import SqlStore

__all__ = ["DEFAULT_COMMAND_TIMEOUT", "SqlStoreConfig", "not_run", "split_query"]

_BACKENDS = {
    "sqlite": "sqlite",
    "sqlite+aiosqlite": "sqlite",
    "sqlite+pysqlite": "sqlite",
    "postgresql": "postgres",
    "postgresql+asyncpg": "postgres",
    "postgres": "postgres",
    "mysql": "mysql",
    "mysql+aiomysql": "mysql",
    "mariadb": "mysql",
    "mariadb+aiomysql": "mysql",
}
_COMMON = {"pool_size", "pool_timeout", "pool_recycle", "page_size", "connect_timeout"}
_OWN = {
    "sqlite": _COMMON | {"busy_timeout", "synchronous"},
    "postgres": _COMMON | {"command_timeout", "pg_schema"},
    "mysql": _COMMON | {"command_timeout"},
}
# Driver options passed through to the connection (anything else is a typo: ConfigError).
_PASS_THROUGH = {
    "sqlite": frozenset(),
    "postgres": frozenset({"ssl", "sslmode"}),
    "mysql": frozenset({"ssl_ca", "ssl_cert", "ssl_key", "ssl_check_hostname", "unix_socket"}),
}
_SYNCHRONOUS = ("off", "normal", "full", "extra")
_PG_SCHEMA = re.compile(r"[A-Za-z_][A-Za-z0-9_$]{0,62}\Z")
DEFAULT_COMMAND_TIMEOUT = 30.0
"""Deadline of one statement on PostgreSQL and MariaDB/MySQL unless the URL or config says otherwise."""


_NOT_RUN = {"mssql": "SQL Server", "oracle": "Oracle"}
NOT_RUN_REASON = (
    "SqlStore's writes are one atomic upsert returning the new version (INSERT … ON CONFLICT … RETURNING on "
    "PostgreSQL and SQLite, INSERT … ON DUPLICATE KEY UPDATE on MySQL/MariaDB); on {name} it is a MERGE "
    "({returning}), which tierstore compiles (tierstore.stores.sql.merge) but has never run against a server, "
    "and the store's partial updates have no {name} statements nor is an async driver wired in."
    " metadata_for(..., dialect={dialect!r}) gives its tables for migrations (see docs/sql-engines.md)"
)


def not_run(dialect: str) -> str:
    """Why ``SqlStore`` does not run on SQL Server or Oracle (their tables and MERGE statements compile only)."""
    returning = (
        "OUTPUT returns the versions" if dialect == "mssql" else "no RETURNING: the versions are read back"
    )
    return NOT_RUN_REASON.format(name=_NOT_RUN[dialect], returning=returning, dialect=dialect)


def _backend_of(url: str) -> str:
    if not isinstance(url, str) or "://" not in url:
        raise ConfigError(f"expected an SQL URL like 'postgresql+asyncpg://host/db', got {redact_url(str(url))!r}")
    scheme = url.split("://", 1)[0].lower()
    backend = _BACKENDS.get(scheme)
    dialect = scheme.split("+", 1)[0]
    if backend is None and dialect in _NOT_RUN:
        raise ConfigError(
            f"SqlStore does not run on {_NOT_RUN[dialect]} ({scheme!r}): {not_run(dialect)}; "
            "use sqlite+aiosqlite, postgresql+asyncpg or mysql+aiomysql"
        )
    if backend is None:
        raise ConfigError(
            f"SqlStore does not support {scheme!r}; use sqlite+aiosqlite, postgresql+asyncpg or mysql+aiomysql"
        )
    return backend



def split_query(url: str) -> tuple[str, dict[str, str]]:
    # Not urlunsplit: it turns sqlite:////abs/path (empty host) into sqlite://abs/path.
    base, _, query = url.partition("?")
    return base, dict(parse_qsl(query, keep_blank_values=True))


def _positive_int(value: str | int, what: str) -> int:
    try:
        n = int(value)
    except (TypeError, ValueError):
        raise ConfigError(f"{what}: expected an integer, got {value!r}") from None
    if n < 1:
        raise ConfigError(f"{what}: must be at least 1, got {n}")
    return n


_SSLMODES = ("disable", "allow", "prefer", "require", "verify-ca", "verify-full")


def _sslmode(params: dict[str, str]) -> dict[str, str]:
    """libpq's ``sslmode=`` (as RDS, Heroku and psql URLs spell it) becomes asyncpg's ``ssl=``, which takes
    the same modes (https://www.postgresql.org/docs/current/libpq-ssl.html)."""
    rest = dict(params)
    mode = rest.pop("sslmode").lower()
    if mode not in _SSLMODES:
        raise ConfigError(f"sslmode must be one of {', '.join(_SSLMODES)}; got {mode!r}")
    if rest.get("ssl", mode).lower() != mode:
        raise ConfigError(f"ssl={rest['ssl']!r} and sslmode={mode!r} disagree; give one of them")
    rest["ssl"] = mode
    return rest


@dataclass(frozen=True, slots=True, kw_only=True)
class SqlStoreConfig:
    """``sqlite+aiosqlite:///path.db``, ``postgresql+asyncpg://user:pw@host/db``, ``mysql+aiomysql://…``.

    URL parameters: ``pool_size`` (connections held; SQLite: worker threads), ``pool_timeout``,
    ``pool_recycle``, ``connect_timeout`` (durations like ``5s``), ``page_size`` (rows of a query page when
    no limit is given); PostgreSQL and MySQL ``command_timeout`` (deadline of one statement, 30 s by default;
    ``none`` or ``0``: no deadline; SQLite's waits are bounded by ``busy_timeout``); PostgreSQL ``ssl`` and
    ``pg_schema`` (the schema that holds the tables, instead of the search path's first);
    MySQL ``ssl_ca``/``ssl_cert``/
    ``ssl_key``/``ssl_check_hostname``/``unix_socket``; SQLite ``busy_timeout`` and ``synchronous``
    (``full`` by default: an acknowledged write survives power loss). Any other parameter is a ``ConfigError``.
    """

    url: str = field(repr=False)
    pool_size: int = 5
    pool_timeout: float = 30.0
    pool_recycle: float | None = None
    connect_timeout: float | None = 10.0
    command_timeout: float | None = DEFAULT_COMMAND_TIMEOUT
    page_size: int = 1000
    busy_timeout: float = 5.0
    synchronous: str = "full"
    pg_schema: str | None = None

    def __post_init__(self) -> None:
        backend = _backend_of(self.url)
        object.__setattr__(self, "url", normalize_credentials(self.url))
        _, params = split_query(self.url)
        unknown = set(params) - _PASS_THROUGH[backend]
        if unknown:
            allowed = sorted(_OWN[backend] | _PASS_THROUGH[backend])
            raise ConfigError(
                f"unknown parameter(s) {sorted(unknown)} in {redact_url(self.url)!r}; allowed: {allowed}"
            )
        for name in ("pool_size", "page_size"):
            value = getattr(self, name)
            if not isinstance(value, int) or isinstance(value, bool) or value < 1:
                raise ConfigError(f"{name} must be a positive int, got {value!r}")
        if self.synchronous not in _SYNCHRONOUS:
            raise ConfigError(f"synchronous must be one of {_SYNCHRONOUS}, got {self.synchronous!r}")
        timeout = self.command_timeout
        bad = isinstance(timeout, bool) or not isinstance(timeout, int | float) or not timeout > 0
        if timeout is not None and bad:
            raise ConfigError(f"command_timeout must be a positive number of seconds or None, got {timeout!r}")
        if backend == "sqlite" and timeout not in (None, DEFAULT_COMMAND_TIMEOUT):
            raise ConfigError("SQLite has no command_timeout: busy_timeout bounds how long a write waits")
        if self.pg_schema is not None:
            if backend != "postgres":
                raise ConfigError("pg_schema is supported on PostgreSQL only (on MySQL the database is the schema)")
            if not isinstance(self.pg_schema, str) or not _PG_SCHEMA.match(self.pg_schema):
                raise ConfigError(f"pg_schema must be a schema name (letters, digits, _), got {self.pg_schema!r}")

    def __repr__(self) -> str:
        return (
            f"SqlStoreConfig(url={redact_url(self.url)!r}, pool_size={self.pool_size}, "
            f"pool_timeout={self.pool_timeout}, pool_recycle={self.pool_recycle}, "
            f"connect_timeout={self.connect_timeout}, command_timeout={self.command_timeout}, "
            f"page_size={self.page_size}, busy_timeout={self.busy_timeout}, synchronous={self.synchronous!r}, "
            f"pg_schema={self.pg_schema!r})"
        )

    @property
    def backend(self) -> str:
        """``sqlite``, ``postgres`` or ``mysql`` (MariaDB included)."""
        return _backend_of(self.url)

    @classmethod
    def from_url(cls, url: str) -> SqlStoreConfig:
        backend = _backend_of(url)
        url = normalize_credentials(url)
        base, _ = split_query(url)
        params = query_params(url, _OWN[backend] | _PASS_THROUGH[backend])
        own = {k: v for k, v in params.items() if k in _OWN[backend]}
        rest = {k: v for k, v in params.items() if k not in _OWN[backend]}
        kw: dict[str, Any] = {}
        for name in ("pool_size", "page_size"):
            if name in own:
                kw[name] = _positive_int(own[name], name)
        for name in ("pool_timeout", "busy_timeout"):
            if name in own:
                kw[name] = parse_duration(own[name], name)
        for name in ("pool_recycle", "connect_timeout", "command_timeout"):
            if name in own:
                kw[name] = parse_duration(own[name], name) if own[name] not in ("", "none") else None
        if kw.get("command_timeout") == 0:
            kw["command_timeout"] = None  # 0: no deadline
        if "pg_schema" in own:
            kw["pg_schema"] = own["pg_schema"]
        if "synchronous" in own:
            kw["synchronous"] = own["synchronous"].lower()
        if "sslmode" in rest:
            rest = _sslmode(rest)
        clean = base + ("?" + urlencode(rest) if rest else "")
        return cls(url=clean, **kw)

    def build(self) -> SqlStore:
        from tierstore.stores.sql.store import SqlStore

        return SqlStore(self)
