"""The service's entities, as env.py imports them (ENTITIES: every entity whose table Alembic manages)."""

from __future__ import annotations

from tierstore import Entity, PartitionKey, SortKey, Version


class Order(Entity, table="orders"):
    customer: PartitionKey[str]
    order_id: SortKey[str]
    total: int
    version: Version = 0


ENTITIES = [Order]
