"""Entities to JSON and back, for HTTP bodies: msgspec, with loaded relations nested under the relation's name.

An entity's loaded relations live outside its fields (msgspec never encodes them), so encoding an entity as it is
drops them, and a generic encoder that looks at ``__dict__`` leaks their internal storage names. Here an entity
is encoded by msgspec directly when no relation of it is loaded (the common, fast case), and otherwise as its
fields plus one member per loaded relation: ``{"order_id": ..., "customer": {...}}`` for a ``Ref``,
``{"id": ..., "orders": [...]}`` for a ``Many``. A relation that points back to an entity already being encoded
on the same path (``customer.orders[i].customer``) is encoded with its fields only, so cycles end.

:func:`json_schema` is the matching JSON Schema (OpenAPI 3.1 components): msgspec's schema of the fields, plus a
``readOnly`` property per relation (present in responses when loaded; ignored in request bodies).

No web framework is imported here.
"""

from __future__ import annotations

import types
import typing
from collections.abc import Iterable, Sequence
from typing import Any, Union

import msgspec

from tierstore.errors import ValidationError, bounded
from tierstore.model.entity import Entity
from tierstore.model.relations import Many, Ref, Relation
from tierstore.query import Page

__all__ = ["REF_TEMPLATE", "decode", "encode", "entity_shaped", "json_schema", "relations_of", "to_builtins"]

REF_TEMPLATE = "#/components/schemas/{name}"

_ENCODER = msgspec.json.Encoder()
_DECODERS: dict[Any, msgspec.json.Decoder[Any]] = {}
_RELATIONS: dict[type[Any], tuple[Relation[Any], ...]] = {}


def relations_of(cls: type[Entity]) -> tuple[Relation[Any], ...]:
    """The relations declared on ``cls`` and its bases, in declaration order."""
    rels = _RELATIONS.get(cls)
    if rels is None:
        found: dict[str, Relation[Any]] = {
            name: attr for klass in reversed(cls.__mro__) for name, attr in vars(klass).items()
            if isinstance(attr, Relation)
        }
        rels = _RELATIONS[cls] = tuple(found.values())
    return rels


def _plain(obj: Any) -> bool:
    """Nothing in ``obj`` carries a loaded relation: msgspec can encode it as it is."""
    if isinstance(obj, Entity):
        return not obj.__dict__
    if isinstance(obj, list | tuple):
        return all(not o.__dict__ if isinstance(o, Entity) else _plain(o) for o in obj)
    if isinstance(obj, Page):
        return _plain(obj.items)
    if isinstance(obj, dict):
        return all(_plain(v) for v in obj.values())
    return True


def to_builtins(obj: Any, _path: frozenset[int] = frozenset()) -> Any:
    """JSON-ready data: entities as dicts of their fields plus their loaded relations, pages as
    ``{"items": [...], "cursor": ...}``; containers recursively; anything else as it is (msgspec encodes it)."""
    if isinstance(obj, Entity):
        out = msgspec.to_builtins(obj)
        if not obj.__dict__ or id(obj) in _path:
            return out
        inner = _path | {id(obj)}
        for rel in relations_of(type(obj)):
            if rel.is_loaded(obj):
                out[rel.name] = to_builtins(getattr(obj, rel.name), inner)
        return out
    if isinstance(obj, Page):
        return {"items": [to_builtins(i, _path) for i in obj.items], "cursor": obj.cursor}
    if isinstance(obj, list | tuple):
        return [to_builtins(o, _path) for o in obj]
    if isinstance(obj, dict):
        return {k: to_builtins(v, _path) for k, v in obj.items()}
    return obj


def encode(obj: Any) -> bytes:
    """JSON bytes of ``obj`` (see the module docstring)."""
    if _plain(obj):
        return _ENCODER.encode(obj)
    return _ENCODER.encode(to_builtins(obj))


def decode(data: bytes, tp: Any) -> Any:
    """``data`` decoded as ``tp`` (an entity class, ``list[Entity]``…). Malformed JSON or a value of the wrong
    type is a :class:`~tierstore.ValidationError` whose text is bounded and names the field, not the value."""
    decoder = _DECODERS.get(tp)
    if decoder is None:
        decoder = _DECODERS[tp] = msgspec.json.Decoder(tp)
    try:
        return decoder.decode(data)
    except msgspec.ValidationError as exc:
        raise ValidationError(bounded(f"invalid request body: {exc}", 300)) from None
    except msgspec.DecodeError as exc:
        raise ValidationError(bounded(f"request body is not valid JSON: {exc}", 300)) from None


# -- shapes and schemas ------------------------------------------------------------------------------------

_CONTAINERS = (list, tuple, set, frozenset, Sequence, Iterable, Page, Union, types.UnionType)


def entity_shaped(tp: Any) -> bool:
    """``tp`` is an entity class or a list / tuple / optional / union / ``Page`` / ``dict`` of them."""
    if isinstance(tp, type):
        return issubclass(tp, Entity)
    origin = typing.get_origin(tp)
    if origin is None:
        return False
    args = [a for a in typing.get_args(tp) if a is not type(None) and a is not Ellipsis]
    if origin is dict:
        return len(args) == 2 and entity_shaped(args[1])
    if origin in _CONTAINERS or (isinstance(origin, type) and issubclass(origin, Page)):
        return bool(args) and any(entity_shaped(a) for a in args)
    return False


def _entities_in(tp: Any, out: dict[type[Entity], None]) -> None:
    if isinstance(tp, type) and issubclass(tp, Entity):
        if tp in out:
            return
        out[tp] = None
        for rel in relations_of(tp):
            _entities_in(rel.target, out)  # type: ignore[attr-defined]
        return
    for arg in typing.get_args(tp):
        _entities_in(arg, out)


def _relation_property(rel: Relation[Any], ref_template: str) -> dict[str, Any]:
    target = rel.target  # type: ignore[attr-defined]
    ref = {"$ref": ref_template.format(name=target.__name__)}
    where = f"{rel.owner.__name__}.{rel.name}"
    if isinstance(rel, Many):
        return {"type": "array", "items": ref, "readOnly": True,
                "description": f"Present when the one-to-many relation {where} was loaded."}
    assert isinstance(rel, Ref)
    return {"anyOf": [ref, {"type": "null"}], "readOnly": True,
            "description": f"Present when the relation {where} was loaded (null: no such {target.__name__})."}


def json_schema(
    annotations: Sequence[Any], ref_template: str = REF_TEMPLATE
) -> tuple[list[dict[str, Any]], dict[str, Any]]:
    """``(schemas, components)``: one schema per annotation (referring to the components) and the components,
    with every entity's relations as ``readOnly`` properties (their targets included)."""
    found: dict[type[Entity], None] = {}
    for tp in annotations:
        _entities_in(tp, found)
    entities = list(found)
    schemas, components = msgspec.json.schema_components([*annotations, *entities], ref_template=ref_template)
    for cls in entities:
        comp = components.get(cls.__name__)
        if comp is None:
            continue
        props = comp.setdefault("properties", {})
        for rel in relations_of(cls):
            props.setdefault(rel.name, _relation_property(rel, ref_template))
    return list(schemas[: len(annotations)]), components
