"""``Entity``: a msgspec Struct whose class carries a table name, keys and indexes.

Relations declared on an entity (``Ref``, ``Many``) live in :mod:`tierstore.model.relations`.
"""

from __future__ import annotations

import contextlib
import types
from collections.abc import Sequence
from dataclasses import dataclass
from typing import Any

import msgspec

from tierstore.errors import ConfigError
from tierstore.model.templates import KeyTemplate

__all__ = ["Entity", "EntityMeta", "Index"]


@dataclass(frozen=True, slots=True)
class Index:
    """A secondary index: a GSI on DynamoDB, an SQL index elsewhere.

    ``partition`` and ``sort`` name fields of the entity, or are :class:`~tierstore.KeyTemplate` values (the
    index key attribute built from fields, DynamoDB and memory only); a query on the index needs the partition
    values. An index field may be optional (``str | None``, ``int | None``, ``bytes | None``): the index is then
    *sparse* — an item whose value is None is absent from it on every store, and a query never returns it.
    ``local=True`` declares a DynamoDB local secondary index: same partition key as the table, created with
    the table, strongly consistent reads allowed (elsewhere it is an ordinary index).
    """

    name: str
    partition: str | tuple[str, ...] | KeyTemplate
    sort: str | tuple[str, ...] | KeyTemplate = ()
    local: bool = False

    @property
    def partition_fields(self) -> tuple[str, ...]:
        return _fields(self.partition)

    @property
    def sort_fields(self) -> tuple[str, ...]:
        return _fields(self.sort)


def _fields(value: str | tuple[str, ...] | KeyTemplate) -> tuple[str, ...]:
    if isinstance(value, KeyTemplate):
        return value.fields
    return (value,) if isinstance(value, str) else tuple(value)


_class_attribute = type.__getattribute__
_MEMBER = types.MemberDescriptorType


class EntityMeta(msgspec.StructMeta):
    """Takes ``table=``, ``partition_key=``, ``sort_key=``, ``indexes=``, ``undecodable=``, ``type_attribute=``,
    ``type_name=`` and ``cache=`` as class keywords.

    ``partition_key=``/``sort_key=`` name the key fields, or are a :class:`~tierstore.KeyTemplate`: the key
    attribute built from fields (``KeyTemplate("pk", "CUSTOMER#{customer_id}")``, DynamoDB and memory only).
    ``type_attribute="_et"`` stores ``type_name`` (default: the class name) in that attribute on every put, and
    queries over a partition shared with other entities return only this entity's items.

    A field read on the class (``Order.status``) is an attribute path for expressions
    (:class:`tierstore.expressions.Path`); on an instance it is the value, as always.

    ``undecodable="skip"``: queries leave out stored items that do not decode as the entity (a table shared
    with other writers) and list them in ``Page.skipped``; ``"raise"`` (the default) fails the page. A query's
    own ``undecodable=`` overrides it.

    ``cache=``: ``False`` — never cached (every read goes to the store; writes touch no tier); a
    :class:`~tierstore.CachePolicy` — this entity's TTLs, negative caching and write mode; ``True`` or absent —
    the database's policy. A ``policies=`` map given to ``connect()`` overrides it.
    """

    __tierstore_decl__: dict[str, Any]
    __tierstore_schema__: Any

    def __new__(
        mcls,
        name: str,
        bases: tuple[type, ...],
        namespace: dict[str, Any],
        *,
        table: str | None = None,
        partition_key: str | Sequence[str] | KeyTemplate | None = None,
        sort_key: str | Sequence[str] | KeyTemplate | None = None,
        indexes: Sequence[Index] = (),
        undecodable: str = "raise",
        type_attribute: str | None = None,
        type_name: str | None = None,
        cache: Any = None,
        **struct_options: Any,
    ) -> EntityMeta:
        if not (cache is None or isinstance(cache, bool) or hasattr(cache, "write_mode")):
            # The full check (a CachePolicy) runs when a database resolves the entity's policy.
            raise ConfigError(f"{name}: cache= takes a CachePolicy, True or False, got {cache!r}")
        cls: EntityMeta = super().__new__(mcls, name, bases, namespace, **struct_options)
        cls.__tierstore_decl__ = {
            "table": table,
            "partition_key": partition_key,
            "sort_key": sort_key,
            "indexes": tuple(indexes),
            "undecodable": undecodable,
            "type_attribute": type_attribute,
            "type_name": type_name,
            "cache": cache,
        }
        cls.__tierstore_schema__ = None
        if namespace.get("__module__") != __name__:
            from tierstore.model.schema import build_schema

            # A forward reference that is not defined yet: schema_of() builds it on first use instead.
            with contextlib.suppress(NameError):
                cls.__tierstore_schema__ = build_schema(cls)
        return cls

    def __getattribute__(cls, name: str) -> Any:
        value = _class_attribute(cls, name)
        if value.__class__ is _MEMBER and name in _class_attribute(cls, "__struct_fields__"):
            from tierstore.expressions.ast import Path

            return Path(cls, (name,))
        return value


class Entity(msgspec.Struct, metaclass=EntityMeta, dict=True):
    """Base class of every stored type. Subclass it with ``table="name"`` and mark the key fields.

    ``dict=True`` gives each instance a ``__dict__`` that holds relations loaded by joins; it is never
    encoded.
    """
