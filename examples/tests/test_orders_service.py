"""Tests of the example service (examples/orders_service.py), written the way a service's own tests use
tierstore's pytest plugin: ``tierstore_db`` for a fresh in-process database per test, a real Redis from
``TIERSTORE_REDIS_URL`` (skipped when unset), and a fault proxy in front of it.

Run them from examples/:  python -m pytest
"""

from __future__ import annotations

import asyncio
from collections.abc import Awaitable, Callable

import pytest
from orders_service import Account, Bank

import tierstore
from tierstore.testing import ProxiedServer, with_params


@pytest.mark.asyncio
async def test_concurrent_deposits_add_up(tierstore_db: tierstore.Database) -> None:
    bank = Bank(tierstore_db)
    await bank.accounts.put(Account("a1", "Ann"))
    await asyncio.gather(*(bank.deposit("a1", f"t{i}", 100) for i in range(10)))
    account = await bank.accounts.get("a1")
    assert account is not None and account.balance_cents == 1000


@pytest.mark.asyncio
async def test_a_retried_transfer_applies_once(tierstore_db: tierstore.Database) -> None:
    bank = Bank(tierstore_db)
    await bank.accounts.put(Account("a1", "Ann"))
    await bank.deposit("a1", "t1", 250)
    again = await bank.deposit("a1", "t1", 250)
    assert again.balance_cents == 250
    assert len(await bank.transfers.query("a1").all()) == 1


@pytest.mark.asyncio
async def test_each_test_gets_a_fresh_database(tierstore_db: tierstore.Database) -> None:
    assert await Bank(tierstore_db).accounts.get("a1") is None  # the other tests' accounts are gone


@pytest.mark.asyncio
async def test_deposits_work_while_redis_hangs(
    tierstore_connect: Callable[..., Awaitable[tierstore.Database]],
    tierstore_redis_url: str,
    tierstore_fault_proxy: Callable[[str], Awaitable[ProxiedServer]],
) -> None:
    proxy = await tierstore_fault_proxy(tierstore_redis_url)
    db = await tierstore_connect("memory://", ["memory://", with_params(proxy.url, timeout="50ms")])
    bank = Bank(db)
    await bank.accounts.put(Account("a1", "Ann"))
    proxy.blackhole()  # Redis stops answering: the cache fails open, the store still serves
    await asyncio.gather(*(bank.deposit("a1", f"t{i}", 100) for i in range(3)))
    account = await bank.accounts.get("a1", consistent=True)
    assert account is not None and account.balance_cents == 300
    assert db.stats()["tiers"]["redis"]["errors"] > 0
