"""Key templates: how a physical key attribute is built from fields, for single-table designs.

``KeyTemplate("pk", "CUSTOMER#{customer_id}")`` declares that attribute ``pk`` holds the text
``CUSTOMER#`` followed by the field ``customer_id``. Given as ``partition_key=``/``sort_key=`` of an entity (or
as an :class:`~tierstore.Index`'s partition/sort), the placeholders in order are that key's fields, so
``repository.get("c1", "o1")`` works as for any key. A template without placeholders is a constant (a profile
item's ``sk = "PROFILE"``): the entity then has no sort key fields.

Placeholders are ``{field}`` (a ``str`` or ``int`` field) or ``{field:0Nd}`` (an ``int`` zero-padded to N
digits, so that the text sorts like the numbers when they are >= 0). Every template parses back: placeholders
are separated by a non-empty literal, an ``int`` placeholder is not followed by a digit or ``-``, and a ``str``
value written into a placeholder that is not the last must not contain the literal after it (a put of such an
item raises ``ValidationError``). Parsing uses :class:`string.Formatter` (the standard library's own parser of
format strings) and one compiled regular expression per template.
"""

from __future__ import annotations

import re
import string
from collections.abc import Mapping
from dataclasses import dataclass, field
from typing import Any

from tierstore.errors import ConfigError, ValidationError

__all__ = ["CompiledTemplate", "KeyTemplate", "check_templates", "compile_template"]

_WIDTH = re.compile(r"0?(\d+)d\Z")
_ATTRIBUTE = re.compile(r"[A-Za-z0-9_.\-#]{1,255}\Z")


@dataclass(frozen=True, slots=True)
class KeyTemplate:
    """A physical key attribute built from fields: ``KeyTemplate("pk", "CUSTOMER#{customer_id}")``."""

    attribute: str
    format: str

    @property
    def fields(self) -> tuple[str, ...]:
        """The placeholders' field names, in order (unchecked: the schema checks them)."""
        try:
            return tuple(name for _, name, _, _ in string.Formatter().parse(self.format) if name)
        except ValueError:
            return ()


@dataclass(frozen=True, slots=True)
class CompiledTemplate:
    """A checked template: its literals around the fields, and how to render and parse it."""

    attribute: str
    format: str
    literals: tuple[str, ...]  # one more than fields: prefix, the separators, suffix
    fields: tuple[str, ...]
    types: tuple[type, ...]
    widths: tuple[int, ...]  # 0: no padding
    regex: re.Pattern[str] = field(compare=False, repr=False)

    @property
    def prefix(self) -> str:
        """The constant text every rendered value starts with."""
        return self.literals[0]

    @property
    def constant(self) -> bool:
        return not self.fields

    def render(self, values: tuple[Any, ...], *, entity: str = "") -> str:
        out = [self.literals[0]]
        last = len(self.fields) - 1
        for i, (v, w) in enumerate(zip(values, self.widths, strict=True)):
            if isinstance(v, str):
                if i < last and self.literals[i + 1] in v:
                    raise ValidationError(
                        f"{entity}.{self.fields[i]} = {v!r} contains {self.literals[i + 1]!r}, which separates it "
                        f"from the next field in key template {self.format!r}: it could not be read back",
                        entity=entity or None,
                    )
                out.append(v)
            elif isinstance(v, int) and not isinstance(v, bool):
                out.append(f"{v:0{w}d}" if w else str(v))
            else:
                raise ValidationError(
                    f"{entity}.{self.fields[i]}: key template parts are str or int, got {type(v).__name__}",
                    entity=entity or None,
                )
            out.append(self.literals[i + 1])
        return "".join(out)

    def render_prefix(self, value: Any) -> str:
        """The text every rendering whose first field is ``value`` starts with (through the next literal);
        for a template of one field, the whole rendering."""
        if not self.fields:
            return self.literals[0]
        w = self.widths[0]
        if isinstance(value, int) and not isinstance(value, bool):
            text = f"{value:0{w}d}" if w else str(value)
        else:
            text = str(value)
        return self.literals[0] + text + self.literals[1]

    def parse(self, text: str) -> tuple[Any, ...] | None:
        """The field values ``text`` was rendered from, or ``None`` when it does not fit the template."""
        m = self.regex.fullmatch(text)
        if m is None:
            return None
        out: list[Any] = []
        for g, t in zip(m.groups(), self.types, strict=True):
            out.append(int(g) if t is int else g)
        return tuple(out)


def compile_template(
    template: KeyTemplate, field_types: Mapping[str, Any], where: str, role: str, *, allow_constant: bool
) -> CompiledTemplate:
    """Check ``template`` against the entity's fields (``ConfigError`` naming ``where`` and ``role``)."""
    if not isinstance(template, KeyTemplate):
        raise ConfigError(f"{where}: {role} takes a KeyTemplate, got {template!r}", entity=where)
    if not isinstance(template.attribute, str) or not _ATTRIBUTE.match(template.attribute):
        raise ConfigError(
            f"{where}: {role} template attribute {template.attribute!r} must be 1-255 letters, digits or _ . - #",
            entity=where,
        )
    if not isinstance(template.format, str):
        raise ConfigError(f"{where}: {role} template format must be a str, got {template.format!r}", entity=where)
    try:
        parsed = list(string.Formatter().parse(template.format))
    except ValueError as exc:
        raise ConfigError(f"{where}: {role} template {template.format!r} is malformed: {exc}", entity=where) from None
    literals: list[str] = [""]
    fields: list[str] = []
    types: list[type] = []
    widths: list[int] = []
    what = f"{where}: {role} template {template.format!r}"
    for literal, name, spec, conversion in parsed:
        literals[-1] += literal
        if name is None:
            continue
        if not name or not name.isidentifier():
            raise ConfigError(
                f"{where}: {role} template {template.format!r}: placeholders name a field ({{name}}), got {{{name}}}",
                entity=where,
            )
        if conversion:
            raise ConfigError(f"{what}: no !{conversion} conversions", entity=where)
        if name not in field_types:
            raise ConfigError(f"{what} names unknown field {name!r}", entity=where)
        if name in fields:
            raise ConfigError(f"{what} repeats field {name!r}", entity=where)
        from tierstore.model.schema import index_key_type

        typ = index_key_type(field_types[name])  # an optional field: a sparse index's template
        if typ not in (str, int):
            raise ConfigError(
                f"{where}: {role} template field {name!r} must be str or int, not {field_types[name]!r}",
                entity=where,
            )
        width = 0
        if spec:
            m = _WIDTH.match(spec)
            if typ is not int or m is None:
                raise ConfigError(
                    f"{where}: {role} template {template.format!r}: format spec {spec!r} of {name!r} is not "
                    f"supported (an int field takes 0Nd, e.g. {{{name}:010d}})",
                    entity=where,
                )
            width = int(m.group(1))
        if fields and not literals[-1]:
            raise ConfigError(
                f"{where}: {role} template {template.format!r} cannot be parsed back: {fields[-1]!r} and {name!r} "
                f"need a literal between them",
                entity=where,
            )
        fields.append(name)
        types.append(typ)
        widths.append(width)
        literals.append("")
    for i, t in enumerate(types):
        after = literals[i + 1]
        if t is int and after[:1] and (after[0].isdigit() or after[0] == "-"):
            raise ConfigError(
                f"{where}: {role} template {template.format!r} cannot be parsed back: int field {fields[i]!r} "
                f"is followed by {after[0]!r}",
                entity=where,
            )
    if not fields and not allow_constant:
        raise ConfigError(f"{where}: {role} template {template.format!r} names no field", entity=where)
    if not fields and not literals[0]:
        raise ConfigError(f"{where}: {role} template is empty", entity=where)
    pattern = [re.escape(literals[0])]
    for i, t in enumerate(types):
        last = i == len(types) - 1
        pattern.append(r"(-?\d+)" if t is int else ("(.+)" if last else "(.+?)"))
        pattern.append(re.escape(literals[i + 1]))
    return CompiledTemplate(
        template.attribute, template.format, tuple(literals), tuple(fields), tuple(types), tuple(widths),
        re.compile("".join(pattern), re.DOTALL),
    )


def check_templates(
    templates: Mapping[tuple[str | None, str], CompiledTemplate], type_attribute: Any, type_name: Any,
    stored: set[str], where: str,
) -> tuple[str | None, str | None]:
    """Check the templates' attributes against each other and the fields, and the type attribute; return
    ``(type_attribute, type_name)``."""
    seen: dict[str, CompiledTemplate] = {}
    for tpl in templates.values():
        if tpl.attribute in stored:
            raise ConfigError(
                f"{where}: template attribute {tpl.attribute!r} is also a field's attribute; a template builds "
                f"its own attribute from fields",
                entity=where,
            )
        other = seen.setdefault(tpl.attribute, tpl)
        if other.format != tpl.format:
            raise ConfigError(
                f"{where}: attribute {tpl.attribute!r} has two templates, {other.format!r} and {tpl.format!r}",
                entity=where,
            )
    if type_attribute is not None:
        if not isinstance(type_attribute, str) or not _ATTRIBUTE.match(type_attribute):
            raise ConfigError(f"{where}: type_attribute {type_attribute!r} is not an attribute name", entity=where)
        if type_attribute in stored or type_attribute in seen:
            raise ConfigError(
                f"{where}: type_attribute {type_attribute!r} is already a field's or a key template's attribute",
                entity=where,
            )
    if type_name is not None:
        if type_attribute is None:
            raise ConfigError(f"{where}: type_name= needs a type_attribute=", entity=where)
        if not isinstance(type_name, str) or not type_name:
            raise ConfigError(f"{where}: type_name must be a non-empty str, got {type_name!r}", entity=where)
    return type_attribute, type_name
