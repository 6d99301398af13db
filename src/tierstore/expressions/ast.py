"""The expression tree: attribute paths of an entity class and the conditions built from them.

``Order.status`` on an entity class is a :class:`Path` (the instance attribute is still the plain value); its
operators build :class:`Condition` nodes, which combine with ``&``, ``|`` and ``~``. Nothing here checks types
or touches a store: :mod:`tierstore.expressions.check` validates a tree against the entity's schema before any
I/O, and the backends compile it (:mod:`.memory`, :mod:`.sql`, :mod:`.dynamodb`).

A condition is never truthy or falsy: ``a == 1 and b == 2`` (Python's ``and``) raises a ``ValidationError``
that says to use ``&``.
"""

from __future__ import annotations

from collections.abc import Iterable
from dataclasses import dataclass
from typing import Any, Literal

from tierstore.errors import ValidationError

__all__ = [
    "And",
    "BeginsWith",
    "Between",
    "Compare",
    "Condition",
    "Contains",
    "Exists",
    "In",
    "Not",
    "Or",
    "Path",
    "attr",
    "not_",
]

CompareOp = Literal["eq", "ne", "lt", "le", "gt", "ge"]
_SYMBOL = {"eq": "==", "ne": "!=", "lt": "<", "le": "<=", "gt": ">", "ge": ">="}


class Path:
    """A field of an entity class (``Order.total_cents``) or a key inside one (``Order.address.city``).

    Built by the entity class on attribute access; compare it to build a :class:`Condition`.
    """

    __slots__ = ("entity", "parts")
    __hash__ = None  # type: ignore[assignment]  # == builds a condition, so a Path is no dict key

    def __init__(self, entity: type[Any], parts: tuple[str, ...]) -> None:
        self.entity = entity
        self.parts = parts

    @property
    def field(self) -> str:
        """The top-level field this path starts at."""
        return self.parts[0]

    def __repr__(self) -> str:
        return f"{self.entity.__name__}.{'.'.join(self.parts)}"

    def __getattr__(self, name: str) -> Path:
        if name.startswith("__"):
            raise AttributeError(name)
        return Path(self.entity, (*self.parts, name))

    def __bool__(self) -> bool:
        raise ValidationError(f"{self!r} is an attribute path, not a condition: compare it (== value) or use .exists()")

    # -- comparisons ------------------------------------------------------------------------------------

    def __eq__(self, value: object) -> Condition:  # type: ignore[override]
        return Compare(self, "eq", value)

    def __ne__(self, value: object) -> Condition:  # type: ignore[override]
        return Compare(self, "ne", value)

    def __lt__(self, value: Any) -> Condition:
        return Compare(self, "lt", value)

    def __le__(self, value: Any) -> Condition:
        return Compare(self, "le", value)

    def __gt__(self, value: Any) -> Condition:
        return Compare(self, "gt", value)

    def __ge__(self, value: Any) -> Condition:
        return Compare(self, "ge", value)

    def between(self, low: Any, high: Any) -> Condition:
        """``low <= path <= high`` (inclusive on both ends, as DynamoDB's BETWEEN)."""
        return Between(self, low, high)

    def begins_with(self, prefix: str | bytes) -> Condition:
        return BeginsWith(self, prefix)

    def in_(self, values: Iterable[Any]) -> Condition:
        """The value is one of ``values`` (1 to 100 of them)."""
        if isinstance(values, str | bytes):
            raise ValidationError(f"{self!r}.in_() takes a collection of values, not one {type(values).__name__}")
        return In(self, tuple(values))

    def contains(self, value: Any) -> Condition:
        """A ``str`` field holds ``value`` as a substring; a list/set/tuple field holds it as an element."""
        return Contains(self, value)

    def exists(self) -> Condition:
        """The field holds a value (is not ``None``)."""
        return Exists(self, True)

    def not_exists(self) -> Condition:
        """The field is ``None`` (or absent)."""
        return Exists(self, False)


class Condition:
    """A boolean expression over one entity's fields. Combine with ``&``, ``|``, ``~``."""

    __slots__ = ()

    # ``Condition | bool``: type checkers see ``Order.status == "x"`` as a bool; at run time it is a Condition.
    def __and__(self, other: Condition | bool) -> Condition:
        return And((*_flat(self, And), *_flat(_cond(other, "&"), And)))

    def __rand__(self, other: Condition | bool) -> Condition:
        return And((*_flat(_cond(other, "&"), And), *_flat(self, And)))

    def __or__(self, other: Condition | bool) -> Condition:
        return Or((*_flat(self, Or), *_flat(_cond(other, "|"), Or)))

    def __ror__(self, other: Condition | bool) -> Condition:
        return Or((*_flat(_cond(other, "|"), Or), *_flat(self, Or)))

    def __invert__(self) -> Condition:
        return Not(self)

    def __bool__(self) -> bool:
        raise ValidationError(
            f"a condition has no truth value ({self!r}): combine conditions with &, | and ~, not and/or/not"
        )

    def paths(self) -> Iterable[Path]:
        """Every path the condition reads."""
        raise NotImplementedError

    def shape(self) -> tuple[Any, ...]:
        """The structure without the values: conditions of one shape compile to one statement."""
        raise NotImplementedError

    def values(self) -> list[Any]:
        """The operand values in the order :meth:`shape` visits them."""
        raise NotImplementedError


def _cond(value: Any, op: str) -> Condition:
    if not isinstance(value, Condition):
        raise ValidationError(f"{op} combines conditions, got {type(value).__name__} {value!r:.60}")
    return value


def _wrapped(c: Condition) -> str:
    return f"({c!r})" if isinstance(c, Compare | And | Or) else repr(c)


def _flat(c: Condition, kind: type[And | Or]) -> tuple[Condition, ...]:
    return c.items if isinstance(c, kind) else (c,)


def not_(condition: Condition | bool) -> Condition:
    """``~condition``, spelled so type checkers that see ``Order.a == 1`` as ``bool`` accept it."""
    return Not(_cond(condition, "not_"))


def attr(path: Any) -> Path:
    """``path`` (``Order.tags``) typed as a :class:`Path` — for type checkers, which see the field's own type
    on the class: ``attr(Order.tags).contains("x")``."""
    if not isinstance(path, Path):
        raise ValidationError(f"attr() takes a field of an entity class such as Order.status, got {path!r:.60}")
    return path


@dataclass(frozen=True, slots=True, eq=False)
class Compare(Condition):
    path: Path
    op: CompareOp
    value: Any

    def __repr__(self) -> str:
        return f"{self.path!r} {_SYMBOL[self.op]} {self.value!r:.60}"

    def paths(self) -> Iterable[Path]:
        return (self.path,)

    def shape(self) -> tuple[Any, ...]:
        return ("cmp", self.path.parts, self.op)

    def values(self) -> list[Any]:
        return [self.value]


@dataclass(frozen=True, slots=True, eq=False)
class Between(Condition):
    path: Path
    low: Any
    high: Any

    def __repr__(self) -> str:
        return f"{self.path!r}.between({self.low!r:.40}, {self.high!r:.40})"

    def paths(self) -> Iterable[Path]:
        return (self.path,)

    def shape(self) -> tuple[Any, ...]:
        return ("between", self.path.parts)

    def values(self) -> list[Any]:
        return [self.low, self.high]


@dataclass(frozen=True, slots=True, eq=False)
class BeginsWith(Condition):
    path: Path
    prefix: Any

    def __repr__(self) -> str:
        return f"{self.path!r}.begins_with({self.prefix!r:.60})"

    def paths(self) -> Iterable[Path]:
        return (self.path,)

    def shape(self) -> tuple[Any, ...]:
        return ("begins", self.path.parts)

    def values(self) -> list[Any]:
        return [self.prefix]


@dataclass(frozen=True, slots=True, eq=False)
class In(Condition):
    path: Path
    options: tuple[Any, ...]

    def __repr__(self) -> str:
        return f"{self.path!r}.in_({list(self.options)!r:.80})"

    def paths(self) -> Iterable[Path]:
        return (self.path,)

    def shape(self) -> tuple[Any, ...]:
        return ("in", self.path.parts, len(self.options))

    def values(self) -> list[Any]:
        return list(self.options)


@dataclass(frozen=True, slots=True, eq=False)
class Contains(Condition):
    path: Path
    value: Any

    def __repr__(self) -> str:
        return f"{self.path!r}.contains({self.value!r:.60})"

    def paths(self) -> Iterable[Path]:
        return (self.path,)

    def shape(self) -> tuple[Any, ...]:
        return ("contains", self.path.parts)

    def values(self) -> list[Any]:
        return [self.value]


@dataclass(frozen=True, slots=True, eq=False)
class Exists(Condition):
    path: Path
    present: bool

    def __repr__(self) -> str:
        return f"{self.path!r}.{'exists' if self.present else 'not_exists'}()"

    def paths(self) -> Iterable[Path]:
        return (self.path,)

    def shape(self) -> tuple[Any, ...]:
        return ("exists", self.path.parts, self.present)

    def values(self) -> list[Any]:
        return []


@dataclass(frozen=True, slots=True, eq=False)
class And(Condition):
    items: tuple[Condition, ...]

    def __repr__(self) -> str:
        return " & ".join(map(_wrapped, self.items))

    def paths(self) -> Iterable[Path]:
        return [p for c in self.items for p in c.paths()]

    def shape(self) -> tuple[Any, ...]:
        return ("and", *(c.shape() for c in self.items))

    def values(self) -> list[Any]:
        return [v for c in self.items for v in c.values()]


@dataclass(frozen=True, slots=True, eq=False)
class Or(Condition):
    items: tuple[Condition, ...]

    def __repr__(self) -> str:
        return " | ".join(map(_wrapped, self.items))

    def paths(self) -> Iterable[Path]:
        return [p for c in self.items for p in c.paths()]

    def shape(self) -> tuple[Any, ...]:
        return ("or", *(c.shape() for c in self.items))

    def values(self) -> list[Any]:
        return [v for c in self.items for v in c.values()]


@dataclass(frozen=True, slots=True, eq=False)
class Not(Condition):
    item: Condition

    def __repr__(self) -> str:
        return f"~{_wrapped(self.item)}"

    def paths(self) -> Iterable[Path]:
        return self.item.paths()

    def shape(self) -> tuple[Any, ...]:
        return ("not", self.item.shape())

    def values(self) -> list[Any]:
        return self.item.values()
