"""Entity declarations and their Schema: what is rejected at class creation, what the schema reads, keys and
item validation."""

from __future__ import annotations

import sys
import types

import pytest

from tierstore import ConfigError, Entity, ValidationError
from tierstore.model.schema import schema_of

from _models import Blob, Customer, Event, Order


def declare(body: str, name: str = "decl_mod") -> type[Entity]:
    """Run class declarations in a fresh module (no __future__ flags inherited from this file)."""
    module = types.ModuleType(name)
    sys.modules[name] = module
    code = compile("from tierstore import *\nfrom tierstore.model import *\n" + body, name, "exec", dont_inherit=True)
    exec(code, module.__dict__)  # noqa: S102  # declaring classes from test strings is the point
    return module.__dict__["X"]  # type: ignore[no-any-return]


@pytest.mark.parametrize(
    ("body", "message"),
    [
        ("class X(Entity, table='x'):\n  a: int", "no partition key"),
        ("class X(Entity):\n  a: PartitionKey[str]", "declare the table"),
        ("class X(Entity, table='bad name'):\n  a: PartitionKey[str]", "table name"),
        ("class X(Entity, table='x'):\n  a: PartitionKey[str]\n  b: PartitionKey[str]", "composite key"),
        ("class X(Entity, table='x'):\n  a: PartitionKey[float]", "must be str, int or bytes"),
        ("class X(Entity, table='x'):\n  a: PartitionKey[list[str]]", "must be str, int or bytes"),
        ("class X(Entity, table='x', partition_key='nope'):\n  a: str", "unknown field"),
        ("class X(Entity, table='x', partition_key='a'):\n  a: PartitionKey[str]", "both by annotation"),
        ("class X(Entity, table='x', partition_key='a', sort_key='a'):\n  a: str", "both partition and sort"),
        ("class X(Entity, table='x'):\n  a: PartitionKey[str]\n  v: Version = 0\n  w: Version = 0", "more than one"),
        ("class X(Entity, table='x', indexes=[Index('i', 'zz')]):\n  a: PartitionKey[str]", "unknown field"),
        ("class X(Entity, table='x', indexes=[Index('i', 'b', 'c', local=True)]):\n  a: PartitionKey[str]\n"
         "  b: str = ''\n  c: str = ''", "local index"),
        ("class X(Entity, table='x'):\n  a: PartitionKey[str]\n  customer = Ref(Entity, 'a')\n  customer2: int = 0"
         "\n  locals()['a2'] = 1", ""),
    ],
)
def test_malformed_entities_fail_at_class_creation(body: str, message: str) -> None:
    if not message:
        declare(body)  # valid control
        return
    with pytest.raises(ConfigError, match=message) as info:
        declare(body)
    assert "X" in str(info.value)


def test_relation_clashing_with_field_is_rejected() -> None:
    with pytest.raises(ConfigError, match="clashes"):
        declare("class Y(Entity, table='y'):\n  a: PartitionKey[str]\n  customer = Ref(Entity, 'a')\n"
                "class X(Y, table='x'):\n  customer: str = ''")


def test_schema_reads_keys_indexes_version_ttl() -> None:
    s = schema_of(Order)
    assert s.table == "ts_orders" and s.partition == ("customer_id",) and s.sort == ("order_id",)
    assert s.version == "version" and s.ttl is None and set(s.indexes) == {"by_status"}
    assert set(s.relations) == {"customer"}
    e = schema_of(Event)
    assert e.partition == ("tenant", "stream") and e.sort == ("seq",) and e.ttl == "expires_at"
    assert schema_of(Blob).immutable and not schema_of(Customer).immutable
    assert "Order" in repr(s)


@pytest.mark.parametrize(
    ("cls", "args"),
    [
        (Customer, (5,)),
        (Customer, ("",)),
        (Customer, (True,)),
        (Customer, ("a", "b")),
        (Order, ("a",)),
        (Order, ("a", 1)),
        (Event, ("t", 1)),
        (Event, (("t",), 1)),
        (Blob, ("1",)),
        (Blob, (True,)),
    ],
)
def test_bad_keys_raise_validation_error(cls: type[Entity], args: tuple[object, ...]) -> None:
    with pytest.raises(ValidationError):
        schema_of(cls).key(*args)


def test_composite_declared_by_keywords() -> None:
    class Line(Entity, table="lines", partition_key=("a", "b"), sort_key=("c", "d")):
        a: str
        b: int
        c: str
        d: int

    s = schema_of(Line)
    assert s.key(("x", 1), ("y", 2)) == ("x", 1, "y", 2)
    assert s.cache_key(s.key(("x", 1), ("y", 2))) == "{lines:x,1}:y,2"


def test_validate_item_checks_types() -> None:
    s = schema_of(Order)
    s.validate_item(Order("c", "o", 1))
    with pytest.raises(ValidationError, match="total_cents"):
        s.validate_item(Order("c", "o", "1"))  # type: ignore[arg-type]
    with pytest.raises(ValidationError, match="expected Order"):
        s.validate_item(Customer("c", "n"))


def test_schema_of_rejects_non_entities() -> None:
    with pytest.raises(ConfigError):
        schema_of(int)  # type: ignore[type-var]


def test_forward_references_resolve_on_first_use() -> None:
    a = declare(
        "class X(Entity, table='fwd_a'):\n  id: PartitionKey[str]\n  b: 'Later | None' = None\n"
        "class Later(Entity, table='fwd_b'):\n  id: PartitionKey[str]\n",
        name="fwd_mod",
    )
    assert a.__tierstore_schema__ is None  # type: ignore[attr-defined]  # 'Later' was not defined yet
    assert schema_of(a).partition == ("id",)
