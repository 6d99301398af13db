"""Where a test's real servers are, and how to put a fault-injecting proxy in front of one.

Server URLs come from ``TIERSTORE_*`` environment variables (the names tierstore's own suite and
``tierstore bench`` read), so one set of exports points every suite at the same servers. A service's tests
skip, with the variable's name as the reason, when it is not set. Standard library only.
"""

from __future__ import annotations

import os
from urllib.parse import parse_qsl, urlencode, urlsplit, urlunsplit

from tierstore.config import redact_url
from tierstore.errors import ConfigError
from tierstore.testing.proxy import FaultProxy

__all__ = ["SERVER_VARIABLES", "ProxiedServer", "proxied_url", "server_url", "with_params"]

# server name -> the environment variable holding its URL
SERVER_VARIABLES: dict[str, str] = {
    "postgres": "TIERSTORE_PG_URL",
    "mysql": "TIERSTORE_MYSQL_URL",
    "dynamodb": "TIERSTORE_DYNAMODB_URL",
    "redis": "TIERSTORE_REDIS_URL",
    "redis_cluster": "TIERSTORE_REDIS_CLUSTER_URL",
    "memcached": "TIERSTORE_MEMCACHED_URL",
}


def server_url(name: str) -> str | None:
    """The URL of server ``name`` (a key of :data:`SERVER_VARIABLES`) from the environment, or ``None``."""
    variable = SERVER_VARIABLES.get(name)
    if variable is None:
        raise ConfigError(f"unknown server {name!r}; known: {', '.join(SERVER_VARIABLES)}")
    return os.environ.get(variable) or None


def with_params(url: str, **params: object) -> str:
    """``url`` with query parameters added or replaced (``with_params(url, prefix="t1", timeout="1s")``)."""
    base, _, query = url.partition("?")
    merged = dict(parse_qsl(query, keep_blank_values=True))
    merged.update({k: str(v) for k, v in params.items()})
    return base + ("?" + urlencode(merged) if merged else "")


def _endpoint(url: str) -> tuple[str, str]:
    """(``where``, ``host:port``): the one network address of ``url`` — its ``endpoint_url`` parameter
    (DynamoDB) or its netloc."""
    query = dict(parse_qsl(urlsplit(url).query, keep_blank_values=True))
    target = query.get("endpoint_url") or url
    netloc = urlsplit(target).netloc.rsplit("@", 1)[-1]
    if not netloc or "," in netloc:
        raise ConfigError(f"a fault proxy stands in front of one server; {redact_url(url)!r} names {netloc!r}")
    return ("endpoint_url" if "endpoint_url" in query else "netloc"), netloc


def proxied_url(url: str, host: str, port: int) -> str:
    """``url`` pointed at ``host:port`` instead of its own server (credentials and parameters kept)."""
    where, _ = _endpoint(url)
    if where == "endpoint_url":
        parts = urlsplit(url)
        query = dict(parse_qsl(parts.query, keep_blank_values=True))
        query["endpoint_url"] = proxied_url(query["endpoint_url"], host, port)
        return urlunsplit(parts._replace(query=urlencode(query, safe=":/")))
    scheme, _, rest = url.partition("://")
    netloc, sep, tail = rest.partition("/") if "/" in rest.split("?", 1)[0] else rest.partition("?")
    userinfo = netloc.rsplit("@", 1)[0] + "@" if "@" in netloc else ""
    return f"{scheme}://{userinfo}{host}:{port}{sep}{tail}"


def _host_port(netloc: str) -> tuple[str, int]:
    host, _, port = netloc.rpartition(":")
    if not host or not port.isdigit():
        raise ConfigError(f"a fault proxy needs an explicit host:port, got {netloc!r}")
    return host.strip("[]"), int(port)


class ProxiedServer(FaultProxy):
    """A :class:`FaultProxy` in front of the server of one URL; :attr:`url` is that URL through the proxy."""

    def __init__(self, url: str) -> None:
        _, netloc = _endpoint(url)
        host, port = _host_port(netloc)
        super().__init__(host, port)
        self.target_url = url
        self.url = url

    async def start(self) -> None:
        await super().start()
        self.url = proxied_url(self.target_url, self.host, self.port)

    def __repr__(self) -> str:
        return f"ProxiedServer({redact_url(self.target_url)!r} via {self.host}:{self.port})"
