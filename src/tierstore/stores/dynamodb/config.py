"""``DynamoStoreConfig``: the frozen configuration of a DynamoDB store, from keywords or a ``dynamodb://`` URL."""

from __future__ import annotations

import re
from dataclasses import dataclass, field
from typing import TYPE_CHECKING, Any, Literal
from urllib.parse import unquote, urlsplit

from tierstore.errors import ConfigError
from tierstore.retry import Backoff

if TYPE_CHECKING:
    from tierstore.stores.dynamodb.store import DynamoStore

__all__ = ["DynamoStoreConfig"]


@dataclass(frozen=True, slots=True, kw_only=True)
class DynamoStoreConfig:
    """``dynamodb://REGION?endpoint_url=…&table_prefix=…&billing=on_demand|provisioned&consistent=false``.

    Other parameters: ``read_capacity``/``write_capacity`` (provisioned billing), ``fast_path`` (the raw wire
    transport, default true), ``coalesce`` (batch concurrent gets, default true), ``max_connections``,
    ``connect_timeout``, ``timeout``, ``attempts``, ``backoff_base``, ``backoff_cap``, ``profile``,
    ``schema_timeout``. Credentials come from the AWS chain (environment, profile, instance role…), from
    ``dynamodb://KEY_ID:SECRET@REGION`` or from the keyword arguments; a loopback endpoint without any uses
    dummy ones (DynamoDB Local ignores them).
    """

    region: str | None = None
    endpoint_url: str | None = None
    table_prefix: str = ""
    billing: Literal["on_demand", "provisioned"] = "on_demand"
    read_capacity: int = 5
    write_capacity: int = 5
    consistent: bool = False
    fast_path: bool = True
    coalesce: bool = True
    max_connections: int = 64
    connect_timeout: float = 2.0
    timeout: float = 10.0
    backoff: Backoff = field(default_factory=Backoff)
    write_concurrency: int = 16
    schema_timeout: float = 300.0
    profile: str | None = None
    aws_access_key_id: str | None = None
    aws_secret_access_key: str | None = field(default=None, repr=False)
    aws_session_token: str | None = field(default=None, repr=False)

    def __post_init__(self) -> None:
        if self.billing not in ("on_demand", "provisioned"):
            raise ConfigError(f"billing must be on_demand or provisioned, got {self.billing!r}")
        if self.read_capacity < 1 or self.write_capacity < 1:
            raise ConfigError("read_capacity and write_capacity must be >= 1")
        if self.max_connections < 1 or self.write_concurrency < 1:
            raise ConfigError("max_connections and write_concurrency must be >= 1")
        if self.table_prefix and not re.fullmatch(r"[A-Za-z0-9_.\-]+", self.table_prefix):
            raise ConfigError(f"table_prefix {self.table_prefix!r} may hold only letters, digits, _ . -")

    @classmethod
    def from_url(cls, url: str) -> DynamoStoreConfig:
        from tierstore.config import (
            normalize_credentials,
            parse_bool,
            parse_duration,
            parse_int,
            query_params,
            redact_url,
        )

        url = normalize_credentials(url)  # a secret holding a raw '/' must not end the authority early
        parts = urlsplit(url)
        if parts.scheme.lower() != "dynamodb":
            raise ConfigError(f"not a dynamodb:// URL: {redact_url(url)!r}")
        try:
            port = parts.port
        except ValueError:
            port = -1
        if port is not None or parts.path not in ("", "/"):
            raise ConfigError(
                f"a dynamodb:// URL is dynamodb://[KEY_ID:SECRET@]REGION?…, with no port or path: "
                f"{redact_url(url)!r} (percent-encode '/', '?', '#', '@' inside the secret, or pass "
                "aws_secret_access_key=)"
            )
        p = query_params(url, {
            "endpoint_url", "table_prefix", "billing", "read_capacity", "write_capacity", "consistent",
            "fast_path", "coalesce", "max_connections", "connect_timeout", "timeout", "attempts",
            "backoff_base", "backoff_cap", "profile", "schema_timeout", "write_concurrency",
        })
        kw: dict[str, Any] = {}
        region = parts.hostname
        if region:
            if not re.fullmatch(r"[a-z0-9-]+", region):
                raise ConfigError(f"{region[:40]!r} is not an AWS region name (in {redact_url(url)!r})")
            kw["region"] = region
        if parts.username or parts.password:
            if not (parts.username and parts.password):
                raise ConfigError("credentials in a dynamodb:// URL are KEY_ID:SECRET@REGION; one of them is missing")
            kw["aws_access_key_id"] = unquote(parts.username)
            kw["aws_secret_access_key"] = unquote(parts.password)
        for name in ("endpoint_url", "table_prefix", "profile"):
            if name in p:
                kw[name] = p[name]
        if "billing" in p:
            billing = p["billing"].lower()
            kw["billing"] = "on_demand" if billing in ("on_demand", "pay_per_request") else billing
        for name in ("read_capacity", "write_capacity", "max_connections", "write_concurrency"):
            if name in p:
                kw[name] = parse_int(p[name], name)
        for name in ("consistent", "fast_path", "coalesce"):
            if name in p:
                kw[name] = parse_bool(p[name], name)
        for name in ("connect_timeout", "timeout", "schema_timeout"):
            if name in p:
                kw[name] = parse_duration(p[name], name)
        if {"attempts", "backoff_base", "backoff_cap"} & set(p):
            default = Backoff()
            kw["backoff"] = Backoff(
                attempts=parse_int(p["attempts"], "attempts") if "attempts" in p else default.attempts,
                base=parse_duration(p["backoff_base"], "backoff_base") if "backoff_base" in p else default.base,
                cap=parse_duration(p["backoff_cap"], "backoff_cap") if "backoff_cap" in p else default.cap,
            )
        return cls(**kw)

    def build(self) -> DynamoStore:
        from tierstore.config import require_extra
        from tierstore.stores.dynamodb.store import DynamoStore

        require_extra("dynamodb", "dynamodb")

        return DynamoStore(self)
