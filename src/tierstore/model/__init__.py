"""Entity declaration: key markers, schema extraction, relations."""

from tierstore.model.entity import Entity, Index, Ref
from tierstore.model.keys import TTL, PartitionKey, SortKey, Version
from tierstore.model.schema import Schema, schema_of

__all__ = ["TTL", "Entity", "Index", "PartitionKey", "Ref", "Schema", "SortKey", "Version", "schema_of"]
