"""Entity declaration: key markers, schema extraction, relations."""

from tierstore.model.entity import Entity, Index
from tierstore.model.keys import TTL, PartitionKey, SortKey, Version
from tierstore.model.relations import Many, Ref
from tierstore.model.schema import Schema, schema_of
from tierstore.model.templates import KeyTemplate

__all__ = [
    "TTL", "Entity", "Index", "KeyTemplate", "Many", "PartitionKey", "Ref", "Schema", "SortKey", "Version", "schema_of",
]
