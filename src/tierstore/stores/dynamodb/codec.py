"""A fast item codec between msgspec Structs and DynamoDB AttributeValue dicts, precomputed per schema.

boto3's ``TypeSerializer``/``TypeDeserializer`` dispatch every value through ``getattr`` and build a
``Decimal`` for every number; here a Struct goes through ``msgspec.to_builtins`` and one type switch per value,
and back through one type switch per value and ``msgspec.convert`` (which also checks the types).

Mapping (both ways): ``str`` ↔ S, ``int``/``float`` ↔ N, ``bool`` ↔ BOOL, ``None`` ↔ NULL, ``bytes`` ↔ B,
``list``/``tuple`` ↔ L, ``dict``/nested Struct ↔ M, ``set``/``frozenset`` of str/int/float/bytes ↔ SS/NS/BS
(an *empty* set is no attribute at all, since DynamoDB has no empty sets: a put ``REMOVE``s it, and a missing
attribute of a set field reads as the empty set — so another writer's ``ADD tags :t`` works on it); everything
msgspec turns into a builtin (datetime, UUID, Decimal, enums…) travels as that builtin (mostly S). An optional
index key field (a sparse index) that is None is no attribute at all, never NULL (index keys cannot be NULL): a
put ``REMOVE``s it, with any composite index key holding it, and the item leaves the index. Binary values
are accepted both as ``bytes`` (botocore, DAX) and as base64 text (the raw JSON wire protocol).

Keys. A key made of one field is stored in that field's own attribute (S, N or B). A key of several fields
(``partition_key=("tenant", "stream")``) gets a synthetic S attribute (``_pk``/``_sk``, ``_<index>_pk``/
``_<index>_sk`` for indexes) next to the fields. A partition key is only compared for equality, so its parts are
joined readably: ``acme#s1`` (``str`` parts with ``%`` and ``#`` percent-escaped as ``%25``/``%23``, ``int``
parts in decimal, ``bytes`` in hex). A sort key's order matters (range conditions, the order of a query), so a
composite sort key holds the parts encoded so that byte order is tuple order:

* ``str``: the text with NUL escaped as NUL+``\\x02``, then the terminator NUL+``\\x01``;
* ``int`` (-2**63 ≤ n < 2**63): ``n + 2**63`` as 20 zero-padded digits, then the terminator;
* ``bytes``: lowercase hex, then the terminator.

A shorter part sorts before any longer one that extends it (the terminator is below every other character) and
no part's encoding is a prefix of another's, so a condition on the first sort part becomes a range or prefix
condition on the synthetic attribute (:meth:`KeyLayout.condition`).
"""

from __future__ import annotations

import base64
import operator
import typing
from collections.abc import Callable, Mapping
from dataclasses import dataclass
from typing import Any, Generic, TypeVar

import msgspec

from tierstore.errors import ConfigError, StoreError, ValidationError
from tierstore.model.schema import Key, KeyPart, Schema, base_type
from tierstore.query import SortCondition
from tierstore.stores.dynamodb.keyparts import parse_readable, readable

__all__ = ["AV", "DynamoCodec", "KeyLayout", "codec_for", "from_av", "key_identity", "parse_readable", "to_av"]

T = TypeVar("T")
AV = dict[str, Any]

_NULL: AV = {"NULL": True}
_TERM = "\x00\x01"
_NEXT = "\x00\x02"  # one past the terminator: the exclusive upper bound of every extension of a part
_INT_OFFSET = 2**63
_BUILTINS = (bytes, bytearray)


# -- values ------------------------------------------------------------------------------------------------


def _num_text(v: int | float) -> str:
    if v.__class__ is int:
        return str(v)
    if v != v or v in (float("inf"), float("-inf")):
        raise ValidationError("DynamoDB numbers cannot be NaN or Infinity", backend="dynamodb")
    return repr(v)


def to_av(v: Any) -> AV:
    """One builtin value (as ``msgspec.to_builtins`` returns them) as an AttributeValue."""
    t = v.__class__
    if t is str:
        return {"S": v}
    if t is int:
        return {"N": str(v)}
    if t is bool:
        return {"BOOL": v}
    if v is None:
        return {"NULL": True}
    if t is float:
        return {"N": _num_text(v)}
    if t is dict:
        return {"M": {k: to_av(x) for k, x in v.items()}}
    if t is list or t is tuple:
        return {"L": [to_av(x) for x in v]}
    if t is bytes or t is bytearray:
        return {"B": bytes(v)}
    raise ValidationError(f"cannot store a {t.__name__} in DynamoDB", backend="dynamodb")


def _num(text: str) -> int | float:
    try:
        return int(text)
    except ValueError:
        return float(text)


def _blob(v: Any) -> bytes:
    return v if v.__class__ is bytes else base64.b64decode(v)


def from_av(av: Mapping[str, Any]) -> Any:
    """One AttributeValue as a builtin value (sets as lists: ``msgspec.convert`` makes them sets again)."""
    for tag, v in av.items():
        if tag == "S":
            return v
        if tag == "N":
            try:
                return int(v)
            except ValueError:
                return float(v)
        if tag == "M":
            return {k: from_av(x) for k, x in v.items()}
        if tag == "L":
            return [from_av(x) for x in v]
        if tag == "BOOL":
            return v
        if tag == "NULL":
            return None
        if tag == "B":
            return _blob(v)
        if tag == "SS":
            return list(v)
        if tag == "NS":
            return [_num(x) for x in v]
        if tag == "BS":
            return [_blob(x) for x in v]
        raise StoreError(f"unknown AttributeValue type {tag!r}", backend="dynamodb")
    raise StoreError("empty AttributeValue", backend="dynamodb")


def key_identity(av: Mapping[str, Any]) -> tuple[Any, ...]:
    """A hashable identity of a key AttributeValue map, equal for ``bytes`` and its base64 text."""
    out = []
    for name in sorted(av):
        ((tag, v),) = av[name].items()
        out.append((name, tag, _blob(v) if tag == "B" else v))
    return tuple(out)


def _set_encoder(elem: Any) -> Callable[[Any], AV] | None:
    if elem is str:
        tag, conv = "SS", None
    elif elem is int or elem is float:
        tag, conv = "NS", _num_text
    elif elem is bytes:
        tag, conv = "BS", None
    else:
        return None

    def encode(values: list[Any]) -> AV:
        return {tag: values if conv is None else [conv(x) for x in values]}

    return encode


def _unwrap_optional(tp: Any) -> Any:
    args = typing.get_args(tp)
    if args and type(None) in args:
        rest = [a for a in args if a is not type(None)]
        if len(rest) == 1:
            return rest[0]
    return tp


def _kind(tp: Any) -> tuple[str, str, bool] | None:
    """The fast decoding of a field: (the AttributeValue tag it is stored under, the conversion, whether it
    may be None), or None for the generic path."""
    from tierstore.model.schema import base_type

    plain = base_type(tp)
    base = base_type(_unwrap_optional(plain))
    kind = _KINDS.get(base)
    return None if kind is None else (*kind, base is not plain)


_KINDS: dict[Any, tuple[str, str]] = {
    str: ("S", ""), int: ("N", "int"), float: ("N", "float"), bool: ("BOOL", ""), bytes: ("B", "_blob"),
}


def _compile_fields(
    kinds: Mapping[str, tuple[str, str, bool] | None], empty_sets: tuple[str, ...] = (),
    absent_none: tuple[str, ...] = (),
) -> Callable[[Mapping[str, AV]], dict[str, Any]]:
    """A function from an AttributeValue map to a dict of builtins, specialised for these attributes.

    Generated code, because the per-attribute work is the whole cost of decoding a page. Scalar fields that
    cannot be None are read in one dict literal with their expected tag (``item["n"]["N"]``); a missing
    attribute or another tag raises, and the caller takes the careful path for that item. Optional and
    structured fields are read one by one. Names enter the source only as ``repr()`` literals.
    """
    strict = [(name, k) for name, k in kinds.items() if k is not None and not k[2]]
    loose = [(name, k) for name, k in kinds.items() if k is None or k[2]]
    body = ", ".join(f"{name!r}: {conv}(item[{name!r}][{tag!r}])" for name, (tag, conv, _) in strict)
    lines = ["def fields(item):", f"    d = {{{body}}}"] + (["    get = item.get"] if loose else [])
    for name, kind in loose:
        lit = repr(name)
        lines += [f"    av = get({lit})", "    if av is not None:"]
        if kind is None:
            lines.append(f"        d[{lit}] = from_av(av)")
            if name in empty_sets:
                lines += ["    else:", f"        d[{lit}] = []"]
            continue
        tag, conv, _ = kind
        lines += [
            f"        v = av.get({tag!r})",
            f"        d[{lit}] = {conv}(v) if v is not None else from_av(av)",
        ]
        if name in absent_none:  # an optional index key field is stored absent when None
            lines += ["    else:", f"        d[{lit}] = None"]
    lines.append("    return d")
    namespace: dict[str, Any] = {"from_av": from_av, "_blob": _blob}
    exec("\n".join(lines), namespace)  # noqa: S102 -- source built from repr() literals and fixed text only
    fields: Callable[[Mapping[str, AV]], dict[str, Any]] = namespace["fields"]
    return fields


# -- keys --------------------------------------------------------------------------------------------------


def _part(value: KeyPart) -> str:
    if isinstance(value, str):
        return value.replace("\x00", _NEXT) + _TERM
    if isinstance(value, int) and not isinstance(value, bool):
        if not -_INT_OFFSET <= value < _INT_OFFSET:
            raise ValidationError(
                f"an int in a composite DynamoDB key must fit in 64 bits, got {value}", backend="dynamodb"
            )
        return f"{value + _INT_OFFSET:020d}{_TERM}"
    if isinstance(value, bytes):
        return value.hex() + _TERM
    raise ValidationError(f"key parts are str, int or bytes, got {type(value).__name__}", backend="dynamodb")


def _prefix_text(value: str | bytes) -> str:
    """A begins_with prefix of a part: the part's encoding without its terminator."""
    return value.replace("\x00", _NEXT) if isinstance(value, str) else value.hex()


_SCALAR_TAG = {str: "S", int: "N", bytes: "B"}


@dataclass(frozen=True, slots=True)
class KeyLayout:
    """Where one key (partition or sort, of the table or an index) lives in the item."""

    attr: str
    """The attribute name (a field's encoded name, or a synthetic ``_pk``-style name)."""
    type: str
    """Its DynamoDB type: S, N or B."""
    fields: tuple[str, ...]
    field_types: tuple[Any, ...]
    synthetic: bool
    readable: bool = False
    """A composite partition key: its parts joined by ``#`` (see the module docstring), not order-preserving."""

    def value(self, parts: tuple[Any, ...]) -> AV:
        if self.readable:
            return {"S": "#".join(readable(p) for p in parts)}
        if self.synthetic:
            return {"S": "".join(_part(p) for p in parts)}
        (v,) = parts
        if self.type == "S":
            return {"S": v}
        if self.type == "N":
            return {"N": str(v)}
        return {"B": v}

    def condition(self, cond: SortCondition, name: str, value: str) -> tuple[str, list[AV]] | bool:
        """``cond`` on this (sort) key as a KeyConditionExpression fragment and its values.

        ``name``/``value``: the placeholders to use (``value`` gets a numeric suffix). ``True``: no condition
        needed (every item matches); ``False``: no item can match (skip the request).
        """
        op, vals = cond.op, cond.values
        if op == "between" and vals[0] > vals[1]:
            return False
        if self.synthetic:
            return self._synthetic_condition(op, vals, name, value)
        if self.type != "N":
            # Key values are never empty, and DynamoDB rejects an empty value in a key condition.
            empty = [not v for v in vals]
            if any(empty):
                if op in ("gt", "ge", "begins_with"):
                    return True
                if op in ("eq", "lt", "le") or empty[1]:
                    return False
                op, vals = "le", (vals[1],)  # between("", b)
        avs = [self.value((v,)) for v in vals]
        if op == "begins_with":
            return f"begins_with({name}, {value}0)", avs
        if op == "between":
            return f"{name} BETWEEN {value}0 AND {value}1", avs
        sym = {"eq": "=", "lt": "<", "le": "<=", "gt": ">", "ge": ">="}[op]
        return f"{name} {sym} {value}0", avs

    def _synthetic_condition(
        self, op: str, vals: tuple[Any, ...], name: str, value: str
    ) -> tuple[str, list[AV]] | bool:
        def low(v: Any) -> AV:  # every key whose first part is v starts with this
            return {"S": _part(v)}

        def high(v: Any) -> AV:  # above every key whose first part is v, below every larger first part
            return {"S": _part(v)[: -len(_TERM)] + _NEXT}

        if op == "eq":
            return f"begins_with({name}, {value}0)", [low(vals[0])]
        if op == "begins_with":
            if not vals[0]:
                return True
            return f"begins_with({name}, {value}0)", [{"S": _prefix_text(vals[0])}]
        if op == "lt":
            return f"{name} < {value}0", [low(vals[0])]
        if op == "le":
            return f"{name} < {value}0", [high(vals[0])]
        if op == "gt":
            return f"{name} > {value}0", [high(vals[0])]
        if op == "ge":
            return f"{name} >= {value}0", [low(vals[0])]
        return f"{name} BETWEEN {value}0 AND {value}1", [low(vals[0]), high(vals[1])]


def _layout(
    schema: Schema[Any], fields: tuple[str, ...], synthetic_name: str, names: Mapping[str, str],
    role: tuple[str | None, str] | None = None,
) -> KeyLayout:
    from tierstore.model.schema import index_key_type

    types = tuple(index_key_type(schema.field_types[f]) or str for f in fields)  # key fields: always one
    template = schema.templates.get(role) if role is not None else None
    if template is not None:
        from tierstore.stores.dynamodb.keytemplates import TemplateLayout

        return TemplateLayout(template.attribute, "S", template.fields, template.types, True, template=template)
    if len(fields) == 1:
        return KeyLayout(names[fields[0]], _SCALAR_TAG[types[0]], fields, types, synthetic=False)
    # A partition is only ever compared for equality: its parts are joined readably. A sort key keeps the
    # order-preserving encoding (range conditions and the order of a query's items depend on it).
    readable = role is not None and role[1] == "partition"
    return KeyLayout(synthetic_name, "S", fields, types, synthetic=True, readable=readable)


# -- the codec ---------------------------------------------------------------------------------------------


class DynamoCodec(Generic[T]):
    """Struct ↔ AttributeValue map for one schema, plus its key layouts. Build with :func:`codec_for`."""

    def __init__(self, schema: Schema[T]) -> None:
        cls = schema.cls
        config = cls.__struct_config__  # type: ignore[attr-defined]
        where = schema.name
        if config.array_like:
            raise ConfigError(f"{where}: array_like entities cannot be stored in DynamoDB (attributes need names)")
        self.schema = schema
        self.cls = cls
        names = dict(zip(cls.__struct_fields__, cls.__struct_encode_fields__, strict=True))  # type: ignore[attr-defined]
        self.names = names
        self.attrs: tuple[str, ...] = tuple(names.values()) + ((config.tag_field,) if config.tag_field else ())
        self.partition = _layout(schema, schema.partition, "_pk", names, (None, "partition"))
        self.sort = (
            _layout(schema, schema.sort, "_sk", names, (None, "sort"))
            if schema.sort or (None, "sort") in schema.templates else None
        )
        self.indexes: dict[str, tuple[KeyLayout, KeyLayout | None]] = {}
        self.local_indexes: frozenset[str] = frozenset(
            n for n, ix in schema.indexes.items() if getattr(ix, "local", False)
        )
        for ix_name, ix in schema.indexes.items():
            if ix_name in self.local_indexes:
                # An LSI shares the table's partition key and needs a sort key of its own.
                if ix.partition_fields != schema.partition or not ix.sort_fields:
                    raise ConfigError(
                        f"{where}: local index {ix_name} must have the table's partition key "
                        f"{schema.partition} and a sort key"
                    )
                self.indexes[ix_name] = (self.partition, _layout(schema, ix.sort_fields, f"_{ix_name}_sk", names))
                continue
            self.indexes[ix_name] = (
                _layout(schema, ix.partition_fields, f"_{ix_name}_pk", names, (ix_name, "partition")),
                _layout(schema, ix.sort_fields, f"_{ix_name}_sk", names, (ix_name, "sort"))
                if ix.sort_fields or (ix_name, "sort") in schema.templates else None,
            )
        layouts = [self.partition, *([self.sort] if self.sort else [])]
        for p, s in self.indexes.values():
            layouts += [p, *([s] if s else [])]
        self.synthetic = tuple(lay for lay in dict.fromkeys(layouts) if lay.synthetic)
        for lay in self.synthetic:
            if lay.attr in self.attrs:
                raise ConfigError(f"{where}: field name {lay.attr!r} is reserved for a DynamoDB composite key")
        self._sparse_attrs, self.sparse_composites = self._sparse_fields(schema)
        self.key_attrs: tuple[str, ...] = (self.partition.attr,) + ((self.sort.attr,) if self.sort else ())
        self.version_attr = names[schema.version] if schema.version else None
        self.ttl_attr = names[schema.ttl] if schema.ttl else None
        # Attribute types of every key attribute (table and indexes), for CreateTable.
        self.attribute_types: dict[str, str] = {}
        for lay in layouts:
            if self.attribute_types.setdefault(lay.attr, lay.type) != lay.type:
                raise ConfigError(f"{where}: attribute {lay.attr!r} is used as a key with two types")
        # Index key attributes that are plain fields must not be empty (DynamoDB rejects the write).
        self._index_fields = tuple(
            (names[lay.fields[0]], ix_name)
            for ix_name, pair in self.indexes.items()
            for lay in pair
            if lay is not None and not lay.synthetic and lay.type != "N"
        )
        # Every key attribute of a secondary index, with whether it is a sort key: checked on writes (sizes).
        self.index_key_attrs: tuple[tuple[str, str, bool], ...] = tuple(
            (lay.attr, ix_name, is_sort)
            for ix_name, (p_lay, s_lay) in self.indexes.items()
            for lay, is_sort in ((p_lay, False), (s_lay, True))
            if lay is not None and not (ix_name in self.local_indexes and not is_sort)
        )
        hints = {f.name: f.type for f in schema.fields}
        self._set_encoders: dict[str, Callable[[Any], AV]] = {}
        for fname, tp in hints.items():
            tp = _unwrap_optional(tp)
            origin = typing.get_origin(tp)
            if origin in (set, frozenset):
                (elem,) = typing.get_args(tp) or (Any,)
                enc = _set_encoder(elem)
                if enc is not None:
                    self._set_encoders[names[fname]] = enc
        self._np = len(schema.partition)
        self._convert_error = (msgspec.ValidationError, TypeError, ValueError)
        self._key_getters = self._make_key_getters()
        kinds = {names[f.name]: _kind(f.type) for f in schema.fields}
        if config.tag_field:
            kinds[config.tag_field] = None
        # A set field whose attribute is missing reads as the empty set (how an empty set is stored).
        self._empty_sets = tuple(
            a for f in schema.fields if (a := names[f.name]) in self._set_encoders
            and typing.get_origin(base_type(f.type)) in (set, frozenset)
        )
        self._fields: Callable[[Mapping[str, AV]], dict[str, Any]] = _compile_fields(
            kinds, self._empty_sets, self._sparse_attrs
        )
        self.type_attr = schema.type_attribute
        self.typed = schema.typed
        self.type_av: AV = {"S": schema.type_name}
        # Template layouts (the table key's first): an item lacking a template's fields reads them from it.
        self.templates = tuple(lay for lay in self.synthetic if getattr(lay, "template", None) is not None)
        self._table_templates = tuple(
            lay for lay in (self.partition, self.sort) if lay is not None and lay in self.templates
        )
        if self.templates:
            plain_fields = self._fields
            self._fields = lambda raw: plain_fields(self.fill(raw))

    def _sparse_fields(self, schema: Schema[T]) -> tuple[tuple[str, ...], tuple[str, ...]]:
        """The attributes of optional index key fields (absent when None, never NULL) and the generated
        composite key attributes that hold one."""
        plain = tuple(self.names[f] for f in sorted(schema.sparse))
        composite = tuple(lay.attr for lay in self.synthetic if set(lay.fields) & schema.sparse)
        return plain, composite

    def _make_key_getters(self) -> list[tuple[str, Callable[[Any], tuple[Any, ...]], KeyLayout]]:
        out: list[tuple[str, Callable[[Any], tuple[Any, ...]], KeyLayout]] = []
        for lay in self.synthetic:
            getter: Callable[[Any], tuple[Any, ...]]
            if len(lay.fields) > 1:
                getter = operator.attrgetter(*lay.fields)  # attrgetter of 2+ names returns a tuple
            elif lay.fields:
                one = operator.attrgetter(lay.fields[0])
                getter = lambda item, one=one: (one(item),)  # type: ignore[misc]  # noqa: E731
            else:
                getter = lambda item: ()  # noqa: E731  # a constant template
            out.append((lay.attr, getter, lay))
        return out

    def __repr__(self) -> str:
        return f"DynamoCodec({self.schema.name}, key={self.key_attrs})"

    # -- items -------------------------------------------------------------------------------------------

    def encode(self, item: T) -> dict[str, AV]:
        """The full item: every field, plus the synthetic key attributes."""
        raw = msgspec.to_builtins(item, builtin_types=_BUILTINS, str_keys=True)
        sets = self._set_encoders
        if sets:
            out = {}
            for k, v in raw.items():
                if k not in sets or v is None:
                    out[k] = to_av(v)
                elif v:
                    out[k] = sets[k](v)
                # an empty set is no attribute at all (DynamoDB has no empty sets; a put REMOVEs it)
        else:
            out = {k: to_av(v) for k, v in raw.items()}
        for attr, getter, lay in self._key_getters:
            parts = getter(item)
            if None in parts:  # a sparse composite index key: no attribute, so the item is not in the index
                continue
            out[attr] = lay.value(parts)
        for attr in self._sparse_attrs:
            if out.get(attr) == _NULL:  # GSI/LSI keys cannot be NULL: absent, so the item leaves the index
                del out[attr]
        if self.type_attr is not None:
            out[self.type_attr] = self.type_av
        for attr, ix_name in self._index_fields:
            av = out.get(attr)
            if av is not None and not next(iter(av.values()), None):
                raise ValidationError(
                    f"{self.schema.name}.{attr} is a key of index {ix_name} and must not be empty on DynamoDB",
                    entity=self.schema.name, key=self.schema.key_of(item), backend="dynamodb",
                )
        return out

    def fill(self, av_item: Mapping[str, AV]) -> Mapping[str, AV]:
        """``av_item`` with the fields it lacks read back from its key templates (another writer's item)."""
        from tierstore.stores.dynamodb.keytemplates import fill

        return fill(self, av_item)

    def foreign(self, av_item: Mapping[str, AV]) -> bool:
        """Whether a stored item belongs to another entity type of a shared table (see ``keytemplates``)."""
        from tierstore.stores.dynamodb.keytemplates import foreign

        return foreign(self, av_item)

    def _generic_fields(self, av_item: Mapping[str, AV]) -> dict[str, Any]:
        av_item = self.fill(av_item) if self.templates else av_item
        d = {}
        for name in self.attrs:
            av = av_item.get(name)
            if av is not None:
                d[name] = from_av(av)
            elif name in self._empty_sets:
                d[name] = []
            elif name in self._sparse_attrs:
                d[name] = None
        return d

    def decode(self, av_item: Mapping[str, AV]) -> T:
        try:
            d = self._fields(av_item)
        except (KeyError, ValueError, TypeError, AttributeError):  # a missing field, another tag: careful path
            d = self._generic_fields(av_item)
        try:
            return msgspec.convert(d, self.cls)
        except self._convert_error:
            pass
        try:  # dicts with non-str keys (dict[int, str]) travel with str keys
            return msgspec.convert(d, self.cls, str_keys=True)
        except self._convert_error as exc:
            raise StoreError(
                f"a stored item does not match {self.schema.name}: {exc}", entity=self.schema.name,
                backend="dynamodb",
            ) from None

    def decode_many(self, items: list[dict[str, AV]]) -> list[T]:
        fields, convert, cls = self._fields, msgspec.convert, self.cls
        try:
            return [convert(fields(i), cls) for i in items]
        except (KeyError, ValueError, TypeError, AttributeError, msgspec.ValidationError):
            decode = self.decode  # some item needs the careful path (and maybe raises a StoreError)
            return [decode(i) for i in items]

    # -- keys --------------------------------------------------------------------------------------------

    def key(self, key: Key) -> dict[str, AV]:
        """The table key attributes of a flat key tuple."""
        n = self._np
        out = {self.partition.attr: self.partition.value(key[:n])}
        if self.sort is not None:
            out[self.sort.attr] = self.sort.value(key[n:])
        return out

    def key_of_av(self, av_item: Mapping[str, AV]) -> dict[str, AV]:
        """The table key attributes of a stored item (or a key map)."""
        return {a: av_item[a] for a in self.key_attrs}

    def index_layouts(self, index: str | None) -> tuple[KeyLayout, KeyLayout | None]:
        if index is None:
            return self.partition, self.sort
        return self.indexes[index]

    def cursor_attrs(self, index: str | None) -> tuple[str, ...]:
        """The attributes of a LastEvaluatedKey for a query on ``index`` (or the table)."""
        attrs = list(self.key_attrs)
        if index is not None:
            p, s = self.indexes[index]
            attrs += [p.attr] + ([s.attr] if s else [])
        return tuple(dict.fromkeys(attrs))


def codec_for(schema: Schema[T]) -> DynamoCodec[T]:
    """The cached codec of ``schema``."""
    codec: DynamoCodec[T] | None = getattr(schema, "_dynamo_codec", None)
    if codec is None:
        codec = DynamoCodec(schema)
        schema._dynamo_codec = codec  # type: ignore[attr-defined]
    return codec
