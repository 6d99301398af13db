"""Key templates on DynamoDB: the layout of a key attribute built from fields (``pk = "CUSTOMER#{id}"``).

A template's attribute is an S attribute holding the rendered text (:mod:`tierstore.model.templates`); the
fields are also written as attributes of their own, and an item that lacks them (another writer's) is read by
parsing the template attribute back.

Conditions on a template sort key are conditions on the rendered text, inside the template's constant prefix
(so the items of other entity types in the partition are never read):

* ``eq(v)``: ``= P+v`` for a template of one field, else ``begins_with(P+v+sep)``;
* ``begins_with(v)``: ``begins_with(P+v)``;
* ``ge``/``le``/``gt``/``lt``/``between``: a ``BETWEEN`` inside ``[P, P+U+10FFFF]``. Order is the order of the
  rendered text (UTF-8 bytes): ``str`` values compare as usual, ``int`` values compare as numbers only when the
  placeholder is zero-padded (``{n:010d}``) and the values are >= 0. ``lt`` on a one-field template reads up to
  and including ``P+v`` and drops that one item (at most one item of a partition has that key).

With no sort condition, a query of an entity whose sort template has a constant prefix adds
``begins_with(sk, P)`` (a constant sort template: ``sk = P``), so ``limit`` counts only that entity's items.
"""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import dataclass
from typing import TYPE_CHECKING, Any

from tierstore.model.templates import CompiledTemplate
from tierstore.query import SortCondition
from tierstore.stores.dynamodb.codec import AV, KeyLayout, to_av

if TYPE_CHECKING:
    from tierstore.stores.dynamodb.codec import DynamoCodec

__all__ = ["TOP", "TemplateLayout", "fill", "foreign"]

TOP = "\U0010ffff"
"""Above every character: ``P + TOP`` bounds every rendering that starts with ``P``."""


@dataclass(frozen=True, slots=True)
class TemplateLayout(KeyLayout):
    """A key attribute rendered from a template."""

    template: CompiledTemplate | None = None

    @property
    def tpl(self) -> CompiledTemplate:
        assert self.template is not None
        return self.template

    def value(self, parts: tuple[Any, ...]) -> AV:
        return {"S": self.tpl.render(parts)}

    def default_condition(self, name: str, value: str) -> tuple[str, list[AV]] | None:
        """The key condition of a query without a sort condition: the template's constant part."""
        tpl = self.tpl
        if tpl.constant:
            return f"{name} = {value}0", [{"S": tpl.prefix}]
        if tpl.prefix:
            return f"begins_with({name}, {value}0)", [{"S": tpl.prefix}]
        return None

    def excluded(self, cond: SortCondition) -> str | None:
        """The one rendered key a ``lt`` condition's ``BETWEEN`` includes but the condition does not."""
        if cond.op == "lt" and len(self.tpl.fields) == 1:
            return self.tpl.render_prefix(cond.values[0])
        return None

    def condition(self, cond: SortCondition, name: str, value: str) -> tuple[str, list[AV]] | bool:
        tpl = self.tpl
        op, vals = cond.op, cond.values
        if op == "between" and vals[0] > vals[1]:
            return False
        p = tpl.prefix
        one = len(tpl.fields) == 1
        # Every rendering whose first field is v: exactly g(v) (one field), or starting with g(v).
        g = tpl.render_prefix

        def low(v: Any) -> str:  # at or below every rendering whose first field is >= v
            return g(v)

        def high(v: Any) -> str:  # at or above every rendering whose first field is <= v
            return g(v) if one else g(v) + TOP

        if op == "eq":
            if one:
                return f"{name} = {value}0", [{"S": g(vals[0])}]
            return f"begins_with({name}, {value}0)", [{"S": g(vals[0])}]
        if op == "begins_with":
            text = vals[0] if isinstance(vals[0], str) else str(vals[0])
            return f"begins_with({name}, {value}0)", [{"S": p + text}]
        if op == "ge":
            lo, hi = low(vals[0]), p + TOP
        elif op == "gt":
            lo, hi = (g(vals[0]) + "\x00" if one else g(vals[0]) + TOP), p + TOP
        elif op == "le":
            lo, hi = p, high(vals[0])
        elif op == "lt":
            lo, hi = p, g(vals[0])  # one field: that key itself is dropped by the store (excluded())
        else:
            lo, hi = low(vals[0]), high(vals[1])
        if not lo:
            lo = "\x00"  # DynamoDB rejects an empty value in a key condition
        if lo > hi:
            return False
        return f"{name} BETWEEN {value}0 AND {value}1", [{"S": lo}, {"S": hi}]


def fill(codec: DynamoCodec[Any], av_item: Mapping[str, AV]) -> Mapping[str, AV]:
    """``av_item`` with the fields it lacks read back from its key templates (another writer's item)."""
    out = av_item
    for lay in codec.templates:
        names = [codec.names[f] for f in lay.fields]
        if all(n in out for n in names):
            continue
        av = out.get(lay.attr)
        text = av.get("S") if av is not None else None
        vals = lay.template.parse(text) if isinstance(text, str) else None  # type: ignore[attr-defined]
        if vals is None:
            continue
        if out is av_item:
            out = dict(av_item)
        for n, v in zip(names, vals, strict=True):
            out.setdefault(n, to_av(v))  # type: ignore[attr-defined]
    return out


def foreign(codec: DynamoCodec[Any], av_item: Mapping[str, AV]) -> bool:
    """Whether a stored item belongs to another entity type of a shared table: its type attribute names another
    type, or its table key attributes do not fit this entity's templates."""
    if codec.type_attr is not None:
        av = av_item.get(codec.type_attr)
        if av is not None and av != codec.type_av:
            return True
    for lay in codec._table_templates:
        av = av_item.get(lay.attr)
        text = av.get("S") if av is not None else None
        if not isinstance(text, str) or lay.template.parse(text) is None:  # type: ignore[attr-defined]
            return True
    return False
