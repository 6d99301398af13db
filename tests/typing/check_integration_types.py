"""Checked by mypy --strict in test_integration_typing.py (and executed): the operations hooks and the FastAPI
integration as a service's type checker sees them."""

from __future__ import annotations

import asyncio
from collections.abc import Awaitable, Callable
from typing import Annotated, Literal, assert_type

from fastapi import Depends, FastAPI, Request

import tierstore
from tierstore import Entity, PartitionKey, Repository, Session
from tierstore.health import BackendHealth, Health
from tierstore.integrations.fastapi import SessionDep, install, lifespan, repository
from tierstore.querycache import QueryCacheConfig


class Customer(Entity, table="typing_int_customers"):
    id: PartitionKey[str]
    name: str


customer_repo = repository(Customer)
assert_type(customer_repo, Callable[[Request], Awaitable[Repository[Customer]]])
Customers = Annotated[Repository[Customer], Depends(customer_repo)]

app = FastAPI(lifespan=lifespan(lambda: tierstore.connect("memory://", ["memory://"])))
install(app)


@app.get("/customers/{customer_id}")
async def get_customer(customer_id: str, customers: Customers, session: SessionDep) -> Customer | None:
    assert_type(session, Session)
    return await customers.get(customer_id)


async def main() -> None:
    db = tierstore.connect("memory://", ["memory://"], query_cache=QueryCacheConfig(ttl=60), strict=True)
    async with db:
        health = await db.health(within=1.0)
        assert_type(health, Health)
        assert_type(health.store, BackendHealth)
        assert_type(health.ready, bool)
        assert_type(health.status, Literal["ok", "degraded", "down"])
        assert health.status == "ok"
        stats = db.stats()
        assert stats["query_cache"]["hits"] == 0


if __name__ == "__main__":
    asyncio.run(main())
