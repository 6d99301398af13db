"""Helpers of the Redis and memcached tier tests: tiers on random prefixes, servers of a test's own, polling.

Tests that need a server configured in a particular way (ACL users, TLS, a flushed script cache, counters of
their own) start it on a free port and stop it (by its PID) afterwards; the shared servers are never
reconfigured.
"""

from __future__ import annotations

import asyncio
import os
import socket
import subprocess
import time
import uuid
from collections.abc import Awaitable, Callable
from pathlib import Path
from typing import Any

import pytest

from tierstore.config import tier_config
from tierstore.tiers.memcached import MemcachedTier
from tierstore.tiers.redis import RedisTier

from _servers import MEMCACHED_URL, REDIS_URL, require


def random_prefix() -> str:
    return f"t{uuid.uuid4().hex[:12]}"


def with_params(base: str, prefix: str, **params: Any) -> str:
    """``base`` with ``prefix=`` and ``params`` added to its query."""
    query = "&".join([f"prefix={prefix}", *(f"{k}={v}" for k, v in params.items())])
    return f"{base}{'&' if '?' in base else '?'}{query}"


async def redis_tier(base: str = REDIS_URL, prefix: str | None = None, **params: Any) -> RedisTier:
    require(base, "redis")
    tier = tier_config(with_params(base, prefix or random_prefix(), **params)).build()
    assert isinstance(tier, RedisTier)
    await tier.open()
    return tier


async def memcached_tier(base: str = MEMCACHED_URL, prefix: str | None = None, **params: Any) -> MemcachedTier:
    require(base, "memcached")
    tier = tier_config(with_params(base, prefix or random_prefix(), **params)).build()
    assert isinstance(tier, MemcachedTier)
    await tier.open()
    return tier


async def eventually(check: Callable[[], Awaitable[bool]]) -> None:
    """Poll ``check`` for up to ~3 s (a bound for the test, not a measured speed)."""
    for _ in range(300):
        if await check():
            return
        await asyncio.sleep(0.01)
    raise AssertionError("condition not reached in time")


def free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return int(s.getsockname()[1])


class _OwnServer:
    """A server process this test started (and stops, by PID)."""

    def __init__(self, argv: list[str], port: int, what: str) -> None:
        self.port = port
        self.proc = subprocess.Popen(argv, stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL)
        deadline = time.monotonic() + 10
        while True:
            try:
                socket.create_connection(("127.0.0.1", self.port), timeout=0.2).close()
                return
            except OSError:
                if self.proc.poll() is not None or time.monotonic() > deadline:
                    self.stop()
                    pytest.fail(f"could not start {what}")
                time.sleep(0.05)

    def stop(self) -> None:
        if self.proc.poll() is None:
            self.proc.terminate()
            try:
                self.proc.wait(5)
            except subprocess.TimeoutExpired:
                self.proc.kill()
                self.proc.wait(5)


class OwnRedis(_OwnServer):
    """A redis-server of the test's own; ``args`` are extra server options, ``tls_dir`` serves TLS only."""

    def __init__(self, *args: str, port: int | None = None, tls_dir: Path | None = None) -> None:
        port = port or free_port()
        argv = ["redis-server", "--bind", "127.0.0.1", "--save", "", "--appendonly", "no"]
        if tls_dir is None:
            argv += ["--port", str(port)]
        else:
            argv += [
                "--port", "0", "--tls-port", str(port), "--tls-cert-file", str(tls_dir / "server.crt"),
                "--tls-key-file", str(tls_dir / "server.key"), "--tls-ca-cert-file", str(tls_dir / "ca.crt"),
                "--tls-auth-clients", "no",
            ]
        super().__init__([*argv, *args], port, f"redis-server {' '.join(args)}")


class OwnMemcached(_OwnServer):
    """A memcached of the test's own (64 MiB, 1 MiB items)."""

    def __init__(self, port: int | None = None) -> None:
        port = port or free_port()
        argv = ["memcached", "-l", "127.0.0.1", "-p", str(port), "-U", "0", "-m", "64", "-I", "1m"]
        if os.geteuid() == 0:
            argv += ["-u", "root"]  # memcached refuses to run as root without -u
        super().__init__(argv, port, "memcached")

    @property
    def url(self) -> str:
        return f"memcached://127.0.0.1:{self.port}"
