"""The reference service: a REST API on FastAPI + tierstore, configured only by environment variables.

The same code (and image) runs locally on SQLite + an in-process cache and on AWS on DynamoDB (+ DAX) or RDS
PostgreSQL behind ElastiCache Redis; only the environment changes:

======================== ==================================================================================
``TIERSTORE_STORE``      store URL (default ``sqlite+aiosqlite:///service.db``), without a password
``TIERSTORE_STORE_PASSWORD``  the store's password (from Secrets Manager on AWS), put into the URL at start-up
``TIERSTORE_CACHE``      tier URLs, nearest first, separated by spaces (default ``memory://``; ``none``: no tier)
``TIERSTORE_CACHE_PASSWORD``  the Redis AUTH token (from Secrets Manager), put into every ``redis(s)://`` URL
``TIERSTORE_QUERY_CACHE``  ``query://?ttl=60s`` to cache query pages (default: off)
``TIERSTORE_STRICT``     ``1``: refuse to start unless the store, every tier and the L1 channel answer
``TIERSTORE_CREATE_TABLES``  ``1`` (default): create missing tables at start-up; ``0`` where the schema is
                         managed by the deployment (the CloudFormation template, a migration job)
======================== ==================================================================================

Run it:  ``uvicorn app:app`` in this folder (the container's command; host and port from ``UVICORN_HOST`` and
``UVICORN_PORT``). Endpoints: ``/`` (a static page calling the API), ``/api/...``, ``/healthz``, ``/readyz``,
``/metrics`` (Prometheus), ``/stats`` (``db.stats()`` as JSON), ``/docs`` (OpenAPI).
"""

from __future__ import annotations

import os
import pathlib
import re
from typing import Annotated
from urllib.parse import quote, urlsplit, urlunsplit

import msgspec
from fastapi import Depends, FastAPI, Path, Query
from fastapi.responses import FileResponse, JSONResponse

import tierstore
from tierstore import Entity, Many, NotFound, PartitionKey, Ref, Repository, SortKey, ValidationError, Version
from tierstore.integrations.fastapi import DatabaseDep, SessionDep, install, lifespan, repository
from tierstore.integrations.starlette import liveness, metrics, readiness

STATIC = pathlib.Path(__file__).resolve().parent / "static"

Id = Annotated[str, Path(min_length=1, max_length=64, pattern=r"^[A-Za-z0-9_.-]+$")]
Name = Annotated[str, msgspec.Meta(min_length=1, max_length=200)]
Cents = Annotated[int, msgspec.Meta(ge=0, le=10**12)]
Status = Annotated[str, msgspec.Meta(max_length=32)]


class Customer(Entity, table="svc_customers"):
    """A customer. ``version`` advances on every write; send back the one you read to update it."""

    id: PartitionKey[str]
    name: Name
    email: Annotated[str, msgspec.Meta(max_length=254)] = ""
    version: Version = 0
    orders = Many["Order"]("Order", "customer_id")


class Order(Entity, table="svc_orders"):
    """An order, stored in its customer's partition (so a customer's orders are one query)."""

    customer_id: PartitionKey[str]
    order_id: SortKey[str]
    total_cents: Cents
    status: Status = "new"
    version: Version = 0
    customer = Ref(Customer, "customer_id")


# -- configuration from the environment ---------------------------------------------------------------------


def _with_password(url: str, password: str | None, schemes: tuple[str, ...]) -> str:
    """``url`` with ``password`` put into its user info (if its scheme is one of ``schemes`` and it has none)."""
    parts = urlsplit(url)
    if not password or not parts.scheme.lower().startswith(schemes) or parts.password is not None:
        return url
    user, _, host = parts.netloc.rpartition("@")
    return urlunsplit(parts._replace(netloc=f"{user.split(':')[0]}:{quote(password, safe='')}@{host}"))


def _flag(name: str, default: bool) -> bool:
    value = os.environ.get(name)
    return default if value is None or value == "" else value.lower() in ("1", "true", "yes", "on")


def connect_from_env() -> tierstore.Database:
    env = os.environ
    store = _with_password(
        env.get("TIERSTORE_STORE") or "sqlite+aiosqlite:///service.db", env.get("TIERSTORE_STORE_PASSWORD"),
        ("postgres", "mysql", "mariadb"),
    )
    cache_spec = env.get("TIERSTORE_CACHE", "memory://").strip()
    tiers = [] if cache_spec.lower() in ("", "none") else cache_spec.split()
    tiers = [_with_password(t, env.get("TIERSTORE_CACHE_PASSWORD"), ("redis",)) for t in tiers]
    return tierstore.connect(
        store, tiers, query_cache=env.get("TIERSTORE_QUERY_CACHE") or None,
        strict=_flag("TIERSTORE_STRICT", False), create_tables=_flag("TIERSTORE_CREATE_TABLES", True),
    )


TABLES = (Customer, Order) if _flag("TIERSTORE_CREATE_TABLES", True) else ()

app = FastAPI(title="tierstore reference service", version=tierstore.__version__,
              lifespan=lifespan(connect_from_env, create_tables=TABLES))
install(app)  # error -> status mapping, entity bodies and responses, entity schemas in /openapi.json

Customers = Annotated[Repository[Customer], Depends(repository(Customer))]
Orders = Annotated[Repository[Order], Depends(repository(Order))]


# -- the API ------------------------------------------------------------------------------------------------


def _same(path_value: str, body_value: str, field: str) -> None:
    if path_value != body_value:
        raise ValidationError(f"the body's {field} differs from the path's")


@app.post("/api/customers", status_code=201, tags=["customers"])
async def create_customer(customer: Customer, customers: Customers) -> Customer:
    """Create a customer; 409 if the id exists."""
    _check_id(customer.id)
    return await customers.put(customer, if_not_exists=True)


@app.get("/api/customers/{customer_id}", tags=["customers"])
async def get_customer(customer_id: Id, customers: Customers) -> Customer:
    customer = await customers.get(customer_id)
    if customer is None:
        raise NotFound("no such customer", entity="Customer", key=customer_id)
    return customer


@app.put("/api/customers/{customer_id}", tags=["customers"])
async def update_customer(customer_id: Id, customer: Customer, customers: Customers) -> Customer:
    """Optimistic locking: the body's ``version`` must be the stored one (409 otherwise: read again, retry)."""
    _same(customer_id, customer.id, "id")
    return await customers.put(customer, expect_version=customer.version)


@app.get("/api/customers/{customer_id}/orders", tags=["orders"])
async def list_orders(
    customer_id: Id, orders: Orders,
    limit: Annotated[int, Query(ge=1, le=100)] = 20,
    cursor: Annotated[str | None, Query(max_length=1024)] = None,
) -> tierstore.Page[Order]:
    """A customer's orders, ``limit`` per page; pass the returned ``cursor`` for the next page (``null``: done)."""
    return await orders.query(customer_id, limit=limit, cursor=cursor)


@app.get("/api/customers/{customer_id}/profile", tags=["customers"])
async def customer_profile(customer_id: Id, session: SessionDep) -> Customer:
    """The customer with all their orders nested under ``orders`` (a one-to-many join)."""
    customer = await session.get(Customer, customer_id)
    if customer is None:
        raise NotFound("no such customer", entity="Customer", key=customer_id)
    await session.load([customer], Customer.orders)
    return customer


@app.post("/api/customers/{customer_id}/orders", status_code=201, tags=["orders"])
async def create_order(customer_id: Id, order: Order, orders: Orders) -> Order:
    _same(customer_id, order.customer_id, "customer_id")
    _check_id(order.order_id)
    return await orders.put(order, if_not_exists=True)


@app.get("/api/orders/{customer_id}/{order_id}", tags=["orders"])
async def get_order(customer_id: Id, order_id: Id, orders: Orders) -> Order:
    """The order with its customer nested under ``customer`` (a many-to-one join)."""
    order = await orders.get(customer_id, order_id)
    if order is None:
        raise NotFound("no such order", entity="Order", key=(customer_id, order_id))
    await orders.load([order], Order.customer)
    return order


@app.put("/api/orders/{customer_id}/{order_id}", tags=["orders"])
async def put_order(customer_id: Id, order_id: Id, order: Order, orders: Orders) -> Order:
    """Create or replace an order (last writer wins: the version check is switched off)."""
    _same(customer_id, order.customer_id, "customer_id")
    _same(order_id, order.order_id, "order_id")
    return await orders.put(order, check_version=False)


_ID = re.compile(r"[A-Za-z0-9_.-]{1,64}")


def _check_id(value: str) -> None:
    """Ids in bodies obey the rule ids in paths do."""
    if not _ID.fullmatch(value):
        raise ValidationError("ids are 1-64 characters of A-Z a-z 0-9 _ . -")


# -- operations ---------------------------------------------------------------------------------------------

app.add_api_route("/healthz", liveness, methods=["GET"], include_in_schema=False)
app.add_api_route("/readyz", readiness, methods=["GET"], include_in_schema=False)
app.add_api_route("/metrics", metrics, methods=["GET"], include_in_schema=False)


@app.get("/stats", include_in_schema=False)
async def stats(db: DatabaseDep) -> JSONResponse:
    return JSONResponse(db.stats())


@app.get("/", include_in_schema=False)
async def index() -> FileResponse:
    """The static UI (on AWS it would be served from S3 behind CloudFront; here the app serves it)."""
    return FileResponse(STATIC / "index.html")
