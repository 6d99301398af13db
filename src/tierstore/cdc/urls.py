"""Connection settings of a change source from a URL, with the password kept out of every repr and error."""

from __future__ import annotations

from dataclasses import dataclass, field
from urllib.parse import parse_qsl, unquote, urlsplit

from tierstore.config import normalize_credentials
from tierstore.errors import ConfigError

__all__ = ["Endpoint", "parse_endpoint"]


@dataclass(frozen=True, slots=True)
class Endpoint:
    scheme: str
    host: str
    port: int
    user: str
    password: str = field(repr=False)
    database: str
    params: dict[str, str] = field(default_factory=dict)

    def safe(self) -> str:
        """``scheme://user@host:port/database`` (no password): for identities, logs and errors."""
        return f"{self.scheme}://{self.user}@{self.host}:{self.port}/{self.database}"


def parse_endpoint(url: str, *, schemes: tuple[str, ...], default_port: int, default_user: str) -> Endpoint:
    """Host, port, user, password and database of ``url`` (``postgresql+asyncpg://u:p@h:5432/db?…``)."""
    if not isinstance(url, str) or "://" not in url:
        raise ConfigError("expected a database URL like 'postgresql://user@host:5432/db'")
    scheme = url.split("://", 1)[0].lower()
    base = scheme.split("+", 1)[0]
    if base not in schemes:
        raise ConfigError(f"expected a {'/'.join(schemes)} URL, got scheme {scheme!r}")
    parts = urlsplit(normalize_credentials(url))
    try:
        port = parts.port or default_port
    except ValueError:
        raise ConfigError(f"bad port in {scheme}:// URL") from None
    database = unquote(parts.path.lstrip("/"))
    return Endpoint(
        scheme=base,
        host=parts.hostname or "127.0.0.1",
        port=port,
        user=unquote(parts.username) if parts.username else default_user,
        password=unquote(parts.password) if parts.password else "",
        database=database,
        params=dict(parse_qsl(parts.query, keep_blank_values=True)),
    )
