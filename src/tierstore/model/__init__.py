"""Entity declaration: key markers, schema extraction, relations."""

from tierstore.model.entity import Entity, Index
from tierstore.model.keys import TTL, PartitionKey, SortKey, Version
from tierstore.model.relations import Many, Ref
from tierstore.model.schema import Schema, schema_of

__all__ = ["TTL", "Entity", "Index", "Many", "PartitionKey", "Ref", "Schema", "SortKey", "Version", "schema_of"]
