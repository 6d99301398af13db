"""Relations between entities: the descriptors that joins load (``Ref`` many-to-one, ``Many`` one-to-many).

A relation is declared on the entity class and read like an attribute. Reading one that no join or load
has populated raises :class:`~tierstore.errors.NotLoaded` — there is no hidden I/O. Loading lives in
:mod:`tierstore.joins`; this module holds the declarations and their checks against the schemas.
"""

from __future__ import annotations

import sys
from collections.abc import Sequence
from typing import Any, Generic, TypeVar, overload

from tierstore.errors import ConfigError, NotLoaded
from tierstore.model.entity import Entity

__all__ = ["DEFAULT_MANY_CONCURRENCY", "Many", "Ref", "Relation"]

_T = TypeVar("_T", bound=Entity)
_R = TypeVar("_R")

DEFAULT_MANY_CONCURRENCY = 16


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

    def set_all(self, instances: Sequence[Entity], values: Sequence[Any]) -> None:
        """:meth:`set` each of ``instances`` to the value at the same position (what a join does)."""
        slot = self._slot
        for instance, value in zip(instances, values, strict=True):
            instance.__dict__[slot] = value

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


class Many(Relation[list[_T]]):
    """One-to-many: ``orders = Many(Order, "customer_id")`` on Customer loads ``list[Order]``.

    A target defined later in the same module is named as a string: ``orders = Many["Order"]("Order",
    "customer_id")`` (the subscript tells type checkers what the string means).

    ``fields`` name the target's fields that hold the parent's key; they must be the target's partition
    key (one query per parent) or the partition of one of its indexes (``index=`` picks it when several
    match). ``by`` names the parent's fields that supply the values (default: the parent's key fields,
    partition then sort, as many as ``fields``). Children come in the target's sort order (of the index's
    sort key for an index), descending with ``newest_first=True``; ``limit`` keeps each parent's first
    ``limit`` children (``Many(Order, "customer_id", limit=10, newest_first=True)``: the ten latest orders
    of each customer, when the sort key grows with time).

    Loading is batched: one query per shard on SQL and memory (``WHERE fk IN (…)``, with the per-parent limit
    applied in the database), bounded-concurrency queries on DynamoDB (one per parent: DynamoDB has no
    multi-partition query). ``concurrency`` bounds the requests in flight where one is sent per parent.
    """

    def __init__(
        self,
        target: type[_T] | str,
        *fields: str,
        by: str | Sequence[str] | None = None,
        index: str | None = None,
        concurrency: int = DEFAULT_MANY_CONCURRENCY,
        limit: int | None = None,
        newest_first: bool = False,
    ) -> None:
        if not fields:
            raise ConfigError("Many needs the names of the target's fields that hold the parent's key")
        if not isinstance(concurrency, int) or isinstance(concurrency, bool) or concurrency < 1:
            raise ConfigError("Many: concurrency must be an int >= 1")
        if limit is not None and (not isinstance(limit, int) or isinstance(limit, bool) or limit < 1):
            raise ConfigError(f"Many: limit must be None or an int >= 1, got {limit!r}")
        if not isinstance(newest_first, bool):
            raise ConfigError(f"Many: newest_first must be a bool, got {newest_first!r}")
        self._target = target
        self.fields = tuple(fields)
        self.by = (by,) if isinstance(by, str) else (tuple(by) if by is not None else None)
        self.index = index
        self.concurrency = concurrency
        self.limit = limit
        self.newest_first = newest_first
        self._resolved: tuple[tuple[str, ...], str | None] | None = None

    @overload
    def __get__(self, instance: None, owner: type[Any]) -> Many[_T]: ...
    @overload
    def __get__(self, instance: Entity, owner: type[Any]) -> list[_T]: ...
    def __get__(self, instance: Entity | None, owner: type[Any]) -> Many[_T] | list[_T]:
        if instance is None:
            return self
        return self._get(instance)  # type: ignore[no-any-return]

    @property
    def target(self) -> type[_T]:
        """The target class; a name given as a string (a forward reference) is looked up in the module
        of the class that declares the relation."""
        if isinstance(self._target, str):
            owner = getattr(self, "owner", None)
            module = sys.modules.get(owner.__module__) if owner is not None else None
            found = getattr(module, self._target, None)
            if not (isinstance(found, type) and issubclass(found, Entity)):
                raise ConfigError(
                    f"Many({self._target!r}): no entity of that name in the module of "
                    f"{owner.__name__ if owner is not None else 'its owner'}; pass the class itself"
                )
            self._target = found  # type: ignore[assignment]  # the name stands for _T by declaration
        assert not isinstance(self._target, str)
        return self._target

    def __repr__(self) -> str:
        owner = getattr(self, "owner", None)
        where = f"{owner.__name__}.{self.name}" if owner is not None else "unbound"
        target = self._target if isinstance(self._target, str) else self._target.__name__
        extra = (f", limit={self.limit}" if self.limit is not None else "") + (
            ", newest_first=True" if self.newest_first else "")
        return f"Many({target}, {', '.join(map(repr, self.fields))}{extra}) at {where}"

    def resolve(self) -> tuple[tuple[str, ...], str | None]:
        """``(parent fields, index or None)``, checked against both schemas once."""
        if self._resolved is None:
            from tierstore.model.schema import schema_of  # schema.py imports this module

            owner = schema_of(self.owner)
            target = schema_of(self.target)
            where = f"{owner.name}.{self.name}"
            if self.index is not None:
                ix = target.indexes.get(self.index)
                if ix is None:
                    raise ConfigError(f"{where}: {target.name} has no index {self.index!r}", entity=owner.name)
                if ix.partition_fields != self.fields:
                    raise ConfigError(
                        f"{where}: index {self.index!r} is partitioned by {ix.partition_fields}, not {self.fields}",
                        entity=owner.name,
                    )
                index: str | None = self.index
            elif self.fields == target.partition:
                index = None
            else:
                matches = [n for n, ix in target.indexes.items() if ix.partition_fields == self.fields]
                if len(matches) != 1:
                    raise ConfigError(
                        f"{where}: {self.fields} is not the partition key of {target.name} "
                        f"{target.partition} nor of exactly one of its indexes; pass index=",
                        entity=owner.name,
                    )
                index = matches[0]
            by = self.by if self.by is not None else owner.key_fields[: len(self.fields)]
            if len(by) != len(self.fields):
                raise ConfigError(f"{where}: by= names {len(by)} fields for {len(self.fields)}", entity=owner.name)
            for f in by:
                if f not in owner.field_types:
                    raise ConfigError(f"{where}: by= names unknown field {f!r}", entity=owner.name)
            self._resolved = (by, index)
        return self._resolved
