"""The OpenTelemetry attributes of tierstore's spans and metrics: which database system a store or a tier is,
where its server is, and what an error is called.

Names follow the stable database semantic conventions
(https://opentelemetry.io/docs/specs/semconv/database/database-spans/): ``db.system.name``,
``db.collection.name``, ``db.operation.name``, ``db.operation.batch.size``, ``server.address``,
``server.port``, ``error.type``. Cache details, which the conventions do not cover, are under
``tierstore.cache.*``. Computed once per store and tier, never per operation.
"""

from __future__ import annotations

from typing import Any
from urllib.parse import urlsplit

__all__ = ["error_type", "server_of", "store_system", "tier_system"]

# SqlStore.name / Store.name -> db.system.name (a well-known value where the conventions have one)
_STORE_SYSTEMS = {
    "postgres": "postgresql",
    "mysql": "mysql",
    "sqlite": "sqlite",
    "dynamodb": "aws.dynamodb",
    "dax": "aws.dynamodb",
    "memory": "tierstore.memory",
}
_TIER_SYSTEMS = {"redis": "redis", "redis-cluster": "redis", "memcached": "memcached", "memory": "tierstore.memory"}


def store_system(store: Any) -> str:
    name = str(getattr(store, "name", "other"))
    if name == "mysql":
        url = str(getattr(getattr(store, "config", None), "url", ""))
        if url.lower().startswith("mariadb"):
            return "mariadb"
    if name.startswith("sharded-"):
        name = name.split("-", 1)[1]
    return _STORE_SYSTEMS.get(name, "other_sql" if name == "sql" else f"tierstore.{name}")


def tier_system(tier: Any) -> str:
    name = str(getattr(tier, "name", "other"))
    return _TIER_SYSTEMS.get(name, f"tierstore.{name}")


def server_of(store: Any) -> dict[str, Any]:
    """``server.address``/``server.port`` of a store with one server (none for in-process stores)."""
    config = getattr(store, "config", None)
    url = getattr(config, "endpoint_url", None) or getattr(config, "url", None)
    if isinstance(url, str) and "://" in url and not url.lower().startswith("sqlite"):
        try:
            parts = urlsplit(url)
            host, port = parts.hostname, parts.port
        except ValueError:
            return {}
        out: dict[str, Any] = {}
        if host:
            out["server.address"] = host
        if port:
            out["server.port"] = port
        return out
    region = getattr(config, "region", None)
    if getattr(store, "name", None) == "dynamodb" and region:
        return {"server.address": f"dynamodb.{region}.amazonaws.com"}
    return {}


def error_type(exc: BaseException) -> str:
    """``error.type``: the exception's class name (``ConditionFailed``, ``TierError``, ``TimeoutError``…)."""
    return type(exc).__qualname__
