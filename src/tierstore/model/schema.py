"""Schema: everything tierstore needs to know about an entity class, read once and cached.

Keys are carried internally as flat tuples: the partition parts, then the sort parts. The cache key of an
item is ``{table:partition}`` or ``{table:partition}:sort``; the braces make the partition a Redis Cluster
hash tag, so one partition's items share a slot.
"""

from __future__ import annotations

import enum
import re
import types
import typing
import zlib
from collections.abc import Callable, Sequence
from typing import Any, Generic, TypeVar

import msgspec

from tierstore.errors import ConfigError, ValidationError
from tierstore.model.cachekey import (
    make_cache_key,
    make_columns_check,
    make_fast_key,
    make_fast_keys,
    make_fast_plain_key,
    make_plain_keys,
    token,
)
from tierstore.model.entity import Entity, Index
from tierstore.model.keys import EXPIRES, PARTITION, SORT, VERSION, Key, KeyMarker, KeyPart
from tierstore.model.relations import Relation
from tierstore.model.templates import CompiledTemplate, KeyTemplate, check_templates, compile_template
from tierstore.model.wide import is_wide, pack_wide, unpack_wide

__all__ = [
    "MAX_NESTING", "Key", "KeyPart", "Schema", "build_schema", "deeper_than", "index_key_type", "schema_of",
]

T = TypeVar("T")

_KEY_TYPES: tuple[type, ...] = (str, int, bytes)
# DynamoDB's rule (letters, digits, _ . -; up to 255); the SQL store narrows it to what SQL tables take.
_TABLE_NAME = re.compile(r"[A-Za-z0-9_][A-Za-z0-9_.-]{0,254}\Z")
_UNDECODABLE = frozenset({"raise", "skip"})
_IMMUTABLE_SCALARS: frozenset[Any] = frozenset({str, int, float, bool, bytes, type(None)})
MAX_NESTING = 256
"""Deepest nesting of containers a field may hold. msgspec's encoders and decoders stop at Python's recursion
limit counted from wherever they are called, so a fixed bound well below it makes what was written always
decodable, from any call depth (DynamoDB's own limit, 32, is checked by its store)."""


class FieldSpec(msgspec.Struct, frozen=True):
    name: str
    type: Any  # the declared type with key markers stripped
    required: bool
    default: Any
    stored: str = ""  # the name in stored and encoded form (msgspec's ``rename``/``field(name=...)``)


class Schema(Generic[T]):
    """The static description of one entity class. Build with :func:`schema_of`."""

    def __init__(
        self,
        cls: type[T],
        *,
        table: str,
        fields: tuple[FieldSpec, ...],
        partition: tuple[str, ...],
        sort: tuple[str, ...],
        version: str | None,
        ttl: str | None,
        indexes: dict[str, Index],
        relations: dict[str, Relation[Any]],
        undecodable: str = "raise",
        templates: dict[tuple[str | None, str], CompiledTemplate] | None = None,
        type_attribute: str | None = None,
        type_name: str | None = None,
    ) -> None:
        self.cls = cls
        self.templates: dict[tuple[str | None, str], CompiledTemplate] = templates or {}
        """Key templates by (index name or None for the table, ``"partition"``/``"sort"``)."""
        self.type_attribute = type_attribute
        """The attribute that holds :attr:`type_name` on every put (single-table designs), or None."""
        self.type_name = type_name or cls.__name__
        # Entities of a shared table and partition (templates, a type attribute) must not share cache keys or a
        # memory table: their identity includes the type.
        self.typed = bool(self.templates) or type_attribute is not None
        self.cache_table = f"{table}#{self.type_name}" if self.typed else table
        self.undecodable = undecodable
        """``"raise"`` or ``"skip"``: what a query does with a stored item that does not decode."""
        self.name = cls.__name__
        self.table = table
        self.fields = fields
        self.field_types = {f.name: f.type for f in fields}
        self.stored_names: dict[str, str] = {f.name: f.stored or f.name for f in fields}
        """Field name -> the attribute/column name it is stored and encoded under (msgspec renames honoured)."""
        self.partition = partition
        self.sort = sort
        self.key_fields = partition + sort
        self.key_types: tuple[type, ...] = tuple(self.field_types[n] for n in self.key_fields)
        self.version = version
        self.ttl = ttl
        self.indexes = indexes
        self.sparse: frozenset[str] = frozenset(
            n for ix in indexes.values() for n in ix.partition_fields + ix.sort_fields
            if base_type(self.field_types[n]) not in _KEY_TYPES
        )
        """Index fields that may be None (``X | None``): an item whose value is None is absent from the index."""
        self.relations = relations
        self.immutable = _deeply_immutable(cls)
        # Every field's type is immutable (the class itself may not be frozen): a shallow copy is a full copy.
        self.flat = all(_immutable_type(f.type, frozenset({cls})) for f in fields)
        fingerprint = repr([(f.name, repr(f.type)) for f in fields]).encode()
        self.schema_id = zlib.crc32(fingerprint)
        self.encoder = msgspec.msgpack.Encoder()
        self.decoder: msgspec.msgpack.Decoder[T] = msgspec.msgpack.Decoder(cls)
        self._encode = self.encoder.encode
        self._containers = tuple(f.name for f in fields if base_type(f.type) not in _IMMUTABLE_SCALARS)
        self._decode = self.decoder.decode
        self._tag_prefix = "{" + self.cache_table + ":"
        self._key_getter: Callable[[T], Key] = _make_getter(self.key_fields)
        self._cache_key: Callable[[Key], str] = make_cache_key(self._tag_prefix, len(partition), self.key_types)
        self.fast_plain_key: Callable[[Any, Any], Key | None] = make_fast_plain_key(
            len(partition), len(sort), self.key_types
        )
        self.fast_key: Callable[[Any, Any], tuple[Key, str] | None] = make_fast_key(
            self._tag_prefix, len(partition), len(sort), self.key_types
        )
        self.plain_keys: Callable[[list[Any]], list[Key]] = make_plain_keys(
            len(partition), len(sort), self.key_types, self.key_arg
        )
        """``get_many`` arguments → validated flat keys (no cache keys built)."""
        self.key_columns_ok: Callable[[Sequence[Sequence[Any]]], bool] = make_columns_check(self.key_types)
        self._value_types: dict[str, Any] = {}
        """Field name → the type :meth:`check_value` checks a key value against (worked out on first use)."""
        self.fast_keys: Callable[[list[Any]], tuple[list[Key], list[str]] | None] = make_fast_keys(
            self._tag_prefix, len(partition), len(sort), self.key_types
        )

    def __repr__(self) -> str:
        return (
            f"Schema({self.name}, table={self.table!r}, partition={self.partition}, sort={self.sort}, "
            f"version={self.version!r}, ttl={self.ttl!r}, indexes={sorted(self.indexes)})"
        )

    # -- keys --------------------------------------------------------------------------------------

    def key(self, partition: Any, sort: Any = None) -> Key:
        """Validate a key given the way users write it and return the flat key tuple."""
        if len(self.partition) == 1:
            parts: list[Any] = [partition]
        elif isinstance(partition, tuple) and len(partition) == len(self.partition):
            parts = list(partition)
        else:
            raise ValidationError(
                f"partition key of {self.name} has {len(self.partition)} parts {self.partition}; "
                f"pass a tuple of that length",
                entity=self.name,
                key=partition,
            )
        if self.sort:
            if sort is None:
                raise ValidationError(
                    f"{self.name} has a sort key {self.sort}; pass it", entity=self.name, key=partition
                )
            if len(self.sort) == 1:
                parts.append(sort)
            elif isinstance(sort, tuple) and len(sort) == len(self.sort):
                parts.extend(sort)
            else:
                raise ValidationError(
                    f"sort key of {self.name} has {len(self.sort)} parts {self.sort}; pass a tuple",
                    entity=self.name,
                    key=(partition, sort),
                )
        elif sort is not None:
            raise ValidationError(f"{self.name} has no sort key", entity=self.name, key=(partition, sort))
        key = tuple(parts)
        self.check_key(key)
        return key

    def check_key(self, key: Key) -> None:
        if len(key) != len(self.key_types):
            raise ValidationError(f"{self.name} key needs {len(self.key_types)} parts", entity=self.name, key=key)
        for value, typ, fname in zip(key, self.key_types, self.key_fields, strict=True):
            if type(value) is not typ and not (isinstance(value, typ) and not isinstance(value, bool)):
                raise ValidationError(
                    f"{self.name}.{fname} is {typ.__name__}, got {type(value).__name__}",
                    entity=self.name,
                    key=key,
                )
            if typ is not int and not value:
                raise ValidationError(f"{self.name}.{fname} must not be empty", entity=self.name, key=key)
            if isinstance(value, str) and not value.isascii() and not _utf8(value):
                raise ValidationError(
                    f"{self.name}.{fname} holds a lone surrogate, which no store or tier can hold (not UTF-8)",
                    entity=self.name,
                )

    def key_arg(self, arg: Any) -> Key:
        """A key as passed to ``get_many``/``delete_many``: the partition alone, or ``(partition, sort)``."""
        if self.sort:
            if not isinstance(arg, tuple) or len(arg) != 2:
                raise ValidationError(
                    f"{self.name} keys are (partition, sort) pairs", entity=self.name, key=arg
                )
            return self.key(arg[0], arg[1])
        return self.key(arg)

    def key_of(self, item: T) -> Key:
        return self._key_getter(item)

    def partition_of(self, key: Key) -> Key:
        return key[: len(self.partition)]

    def partition_token(self, partition: Key) -> str:
        return ",".join(token(p) for p in partition)

    def cache_key(self, key: Key) -> str:
        """``{table:partition}`` or ``{table:partition}:sort`` for a validated key."""
        return self._cache_key(key)

    # -- items -------------------------------------------------------------------------------------

    def validate_item(self, item: Any) -> T:
        """Check an item before any write: its type, its key, and its field values."""
        if type(item) is not self.cls:
            raise ValidationError(
                f"expected {self.name}, got {type(item).__name__}", entity=self.name
            )
        key = self.key_of(item)
        self.check_key(key)
        for name in self._containers:
            if deeper_than(getattr(item, name), MAX_NESTING):
                raise ValidationError(
                    f"invalid {self.name}: {self.name}.{name} is nested more than {MAX_NESTING} levels deep",
                    entity=self.name, key=key,
                )
        try:
            # Struct constructors do not check types; a round trip through the cache encoding does, and it
            # proves the item can be cached (and kept by the memory store) before anything is written.
            self.unpack(self.pack(item))
        except RecursionError:
            raise ValidationError(
                f"invalid {self.name}: {self._culprit(item)} is nested too deeply to encode", entity=self.name,
                key=key,
            ) from None
        except UnicodeError:
            raise ValidationError(
                f"invalid {self.name}: {self._culprit(item)} holds a lone surrogate, which no store or tier can "
                f"hold (not UTF-8)", entity=self.name, key=key,
            ) from None
        except (msgspec.ValidationError, msgspec.DecodeError, TypeError, ValueError) as exc:
            raise ValidationError(f"invalid {self.name}: {exc}", entity=self.name, key=key) from None
        return item

    def _culprit(self, item: T) -> str:
        """The first field of ``item`` that does not encode (for error messages), else the entity's name."""
        for f in self.fields:
            try:
                msgspec.msgpack.encode(getattr(item, f.name))
            except OverflowError:
                continue
            except Exception:  # any failure names the field: this only builds a message
                return f"{self.name}.{f.name}"
        return self.name

    def pack(self, item: T) -> bytes:
        """``item`` as msgpack: the cache envelope's payload and the memory store's form. Integers beyond 64
        bits take the wide form of :mod:`tierstore.model.wide`."""
        try:
            return self._encode(item)
        except OverflowError:
            return pack_wide(item)

    def unpack(self, data: bytes | memoryview) -> T:
        """The item :meth:`pack` wrote; ``msgspec.ValidationError``/``DecodeError`` when ``data`` is not one."""
        try:
            return self._decode(data)
        except msgspec.ValidationError:
            if is_wide(data):
                return unpack_wide(data, self.cls)
            raise

    def version_of(self, item: T) -> int:
        return int(getattr(item, self.version)) if self.version else 0

    def check_value(self, name: str, value: Any, *, allow_empty: bool = False) -> None:
        """Check one value given for field ``name`` (a query's partition or sort bound) before any I/O.

        ``None`` is refused even for an optional field: items without a value are not in a (sparse) index."""
        if value is None:
            raise ValidationError(
                f"{self.name}.{name}: None is no key value (items whose {name} is None are in no index on it)",
                entity=self.name,
            )
        typ = self._value_types.get(name)
        if typ is None:
            typ = self._value_types[name] = index_key_type(self.field_types[name]) or base_type(
                self.field_types[name]
            )
        if not isinstance(value, typ) or (isinstance(value, bool) and typ is not bool):
            raise ValidationError(
                f"{self.name}.{name} is {getattr(typ, '__name__', typ)}, got {type(value).__name__}",
                entity=self.name,
            )
        if not allow_empty and isinstance(value, str | bytes) and not value:
            raise ValidationError(f"{self.name}.{name} must not be empty", entity=self.name)
        if isinstance(value, str) and not value.isascii() and not _utf8(value):
            raise ValidationError(
                f"{self.name}.{name} holds a lone surrogate, which no store or tier can hold (not UTF-8)",
                entity=self.name,
            )

    def write_condition(
        self, item: Any, if_not_exists: bool, expect_version: int | None, check_version: bool
    ) -> int | None:
        """The version a put of ``item`` must find stored (0: no item, or one without a version), or ``None``.

        Versions are checked by default: an entity with a ``Version`` field is written only over the version
        it carries (a new item carries 0). ``expect_version=`` names another one; ``check_version=False``
        (or ``if_not_exists``) writes without a version check.
        """
        if not isinstance(check_version, bool):
            raise ValidationError(f"check_version must be a bool, got {check_version!r}", entity=self.name)
        if expect_version is not None:
            self.check_expect_version(expect_version)
            return expect_version
        if if_not_exists or not check_version or not self.version:
            return None
        return int(getattr(item, self.version))

    def check_expect_version(self, expect_version: int) -> None:
        """Check an ``expect_version=`` argument: the entity must declare a version, the value be an int >= 0."""
        if not self.version:
            raise ValidationError(f"{self.name} declares no Version field", entity=self.name)
        if not isinstance(expect_version, int) or isinstance(expect_version, bool) or expect_version < 0:
            raise ValidationError(
                f"expect_version must be an int >= 0, got {expect_version!r}", entity=self.name
            )


def deeper_than(value: Any, limit: int) -> bool:
    """Whether containers nest more than ``limit`` levels inside ``value`` (iterative: no recursion limit)."""
    stack = [(value, 1)]
    while stack:
        v, depth = stack.pop()
        if isinstance(v, dict):
            children: Any = v.values()
        elif isinstance(v, list | tuple | set | frozenset):
            children = v
        elif isinstance(v, msgspec.Struct):
            children = msgspec.structs.astuple(v)
        else:
            continue
        if depth > limit:
            return True
        stack.extend((c, depth + 1) for c in children if not isinstance(c, str | int | float | bytes | None))
    return False


def _utf8(text: str) -> bool:
    try:
        text.encode()
    except UnicodeEncodeError:
        return False
    return True


def _make_getter(names: tuple[str, ...]) -> Callable[[Any], Key]:
    if len(names) == 1:
        (a,) = names
        return lambda item: (getattr(item, a),)
    if len(names) == 2:
        a, b = names
        return lambda item: (getattr(item, a), getattr(item, b))
    return lambda item: tuple(getattr(item, n) for n in names)


def _strip(tp: Any) -> tuple[Any, list[KeyMarker]]:
    if typing.get_origin(tp) is typing.Annotated:
        base, *meta = typing.get_args(tp)
        markers = [m for m in meta if isinstance(m, KeyMarker)]
        others = [m for m in meta if not isinstance(m, KeyMarker)]
        inner, more = _strip(base)
        if others:
            inner = typing.Annotated[(inner, *others)]  # keep msgspec constraints (Meta)
        return inner, markers + more
    return tp, []


def index_key_type(tp: Any) -> type | None:
    """The key type (str, int or bytes) of an index field's type, ``X | None`` included; else ``None``."""
    tp = base_type(tp)
    origin = typing.get_origin(tp)
    if origin is typing.Union or origin is types.UnionType:
        args = [a for a in typing.get_args(tp) if a is not type(None)]
        if len(args) != 1 or len(args) == len(typing.get_args(tp)):
            return None
        tp = base_type(args[0])
    return tp if tp in _KEY_TYPES else None


def base_type(tp: Any) -> Any:
    """``tp`` without its ``Annotated`` wrappers (markers and msgspec constraints)."""
    while typing.get_origin(tp) is typing.Annotated:
        tp = typing.get_args(tp)[0]
    return tp


def _deeply_immutable(cls: type[Any], seen: frozenset[type] = frozenset()) -> bool:
    config = getattr(cls, "__struct_config__", None)
    if config is None or not config.frozen or cls in seen:
        return cls in seen
    hints = typing.get_type_hints(cls)
    return all(_immutable_type(t, seen | {cls}) for t in hints.values())


def _immutable_type(tp: Any, seen: frozenset[type]) -> bool:
    tp = base_type(tp)
    if tp in _IMMUTABLE_SCALARS:
        return True
    origin = typing.get_origin(tp)
    if origin in (tuple, frozenset, typing.Union) or str(origin) == "<class 'types.UnionType'>":
        return all(_immutable_type(a, seen) for a in typing.get_args(tp) if a is not Ellipsis)
    if origin is typing.Literal:
        return True
    if isinstance(tp, type) and issubclass(tp, enum.Enum):
        return True
    if isinstance(tp, type) and hasattr(tp, "__struct_config__"):
        return _deeply_immutable(tp, seen)
    return False


def _names(value: str | Sequence[str] | KeyTemplate | None) -> tuple[str, ...]:
    if value is None:
        return ()
    if isinstance(value, KeyTemplate):
        return value.fields
    return (value,) if isinstance(value, str) else tuple(value)


def build_schema(cls: type[T]) -> Schema[T]:
    decl = cls.__tierstore_decl__  # type: ignore[attr-defined]
    struct_cls: Any = cls
    where = cls.__name__
    table = decl["table"]
    if table is None:
        raise ConfigError(f"{where}: declare the table, e.g. class {where}(Entity, table=...)", entity=where)
    if not isinstance(table, str) or not _TABLE_NAME.match(table):
        raise ConfigError(
            f"{where}: table name {table!r} must match {_TABLE_NAME.pattern}", entity=where
        )
    hints = typing.get_type_hints(cls, include_extras=True)
    infos = {f.name: f for f in msgspec.structs.fields(struct_cls)}
    fields: list[FieldSpec] = []
    roles: dict[KeyMarker, list[str]] = {PARTITION: [], SORT: [], VERSION: [], EXPIRES: []}
    for name in struct_cls.__struct_fields__:
        tp, markers = _strip(hints[name])
        if len(markers) > 1:
            raise ConfigError(f"{where}.{name}: a field can have one role, got {markers}", entity=where)
        for m in markers:
            roles[m].append(name)
        info = infos[name]
        default = info.default if info.default is not msgspec.NODEFAULT else None
        fields.append(FieldSpec(name, tp, info.required, default, info.encode_name))
    field_types = {f.name: f.type for f in fields}

    templates: dict[tuple[str | None, str], CompiledTemplate] = {}

    def _role(marker: KeyMarker, keyword: str) -> tuple[str, ...]:
        annotated = roles[marker]
        raw = decl[keyword]
        if isinstance(raw, KeyTemplate):
            role = "partition" if marker is PARTITION else "sort"
            tpl = templates[(None, role)] = compile_template(
                raw, field_types, where, keyword, allow_constant=marker is SORT
            )
            if annotated:
                raise ConfigError(
                    f"{where}: {marker.role} given both by annotation ({annotated}) and by the template of "
                    f"{keyword}=; the template's fields are the key",
                    entity=where,
                )
            return tpl.fields
        declared = _names(raw)
        if annotated and declared:
            raise ConfigError(
                f"{where}: {marker.role} given both by annotation ({annotated}) and by {keyword}=",
                entity=where,
            )
        if len(annotated) > 1:
            raise ConfigError(
                f"{where}: fields {annotated} are all marked {marker.role}; for a composite key declare "
                f"the order with {keyword}={tuple(annotated)!r}",
                entity=where,
            )
        names = declared or tuple(annotated)
        for n in names:
            if n not in field_types:
                raise ConfigError(f"{where}: {keyword} names unknown field {n!r}", entity=where)
        if len(set(names)) != len(names):
            raise ConfigError(f"{where}: {keyword} repeats a field: {names}", entity=where)
        return names

    partition = _role(PARTITION, "partition_key")
    sort = _role(SORT, "sort_key")
    if not partition:
        raise ConfigError(f"{where}: no partition key; mark a field PartitionKey[...]", entity=where)
    if set(partition) & set(sort):
        raise ConfigError(f"{where}: a field cannot be in both partition and sort key", entity=where)
    for n in partition + sort:
        if field_types[n] not in _KEY_TYPES:
            raise ConfigError(
                f"{where}.{n}: key fields must be str, int or bytes, not {field_types[n]!r}", entity=where
            )
    for marker in (VERSION, EXPIRES):
        if len(roles[marker]) > 1:
            raise ConfigError(f"{where}: more than one {marker.role} field: {roles[marker]}", entity=where)
        for n in roles[marker]:
            if field_types[n] is not int:
                raise ConfigError(f"{where}.{n}: the {marker.role} field must be int", entity=where)
    indexes: dict[str, Index] = {}
    for ix in decl["indexes"]:
        if not isinstance(ix, Index):
            raise ConfigError(f"{where}: indexes= takes Index(...) values, got {ix!r}", entity=where)
        if ix.name in indexes or not _TABLE_NAME.match(ix.name):
            raise ConfigError(f"{where}: index name {ix.name!r} is repeated or invalid", entity=where)
        for n in ix.partition_fields + ix.sort_fields:
            if n not in field_types:
                raise ConfigError(f"{where}: index {ix.name} names unknown field {n!r}", entity=where)
            if index_key_type(field_types[n]) is None:
                raise ConfigError(
                    f"{where}: index {ix.name} field {n} must be str, int or bytes, or one of them | None "
                    "(a sparse index: items without the value are not in it)", entity=where,
                )
        for role, spec in (("partition", ix.partition), ("sort", ix.sort)):
            if isinstance(spec, KeyTemplate):
                if ix.local:
                    raise ConfigError(f"{where}: local index {ix.name} takes field names, not templates", entity=where)
                templates[(ix.name, role)] = compile_template(
                    spec, field_types, where, f"index {ix.name} {role}", allow_constant=role == "sort"
                )
        if ix.local and ix.partition_fields != partition:
            raise ConfigError(
                f"{where}: local index {ix.name} must share the table's partition key {partition}", entity=where
            )
        indexes[ix.name] = ix
    undecodable = decl.get("undecodable", "raise")
    if undecodable not in _UNDECODABLE:
        raise ConfigError(f"{where}: undecodable= is 'raise' or 'skip', got {undecodable!r}", entity=where)
    type_attribute, type_name = check_templates(
        templates, decl.get("type_attribute"), decl.get("type_name"), {f.stored or f.name for f in fields}, where
    )
    relations: dict[str, Relation[Any]] = {}
    for klass in reversed(cls.__mro__):
        for attr, value in vars(klass).items():
            if isinstance(value, Relation):
                if attr in field_types:
                    raise ConfigError(f"{where}: relation {attr!r} clashes with a field", entity=where)
                relations[attr] = value
    return Schema(
        cls,
        table=table,
        fields=tuple(fields),
        partition=partition,
        sort=sort,
        version=roles[VERSION][0] if roles[VERSION] else None,
        ttl=roles[EXPIRES][0] if roles[EXPIRES] else None,
        indexes=indexes,
        relations=relations,
        undecodable=undecodable,
        templates=templates,
        type_attribute=type_attribute,
        type_name=type_name,
    )


def schema_of(cls: type[T]) -> Schema[T]:
    """The cached :class:`Schema` of an entity class (built on first use if forward refs delayed it)."""
    schema = getattr(cls, "__tierstore_schema__", None)
    if schema is None:
        if not (isinstance(cls, type) and issubclass(cls, Entity)):
            raise ConfigError(f"{cls!r} is not a tierstore Entity")
        try:
            schema = build_schema(cls)
        except NameError as exc:
            raise ConfigError(f"{cls.__name__}: unresolved type annotation: {exc}", entity=cls.__name__) from None
        setattr(cls, "__tierstore_schema__", schema)  # noqa: B010  # T is any Entity class here
    return schema
