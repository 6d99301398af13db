"""A small service layer on tierstore: typed entities, a repository per entity, cached reads.

Runs on the in-process backends so it needs no servers:  python examples/orders_service.py
Swap the URLs for `postgresql+asyncpg://…` and `redis://…` in production.
"""

from __future__ import annotations

import asyncio

import tierstore
from tierstore import Entity, PartitionKey, SortKey, Version


class Account(Entity, table="ex_accounts"):
    id: PartitionKey[str]
    owner: str
    balance_cents: int = 0
    version: Version = 0


class Transfer(Entity, table="ex_transfers"):
    account_id: PartitionKey[str]
    transfer_id: SortKey[str]
    amount_cents: int


class Bank:
    def __init__(self, db: tierstore.Database) -> None:
        self.accounts = db.repository(Account)
        self.transfers = db.repository(Transfer)
        self.db = db

    async def deposit(self, account_id: str, transfer_id: str, amount: int) -> Account:
        """Idempotent deposit with optimistic locking: retried on a concurrent update."""
        while True:
            account = await self.accounts.get(account_id, consistent=True)
            if account is None:
                raise tierstore.NotFound("no such account", key=account_id)
            account.balance_cents += amount
            try:
                async with self.db.transaction() as tx:
                    tx.put(account, expect_version=account.version)
                    tx.put(Transfer(account_id, transfer_id, amount), if_not_exists=True)
            except tierstore.TransactionCanceled as exc:
                if exc.reasons[1]:  # this transfer was applied before
                    return await self.accounts.get(account_id) or account
                continue  # someone else updated the account: read again
            return account


async def main() -> None:
    async with tierstore.connect("memory://", ["memory://"]) as db:
        bank = Bank(db)
        await bank.accounts.put(Account("a1", "Ann"))
        await asyncio.gather(*(bank.deposit("a1", f"t{i}", 100) for i in range(10)))
        await bank.deposit("a1", "t3", 100)  # a retry of an applied transfer changes nothing
        account = await bank.accounts.get("a1")
        assert account is not None and account.balance_cents == 1000, account
        history = await bank.transfers.query("a1").all()
        assert len(history) == 10
        print(f"{account.owner}: {account.balance_cents / 100:.2f} after {len(history)} transfers")
        print("store counters:", db.stats()["store"])


if __name__ == "__main__":
    asyncio.run(main())
