"""Entities shared by the contract, property and fault suites."""

from __future__ import annotations

from tierstore import TTL, Entity, Index, PartitionKey, Ref, SortKey, Version


class Customer(Entity, table="ts_customers"):
    id: PartitionKey[str]
    name: str
    email: str = ""
    tags: list[str] = []
    version: Version = 0


class Order(Entity, table="ts_orders", indexes=[Index("by_status", "status", "order_id")]):
    customer_id: PartitionKey[str]
    order_id: SortKey[str]
    total_cents: int
    status: str = "new"
    note: str | None = None
    version: Version = 0
    customer = Ref(Customer, "customer_id")


class Event(Entity, table="ts_events", partition_key=("tenant", "stream"), sort_key="seq"):
    tenant: str
    stream: str
    seq: int
    payload: dict[str, int] = {}
    expires_at: TTL = 0


class Blob(Entity, table="ts_blobs", frozen=True):
    id: PartitionKey[int]
    data: bytes
    sizes: tuple[int, ...] = ()


ALL = (Customer, Order, Event, Blob)
