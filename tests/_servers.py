"""Where the test servers are and how to open a database on them: found from environment variables.

A server that is down fails the test in CI (``CI`` set) and skips it locally, with the reason.
Endpoints default to what ``scripts/services`` and this machine start. ``MATRIX`` is every store × tier.
"""

from __future__ import annotations

import os
import socket
import uuid
from urllib.parse import urlsplit

import pytest

import tierstore
from tierstore import CachePolicy, ConfigError
from tierstore.backends import schema_of

PG_URL = os.environ.get("TIERSTORE_PG_URL", "postgresql+asyncpg://postgres@127.0.0.1:5432/test")
MYSQL_URL = os.environ.get("TIERSTORE_MYSQL_URL", "mysql+aiomysql://root@127.0.0.1:3306/test")
REDIS_URL = os.environ.get("TIERSTORE_REDIS_URL", "redis://127.0.0.1:6379/0")
REDIS_CLUSTER_URL = os.environ.get(
    "TIERSTORE_REDIS_CLUSTER_URL", "redis+cluster://127.0.0.1:7001,127.0.0.1:7002,127.0.0.1:7003"
)
MEMCACHED_URL = os.environ.get("TIERSTORE_MEMCACHED_URL", "memcached://127.0.0.1:11211,127.0.0.1:11212")
DYNAMODB_URL = os.environ.get("TIERSTORE_DYNAMODB_URL", "dynamodb://us-east-1?endpoint_url=http://127.0.0.1:8000")
if "connect_timeout" not in DYNAMODB_URL:
    # DynamoDB Local is a JVM on a 2-core machine: in a loaded CI run a new connection can take longer than the
    # production default (2 s) to be accepted; the suites check behaviour, not latency.
    DYNAMODB_URL += f"{'&' if '?' in DYNAMODB_URL else '?'}connect_timeout=10s"
IN_CI = bool(os.environ.get("CI"))


def endpoints(url: str) -> list[tuple[str, int]]:
    if "endpoint_url=" in url:
        url = url.split("endpoint_url=", 1)[1].split("&", 1)[0]
    netloc = urlsplit(url).netloc.rsplit("@", 1)[-1]
    out = []
    for hostport in netloc.split(","):
        host, _, port = hostport.rpartition(":")
        out.append((host or "127.0.0.1", int(port)))
    return out


def require(url: str, what: str) -> None:
    """Fail (CI) or skip (locally) unless every endpoint of ``url`` accepts TCP connections."""
    for host, port in endpoints(url):
        try:
            with socket.create_connection((host, port), timeout=1.0):
                pass
        except OSError as exc:
            msg = f"{what} at {host}:{port} is not reachable ({exc}); run scripts/services start"
            if IN_CI:
                pytest.fail(msg)
            pytest.skip(msg)


STORES = {
    "memory": (None, None),
    "sqlite": (None, "sqlite"),
    "postgres": (PG_URL, "postgres"),
    "mysql": (MYSQL_URL, "mysql"),
    "dynamodb": (DYNAMODB_URL, "dynamodb"),
}
TIERS = {
    "none": (),
    "memory": ("memory",),
    "redis": ("redis",),
    "redis_cluster": ("redis_cluster",),
    "memcached": ("memcached",),
    "memory+redis": ("memory", "redis"),
    "memory+memcached": ("memory", "memcached"),
}
TIER_URLS = {"redis": REDIS_URL, "redis_cluster": REDIS_CLUSTER_URL, "memcached": MEMCACHED_URL}


def store_url(name: str, tmp_path: os.PathLike[str]) -> str:
    if name == "memory":
        return "memory://"
    if name == "sqlite":
        return f"sqlite+aiosqlite:///{tmp_path}/store.db"
    url = STORES[name][0]
    assert url is not None
    require(url, name)
    return url


def tier_url(name: str, prefix: str) -> str:
    if name == "memory":
        return "memory://?max_items=10000"
    url = TIER_URLS[name]
    require(url, name)
    sep = "&" if "?" in url else "?"
    # A generous deadline: the contract suite checks behaviour, and a loaded CI machine must not turn a slow
    # reply into a fail-open miss (the fault suites test tight deadlines on purpose).
    return f"{url}{sep}prefix={prefix}&timeout=1s&connect_timeout=1s"


def _marks(store: str, tiers: tuple[str, ...]) -> list[pytest.MarkDecorator]:
    names = ([STORES[store][1]] if STORES[store][1] else []) + [t for t in tiers if t != "memory"]
    return [getattr(pytest.mark, n) for n in names]


MATRIX = [
    pytest.param((s, t), id=f"{s}-{t}", marks=_marks(s, TIERS[t])) for s in STORES for t in TIERS
]


async def open_db(
    store: str, tiers: tuple[str, ...], tmp_path: os.PathLike[str], *, policy: CachePolicy | None = None,
    entities: tuple[type[tierstore.Entity], ...] = (),
) -> tierstore.Database:
    prefix = f"t{uuid.uuid4().hex[:12]}"
    try:
        db = tierstore.connect(
            store_url(store, tmp_path), [tier_url(t, prefix) for t in tiers], policy=policy, schema="create"
        )
    except ConfigError as exc:
        if "missing" in str(exc) or "No module" in str(exc):
            pytest.skip(f"backend not available: {exc}")
        raise
    await db.open()
    for e in entities:
        await db.create_tables(e)
        await db.store.truncate(schema_of(e))
    return db
