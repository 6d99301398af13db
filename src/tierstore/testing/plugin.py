"""tierstore's pytest plugin: fixtures for the tests of a service that uses tierstore.

Installed with the package as a ``pytest11`` entry point, so pytest loads it wherever tierstore is installed;
with plugin autoloading off (``PYTEST_DISABLE_PLUGIN_AUTOLOAD``), opt in with ``-p tierstore.testing.plugin``.
Every fixture name starts with ``tierstore_``, so none can shadow a fixture of the project.

* ``tierstore_db``: a :class:`~tierstore.Database` on in-process backends (``memory://`` store and tier),
  fresh for each test. ``tierstore_connect(store, cache, **kw)`` opens any other database, closed after the
  test.
* ``tierstore_postgres_url``, ``tierstore_mysql_url``, ``tierstore_dynamodb_url``, ``tierstore_redis_url``,
  ``tierstore_redis_cluster_url``, ``tierstore_memcached_url``: real servers' URLs from the ``TIERSTORE_*``
  variables (:data:`~tierstore.testing.servers.SERVER_VARIABLES`); the test is skipped, naming the variable,
  when it is not set. Cache-tier URLs carry a fresh ``prefix`` per test, so tests sharing a server never see
  each other's keys.
* ``tierstore_fault_proxy(url)``: a :class:`~tierstore.testing.servers.ProxiedServer` (a
  :class:`~tierstore.testing.FaultProxy`) in front of that URL's server; connect to ``proxy.url`` and switch
  faults on (``blackhole()``, ``drop()``, ``cut()``, ``set_delay()``). Closed after the test.

The async fixtures need pytest-asyncio (the ``test`` extra); they work in its strict and auto modes. The
backend contract suites are in :mod:`tierstore.testing.contract`.
"""

from __future__ import annotations

import uuid
from collections.abc import AsyncIterator, Awaitable, Callable, Sequence
from typing import Any

import pytest

import tierstore
from tierstore.testing.servers import SERVER_VARIABLES, ProxiedServer, server_url, with_params

try:
    import pytest_asyncio

    _async_fixture_decorator: Callable[..., Any] | None = pytest_asyncio.fixture
except ImportError:  # the fixtures below then fail with the reason, instead of breaking every pytest run
    _async_fixture_decorator = None

__all__ = [
    "tierstore_connect",
    "tierstore_db",
    "tierstore_dynamodb_url",
    "tierstore_fault_proxy",
    "tierstore_memcached_url",
    "tierstore_mysql_url",
    "tierstore_postgres_url",
    "tierstore_prefix",
    "tierstore_redis_cluster_url",
    "tierstore_redis_url",
]

Connect = Callable[..., Awaitable[tierstore.Database]]
_CACHE_SERVERS = frozenset({"redis", "redis_cluster", "memcached"})


def _async_fixture(fn: Callable[..., Any]) -> Any:
    if _async_fixture_decorator is not None:
        return _async_fixture_decorator(fn)

    @pytest.fixture(name=fn.__name__)
    def unavailable() -> None:
        pytest.fail("tierstore's async fixtures need pytest-asyncio: pip install 'tierstore[test]'")

    unavailable.__doc__ = fn.__doc__
    return unavailable


@pytest.fixture
def tierstore_prefix() -> str:
    """A fresh key prefix for this test (``t`` + 12 hex digits): a namespace of its own on a shared cache."""
    return f"t{uuid.uuid4().hex[:12]}"


@_async_fixture
async def tierstore_connect() -> AsyncIterator[Connect]:
    """``db = await tierstore_connect(store, cache, **kw)``: an opened database, closed after the test. Its
    schema mode is ``create`` unless ``schema=`` says otherwise: a test's tables are the test's own."""
    opened: list[tierstore.Database] = []

    async def connect(store: Any = None, cache: Sequence[Any] | Any = None, **kw: Any) -> tierstore.Database:
        if "schema" not in kw and "create_tables" not in kw and not (isinstance(store, str) and "schema=" in store):
            kw["schema"] = "create"
        db = tierstore.connect(store, cache, **kw)
        opened.append(db)
        return await db.open()

    try:
        yield connect
    finally:
        for db in reversed(opened):
            await db.aclose()


@_async_fixture
async def tierstore_db(tierstore_connect: Connect) -> tierstore.Database:
    """A database on a ``memory://`` store with a ``memory://`` tier, fresh for each test."""
    return await tierstore_connect("memory://", ["memory://"])


@_async_fixture
async def tierstore_fault_proxy() -> AsyncIterator[Callable[[str], Awaitable[ProxiedServer]]]:
    """``proxy = await tierstore_fault_proxy(url)``: a started fault proxy in front of ``url``'s server;
    ``proxy.url`` is ``url`` through it. Every proxy is closed after the test."""
    proxies: list[ProxiedServer] = []

    async def start(url: str) -> ProxiedServer:
        proxy = ProxiedServer(url)
        await proxy.start()
        proxies.append(proxy)
        return proxy

    try:
        yield start
    finally:
        for proxy in reversed(proxies):
            await proxy.aclose()


def _server(name: str, prefix: str) -> str:
    url = server_url(name)
    if url is None:
        pytest.skip(f"{SERVER_VARIABLES[name]} is not set: no {name} server for this test")
    return with_params(url, prefix=prefix) if name in _CACHE_SERVERS else url


@pytest.fixture
def tierstore_postgres_url() -> str:
    """``TIERSTORE_PG_URL`` (skips the test when unset)."""
    return _server("postgres", "")


@pytest.fixture
def tierstore_mysql_url() -> str:
    """``TIERSTORE_MYSQL_URL`` (skips the test when unset)."""
    return _server("mysql", "")


@pytest.fixture
def tierstore_dynamodb_url() -> str:
    """``TIERSTORE_DYNAMODB_URL`` (skips the test when unset)."""
    return _server("dynamodb", "")


@pytest.fixture
def tierstore_redis_url(tierstore_prefix: str) -> str:
    """``TIERSTORE_REDIS_URL`` with this test's ``prefix`` (skips the test when unset)."""
    return _server("redis", tierstore_prefix)


@pytest.fixture
def tierstore_redis_cluster_url(tierstore_prefix: str) -> str:
    """``TIERSTORE_REDIS_CLUSTER_URL`` with this test's ``prefix`` (skips the test when unset)."""
    return _server("redis_cluster", tierstore_prefix)


@pytest.fixture
def tierstore_memcached_url(tierstore_prefix: str) -> str:
    """``TIERSTORE_MEMCACHED_URL`` with this test's ``prefix`` (skips the test when unset)."""
    return _server("memcached", tierstore_prefix)


