"""Application-side joins: load relations onto items with batched reads, never one read per item.

Two relation kinds:

- :class:`~tierstore.model.relations.Ref` (many-to-one, ``customer = Ref(Customer, "customer_id")``): the
  foreign keys of all items are collected, de-duplicated, and read with one ``get_many`` through the tiers
  (on a sharded store: one batch per shard, shards in parallel). A missing target loads as ``None``, or
  raises :class:`~tierstore.NotFound` when the relation is ``required``.
- :class:`~tierstore.model.relations.Many` (one-to-many, ``orders = Many(Order, "customer_id")`` on
  Customer): the target's partition holds the parent's key, so each distinct parent is one partition query;
  the queries run concurrently.

Nested joins are spelled as a path, level by level: ``join(Order.customer, Customer.account)`` loads each
order's customer, then each (distinct) customer's account. A relation applies to every instance of its
owner reached so far — the items, or targets loaded by an earlier relation of the same call. Relations whose
owners are already reachable run concurrently. Every foreign key is validated before any I/O.
"""

from __future__ import annotations

from collections.abc import Sequence
from operator import attrgetter
from typing import Any, Protocol

from tierstore.concurrency import gather_all
from tierstore.errors import ConfigError, NotFound, ValidationError
from tierstore.model.relations import Many, Ref, Relation
from tierstore.model.schema import Key, Schema, schema_of

__all__ = ["Loader", "check_relations", "key_arg", "load_relations"]


class Loader(Protocol):
    """What joins read through: the repositories' context (a ``Database``) or a
    :class:`~tierstore.session.Session`."""

    def repository(self, entity: type[Any]) -> Any: ...


def key_arg(schema: Schema[Any], key: Key) -> Any:
    """A flat key in the form ``Repository.get_many`` takes: the partition, or ``(partition, sort)``."""
    n = len(schema.partition)
    partition: Any = key[0] if n == 1 else key[:n]
    if not schema.sort:
        return partition
    sort: Any = key[n] if len(schema.sort) == 1 else key[n:]
    return (partition, sort)


def _plan(root: type[Any], relations: Sequence[Relation[Any]]) -> list[list[Ref[Any] | Many[Any]]]:
    """Split ``relations`` into waves that can run concurrently; check each is reachable from ``root``."""
    reachable: set[type[Any]] = {root}
    waves: list[list[Ref[Any] | Many[Any]]] = []
    produced_in_wave: set[type[Any]] = set()
    seen: set[int] = set()
    for rel in relations:
        if not isinstance(rel, Ref | Many):
            raise ValidationError(
                f"join takes relations declared on entities (Ref, Many), e.g. Order.customer; got {rel!r}"
            )
        owner = getattr(rel, "owner", None)
        if owner is None:
            raise ValidationError(f"{rel!r} is not declared on an entity class")
        if id(rel) in seen:
            continue
        seen.add(id(rel))
        if not any(issubclass(c, owner) for c in reachable):
            raise ValidationError(
                f"{owner.__name__}.{rel.name} applies to {owner.__name__} items, which this join does not "
                f"reach from {root.__name__}; load the relation that leads there first, e.g. "
                f"join(<{root.__name__} relation to {owner.__name__}>, {owner.__name__}.{rel.name})",
                entity=root.__name__,
            )
        if isinstance(rel, Many):
            rel.resolve()
        else:
            target = schema_of(rel.target)
            if len(rel.fields) != len(target.key_fields):
                raise ConfigError(
                    f"{owner.__name__}.{rel.name}: {target.name}'s key has {len(target.key_fields)} parts "
                    f"{target.key_fields}, the Ref names {len(rel.fields)} fields {rel.fields}",
                    entity=owner.__name__,
                )
        if not waves or any(issubclass(c, owner) for c in produced_in_wave):
            waves.append([])
            produced_in_wave = set()
        waves[-1].append(rel)
        produced_in_wave.add(rel.target)
        reachable.add(rel.target)
    return waves


def check_relations(schema: Schema[Any], relations: Sequence[Relation[Any]]) -> None:
    """Raise ``ValidationError``/``ConfigError`` now if ``relations`` cannot be loaded onto items of
    ``schema`` (for ``query(...).join(...)``, so a bad path fails before the query is sent)."""
    _plan(schema.cls, relations)


async def load_relations(
    db: Loader, schema: Schema[Any], items: list[Any], relations: Sequence[Relation[Any]]
) -> None:
    """Load ``relations`` onto ``items`` (and, for nested paths, onto the targets loaded on the way).

    ``db`` is a ``Database`` or a ``Session`` (whose identity map then answers repeated keys).
    """
    if not relations:
        return
    waves = _plan(schema.cls, relations)
    if not items:
        return
    # Instances reachable so far, per class: the items, then each relation's distinct targets.
    pool: dict[type[Any], list[Any]] = {schema.cls: items}
    seen: dict[type[Any], set[int]] = {}
    for wave in waves:
        jobs = []
        for rel in wave:
            lists = [objs for cls, objs in pool.items() if issubclass(cls, rel.owner)]
            instances = lists[0] if len(lists) == 1 else [o for objs in lists for o in objs]
            jobs.append(_load_ref(db, rel, instances) if isinstance(rel, Ref) else _load_many(db, rel, instances))
        results = await gather_all(jobs)
        for rel, (instances, values, targets) in zip(wave, results, strict=True):
            set_value = rel.set
            for obj, value in zip(instances, values, strict=True):
                set_value(obj, value)
            ids = seen.setdefault(rel.target, set())
            bucket = pool.setdefault(rel.target, [])
            for t in targets:
                if id(t) not in ids:
                    ids.add(id(t))
                    bucket.append(t)


async def _load_ref(
    db: Loader, rel: Ref[Any], instances: list[Any]
) -> tuple[list[Any], list[Any], list[Any]]:
    target = schema_of(rel.target)
    fields = rel.fields
    # Foreign keys in the form Repository.get_many takes (the bare value for one-field keys), so they can
    # be de-duplicated and passed on as they are; get_many validates them all before any I/O.
    fks: list[Any]
    if len(fields) == 1:
        fks = list(map(attrgetter(fields[0]), instances))
    elif len(fields) == 2 and len(target.partition) == 1:
        fks = [None if None in fk else fk for fk in map(attrgetter(*fields), instances)]  # already (p, s)
    else:
        fks = [None if None in fk else key_arg(target, fk) for fk in map(attrgetter(*fields), instances)]
    uniq = list(dict.fromkeys(fk for fk in fks if fk is not None))
    found: list[Any] = await db.repository(rel.target).get_many(uniq) if uniq else []
    by_fk = dict(zip(uniq, found, strict=True))
    if rel.required:
        missing = [k for k, v in by_fk.items() if v is None]
        if missing or None in fks:
            raise NotFound(
                f"{rel.owner.__name__}.{rel.name} is required, but "
                + (f"{len(missing)} {target.name} item(s) do not exist" if missing else "a foreign key is None"),
                entity=target.name,
                key=missing[0] if missing else None,
            )
    values = [by_fk.get(fk) for fk in fks]
    return instances, values, [v for v in found if v is not None]


async def _load_many(
    db: Loader, rel: Many[Any], instances: list[Any]
) -> tuple[list[Any], list[Any], list[Any]]:
    by, ix = rel.resolve()
    index: dict[tuple[Any, ...], int] = {}
    uniq: list[tuple[Any, ...]] = []
    parents: list[int | None] = []
    for obj in instances:
        pv = tuple(getattr(obj, f) for f in by)
        if None in pv:
            parents.append(None)
            continue
        i = index.get(pv)
        if i is None:
            i = index[pv] = len(uniq)
            uniq.append(pv)
        parents.append(i)
    repo = db.repository(rel.target)
    # Building every query first validates every partition value before the first request goes out.
    queries = [repo.query(pv[0] if len(pv) == 1 else pv, index=ix) for pv in uniq]
    children: list[list[Any]] = await gather_all([q.all() for q in queries], rel.concurrency)
    values = [[] if i is None else list(children[i]) for i in parents]
    return instances, values, [c for group in children for c in group]
