"""The entities the contract suites write: small, but with every key shape a store must handle.

* :class:`Doc` — one string partition field, a string sort key, a version field, an index partitioned like
  the table (``by_rank``, a local index on DynamoDB) and one partitioned by another field (``by_owner``, a
  global index), whose sort key has ties across partitions.
* :class:`Event` — a two-part partition (string and integer), an integer sort key (numeric order, negative
  values), no version field.
* :class:`Blob` — an integer partition key, bytes, a frozen class, no sort key and no version field.
* :class:`Ticket` — sparse indexes: optional index fields (``str | None``, ``int | None``), an item whose value
  is None being absent from the index — a sort key of an index partitioned like the table (``by_due``, a local
  index on DynamoDB), the partition key of a global index (``by_assignee``), and one part of a composite
  partition key (``by_slot``).
* :class:`Note` — the tier suite's entity: every field immutable, the class not frozen, so an in-process
  tier may keep its decoded object and must hand out copies of it.

Table names start with ``tierstore_contract_`` so they never meet an application's tables.
"""

from __future__ import annotations

from tierstore.model import Entity, Index, PartitionKey, SortKey, Version

__all__ = ["STORE_ENTITIES", "Blob", "Doc", "Event", "Note", "Ticket"]


class Doc(
    Entity,
    table="tierstore_contract_docs",
    indexes=[Index("by_rank", "folder", "rank", local=True), Index("by_owner", "owner", "name")],
):
    folder: PartitionKey[str]
    name: SortKey[str]
    owner: str = "nobody"
    rank: int = 0
    body: bytes = b""
    tags: list[str] = []
    version: Version = 0


class Event(Entity, table="tierstore_contract_events", partition_key=("tenant", "stream"), sort_key="seq"):
    tenant: str
    stream: int
    seq: int
    payload: dict[str, int] = {}


# mypy reads msgspec's ``frozen=True`` as a dataclass option that a non-frozen base forbids; msgspec allows it.
class Blob(Entity, table="tierstore_contract_blobs", frozen=True):  # type: ignore[misc]
    id: PartitionKey[int]
    data: bytes


class Ticket(
    Entity,
    table="tierstore_contract_tickets",
    indexes=[
        Index("by_due", "queue", "due", local=True),
        Index("by_assignee", "assignee", "id"),
        Index("by_slot", ("queue", "assignee"), "due"),
    ],
):
    queue: PartitionKey[str]
    id: SortKey[str]
    assignee: str | None = None
    due: int | None = None
    version: Version = 0


class Note(Entity, table="tierstore_contract_notes"):
    id: PartitionKey[str]
    text: str = ""


STORE_ENTITIES: tuple[type[Entity], ...] = (Doc, Event, Blob)
