"""``Entity``: a msgspec Struct whose class carries a table name, keys, indexes and relations."""

from __future__ import annotations

import contextlib
from collections.abc import Sequence
from dataclasses import dataclass
from typing import Any, Generic, TypeVar, overload

import msgspec

from tierstore.errors import ConfigError, NotLoaded

__all__ = ["Entity", "EntityMeta", "Index", "Ref", "Relation"]

_T = TypeVar("_T", bound="Entity")
_R = TypeVar("_R")


@dataclass(frozen=True, slots=True)
class Index:
    """A secondary index: a GSI on DynamoDB, an SQL index elsewhere.

    ``partition`` and ``sort`` name fields of the entity; a query on the index needs the partition values.
    ``local=True`` declares a DynamoDB local secondary index: same partition key as the table, created with
    the table, strongly consistent reads allowed (elsewhere it is an ordinary index).
    """

    name: str
    partition: str | tuple[str, ...]
    sort: str | tuple[str, ...] = ()
    local: bool = False

    @property
    def partition_fields(self) -> tuple[str, ...]:
        return (self.partition,) if isinstance(self.partition, str) else tuple(self.partition)

    @property
    def sort_fields(self) -> tuple[str, ...]:
        return (self.sort,) if isinstance(self.sort, str) else tuple(self.sort)


class EntityMeta(msgspec.StructMeta):
    """Takes ``table=``, ``partition_key=``, ``sort_key=`` and ``indexes=`` as class keywords."""

    __tierstore_decl__: dict[str, Any]
    __tierstore_schema__: Any

    def __new__(
        mcls,
        name: str,
        bases: tuple[type, ...],
        namespace: dict[str, Any],
        *,
        table: str | None = None,
        partition_key: str | Sequence[str] | None = None,
        sort_key: str | Sequence[str] | None = None,
        indexes: Sequence[Index] = (),
        **struct_options: Any,
    ) -> EntityMeta:
        cls: EntityMeta = super().__new__(mcls, name, bases, namespace, **struct_options)
        cls.__tierstore_decl__ = {
            "table": table,
            "partition_key": partition_key,
            "sort_key": sort_key,
            "indexes": tuple(indexes),
        }
        cls.__tierstore_schema__ = None
        if namespace.get("__module__") != __name__:
            from tierstore.model.schema import build_schema

            # A forward reference that is not defined yet: schema_of() builds it on first use instead.
            with contextlib.suppress(NameError):
                cls.__tierstore_schema__ = build_schema(cls)
        return cls


class Entity(msgspec.Struct, metaclass=EntityMeta, dict=True):
    """Base class of every stored type. Subclass it with ``table="name"`` and mark the key fields.

    ``dict=True`` gives each instance a ``__dict__`` that holds relations loaded by joins; it is never
    encoded.
    """


class Relation(Generic[_R]):
    """Base of relation descriptors. Reading an unloaded relation raises :class:`NotLoaded`."""

    name: str
    owner: type[Entity]

    def __set_name__(self, owner: type[Entity], name: str) -> None:
        self.name = name
        self.owner = owner
        self._slot = f"__rel_{name}"

    def is_loaded(self, instance: Entity) -> bool:
        return self._slot in instance.__dict__

    def set(self, instance: Entity, value: Any) -> None:
        instance.__dict__[self._slot] = value

    def _get(self, instance: Entity) -> Any:
        try:
            return instance.__dict__[self._slot]
        except KeyError:
            raise NotLoaded(
                f"relation {self.owner.__name__}.{self.name} was not loaded; use query(...).join("
                f"{self.owner.__name__}.{self.name}) or repository.load(items, ...)",
                entity=self.owner.__name__,
            ) from None


class Ref(Relation[_T]):
    """Many-to-one: ``customer = Ref(Customer, "customer_id")``.

    The named fields of this entity hold the target's key (partition fields, then sort fields). A missing
    target loads as ``None``, or raises :class:`~tierstore.NotFound` when ``required=True``.
    """

    def __init__(self, target: type[_T], *fields: str, required: bool = False) -> None:
        if not fields:
            raise ConfigError("Ref needs the names of the fields holding the target's key")
        self.target = target
        self.fields = tuple(fields)
        self.required = required

    @overload
    def __get__(self, instance: None, owner: type[Any]) -> Ref[_T]: ...
    @overload
    def __get__(self, instance: Entity, owner: type[Any]) -> _T | None: ...
    def __get__(self, instance: Entity | None, owner: type[Any]) -> Ref[_T] | _T | None:
        if instance is None:
            return self
        return self._get(instance)  # type: ignore[no-any-return]

    def __repr__(self) -> str:
        owner = getattr(self, "owner", None)
        where = f"{owner.__name__}.{self.name}" if owner is not None else "unbound"
        return f"Ref({self.target.__name__}, {', '.join(map(repr, self.fields))}) at {where}"
