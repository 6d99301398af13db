"""Application-side joins: load relations onto items with batched reads, never one read per item.

Two relation kinds:

- :class:`~tierstore.model.relations.Ref` (many-to-one, ``customer = Ref(Customer, "customer_id")``): the
  foreign keys of all items are collected, de-duplicated, and read with one ``get_many`` through the tiers
  (on a sharded store: one batch per shard, shards in parallel). A missing target loads as ``None``, or
  raises :class:`~tierstore.NotFound` when the relation is ``required``.
- :class:`~tierstore.model.relations.Many` (one-to-many, ``orders = Many(Order, "customer_id")`` on
  Customer): the target's partition holds the parent's key. The distinct parents' partitions are read in one
  batch: a store with :class:`~tierstore.stores.base.QueryMany` answers it in one request per shard (SQL:
  ``WHERE fk IN (…)``, with ``ROW_NUMBER() OVER (PARTITION BY fk …)`` for a per-parent limit; memory: one
  lookup; DynamoDB: one query per parent, concurrently, as it has no multi-partition query); any other store,
  or a database with a query cache, is asked one query per parent, concurrently.

Nested joins are spelled as a path, level by level: ``join(Order.customer, Customer.account)`` loads each
order's customer, then each (distinct) customer's account. A relation applies to every instance of its
owner reached so far — the items, or targets loaded by an earlier relation of the same call. Relations whose
owners are already reachable run concurrently. Every foreign key is validated before any I/O.
"""

from __future__ import annotations

from collections.abc import Callable, Sequence
from itertools import chain
from operator import attrgetter
from typing import Any, Protocol

from tierstore.concurrency import gather_all
from tierstore.errors import ConfigError, NotFound, ValidationError
from tierstore.model.cachekey import make_columns_check
from tierstore.model.relations import Many, Ref, Relation
from tierstore.model.schema import Key, Schema, base_type, index_key_type, schema_of
from tierstore.stores.base import QueryMany

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


_Wave = list[Ref[Any] | Many[Any]]
_PLANS: dict[tuple[type[Any], tuple[Relation[Any], ...]], list[_Wave]] = {}
_PLANS_MAX = 512


def _plan(root: type[Any], relations: Sequence[Relation[Any]]) -> list[_Wave]:
    """The waves of :func:`_make_plan`, kept per root and path (a query checks its path, then loads it)."""
    sig = (root, tuple(relations))
    waves = _PLANS.get(sig)
    if waves is None:
        waves = _make_plan(root, relations)
        if len(_PLANS) >= _PLANS_MAX:
            _PLANS.clear()
        _PLANS[sig] = waves
    return waves


def _make_plan(root: type[Any], relations: Sequence[Relation[Any]]) -> list[_Wave]:
    """Split ``relations`` into waves that can run concurrently; check each is reachable from ``root``."""
    reachable: set[type[Any]] = {root}
    waves: list[_Wave] = []
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
    if len(waves) == 1 and len(waves[0]) == 1:  # one relation, of the items themselves (the plan checked it)
        rel = waves[0][0]
        instances, values, _ = await (
            _load_ref(db, rel, items) if isinstance(rel, Ref) else _load_many(db, rel, items)
        )
        rel.set_all(instances, values)
        return
    # Instances reachable so far, per class: the items, then each relation's distinct targets (gathered only
    # while a later wave may need them).
    pool: dict[type[Any], list[Any]] = {schema.cls: items}
    seen: dict[type[Any], set[int]] = {}
    last = len(waves) - 1
    for w, wave in enumerate(waves):
        jobs = []
        for rel in wave:
            lists = [objs for cls, objs in pool.items() if issubclass(cls, rel.owner)]
            instances = lists[0] if len(lists) == 1 else [o for objs in lists for o in objs]
            jobs.append(_load_ref(db, rel, instances) if isinstance(rel, Ref) else _load_many(db, rel, instances))
        results = await gather_all(jobs)
        for rel, (instances, values, targets) in zip(wave, results, strict=True):
            rel.set_all(instances, values)
            if w == last:
                continue
            ids = seen.setdefault(rel.target, set())
            bucket = pool.setdefault(rel.target, [])
            for t in (chain.from_iterable(targets) if isinstance(rel, Many) else targets):
                if t is not None and id(t) not in ids:
                    ids.add(id(t))
                    bucket.append(t)


async def _load_ref(
    db: Loader, rel: Ref[Any], instances: list[Any]
) -> tuple[list[Any], list[Any], list[Any]]:
    target = schema_of(rel.target)
    fields = rel.fields
    repo = db.repository(rel.target)
    read = getattr(repo, "_get_by_key", None)  # a Repository's (a session's view reads through its identity map)
    if read is not None and not repo.cache.tiers:
        # No tier to ask: check the columns of foreign-key parts with a few C-level passes each (no None, the
        # key types, non-empty, ASCII text), de-duplicate once, and read the store; get_many would do both
        # again, per key. What the check declines takes the general way below.
        columns = [list(map(attrgetter(f), instances)) for f in fields]
        if target.key_columns_ok(columns):
            return await _load_checked(rel, target, read, instances, columns)
    # Foreign keys in the form Repository.get_many takes (the bare value for one-field keys), so they can
    # be de-duplicated and passed on as they are; get_many validates them all before any I/O.
    fks: list[Any]
    if len(fields) == 1:
        fks = list(map(attrgetter(fields[0]), instances))
        distinct = dict.fromkeys(fks)
        has_none = None in distinct
        if has_none:
            del distinct[None]
        uniq = list(distinct)
    else:
        fks = list(map(attrgetter(*fields), instances))
        if not (len(fields) == 2 and len(target.partition) == 1):  # else already (partition, sort)
            fks = [fk if None in fk else key_arg(target, fk) for fk in fks]
        uniq = list(dict.fromkeys(fks))
        has_none = None in chain.from_iterable(uniq)  # only a flat tuple as read can hold None
        if has_none:
            uniq = [fk for fk in uniq if None not in fk]
    found: list[Any] = await repo.get_many(uniq) if uniq else []
    by_fk = dict(zip(uniq, found, strict=True))
    if rel.required:
        missing = [k for k, v in by_fk.items() if v is None]
        if missing or has_none:
            raise NotFound(
                f"{rel.owner.__name__}.{rel.name} is required, but "
                + (f"{len(missing)} {target.name} item(s) do not exist" if missing else "a foreign key is None"),
                entity=target.name,
                key=missing[0] if missing else None,
            )
    get = by_fk.get
    return instances, [get(fk) for fk in fks], found


async def _load_checked(
    rel: Ref[Any], target: Schema[Any], read: Any, instances: list[Any], columns: list[list[Any]]
) -> tuple[list[Any], list[Any], list[Any]]:
    """:func:`_load_ref` for foreign keys whose columns passed the target's key check, from a repository that
    asks no tier (``read``: its ``_get_by_key``)."""
    single = len(columns) == 1
    fks: list[Any] = columns[0] if single else list(zip(*columns, strict=True))  # bare values, or flat keys
    uniq = list(dict.fromkeys(fks))
    keys = list(zip(uniq)) if single else uniq  # flat key tuples
    by_key = await read(keys)
    by_fk = dict(zip(uniq, map(by_key.get, keys), strict=True)) if single else by_key
    found = list(by_fk.values())
    values = list(map(by_fk.get, fks))
    if rel.required and None in values:  # (a key the store matched only by collation reads as absent)
        missing = [k for k in keys if by_key.get(k) is None]
        raise NotFound(
            f"{rel.owner.__name__}.{rel.name} is required, but {len(missing)} {target.name} item(s) do not exist",
            entity=target.name,
            key=key_arg(target, missing[0]),
        )
    return instances, values, found


async def _load_many(
    db: Loader, rel: Many[Any], instances: list[Any]
) -> tuple[list[Any], list[Any], list[Any]]:
    by, ix = rel.resolve()
    target = schema_of(rel.target)
    pfields = target.partition if ix is None else target.indexes[ix].partition_fields
    # Columns of parent values checked with a few C-level passes each (none None, the key types, non-empty,
    # ASCII text); what the check declines takes the general way below.
    columns = [list(map(attrgetter(f), instances)) for f in by]
    if _columns_check(target, pfields)(columns):
        pvs = list(zip(*columns, strict=True))
        distinct = list(dict.fromkeys(pvs))
        children = await _children(db.repository(rel.target), target, distinct, ix, rel)
        if len(distinct) == len(pvs):  # every instance its own parent value: each list goes to one instance
            return instances, children, children
        by_pv = dict(zip(distinct, children, strict=True))
        return instances, [list(by_pv[pv]) for pv in pvs], children
    index: dict[tuple[Any, ...], int] = {}
    uniq: list[tuple[Any, ...]] = []
    parents: list[int | None] = []
    get_pv = attrgetter(*by)
    single = len(by) == 1
    for obj in instances:
        got = get_pv(obj)
        pv = (got,) if single else got
        if None in pv:
            parents.append(None)
            continue
        i = index.get(pv)
        if i is None:
            i = index[pv] = len(uniq)
            uniq.append(pv)
        parents.append(i)
    repo = db.repository(rel.target)
    # Every partition value is checked before the first request goes out: the usual ones (non-empty ASCII
    # text, integers) by type here, anything else by the schema's own check.
    checks = list(zip(pfields, _key_types(target, pfields), strict=True))
    for pv in uniq:
        for value, (name, typ) in zip(pv, checks, strict=True):
            if type(value) is not typ or not (typ is int or (value and (typ is not str or value.isascii()))):
                target.check_value(name, value)
    children = await _children(repo, target, uniq, ix, rel) if uniq else []
    if len(uniq) == len(parents):  # every instance its own parent value: each list goes to one instance
        return instances, children, children
    values = [[] if i is None else list(children[i]) for i in parents]
    return instances, values, children  # the targets, one list per parent value


_KEY_TYPES: dict[tuple[Schema[Any], tuple[str, ...]], tuple[Any, ...]] = {}
_COLUMN_CHECKS: dict[tuple[Schema[Any], tuple[str, ...]], Callable[[Sequence[Sequence[Any]]], bool]] = {}
_BATCHES: dict[type[Any], bool] = {}


def _key_types(schema: Schema[Any], fields: tuple[str, ...]) -> tuple[Any, ...]:
    """The key type (str, int, bytes) of each field, as ``Schema.check_value`` sees it."""
    found = _KEY_TYPES.get((schema, fields))
    if found is None:
        found = _KEY_TYPES[(schema, fields)] = tuple(
            index_key_type(schema.field_types[f]) or base_type(schema.field_types[f]) for f in fields
        )
    return found


def _columns_check(schema: Schema[Any], fields: tuple[str, ...]) -> Callable[[Sequence[Sequence[Any]]], bool]:
    """:func:`~tierstore.model.cachekey.make_columns_check` for the key types of ``fields``, kept per schema."""
    found = _COLUMN_CHECKS.get((schema, fields))
    if found is None:
        found = _COLUMN_CHECKS[(schema, fields)] = make_columns_check(_key_types(schema, fields))
    return found


def _batches(store: Any) -> bool:
    """``isinstance(store, QueryMany)``, remembered per class (a protocol check walks the protocol's members)."""
    cls = type(store)
    known = _BATCHES.get(cls)
    if known is None:
        known = _BATCHES[cls] = isinstance(store, QueryMany)
    return known


async def _children(
    repo: Any, schema: Schema[Any], partitions: list[tuple[Any, ...]], ix: str | None, rel: Many[Any]
) -> list[list[Any]]:
    """The items of each partition, per :class:`Many`'s limit and order: one batched read where the store
    can, else one query per partition (also when a query cache should answer the queries)."""
    base = getattr(repo, "repo", repo)  # a session's repository wraps the database's
    if not base._ready:
        await base._ensure()
    store = base.store
    limit, reverse = rel.limit, rel.newest_first
    if base._context.query_cache is not None or not _batches(store):
        queries = [
            repo.query(p[0] if len(p) == 1 else p, index=ix, limit=limit, reverse=reverse) for p in partitions
        ]
        if limit is None:
            return await gather_all([q.all() for q in queries], rel.concurrency)
        pages = await gather_all([_first_page(q) for q in queries], rel.concurrency)
        return [page.items for page in pages]
    lists: list[list[Any]] = await store.query_many(
        schema, partitions, index=ix, limit=limit, reverse=reverse, concurrency=rel.concurrency
    )
    if schema.ttl is not None:
        live = base._live
        lists = [[c for c in group if live(c) is not None] for group in lists]
    adopt = getattr(repo, "_adopt", None)
    if adopt is not None:  # a session: items already in its identity map come back as those objects
        lists = [[adopt(c) for c in group] for group in lists]
    return lists


async def _first_page(query: Any) -> Any:
    return await query
