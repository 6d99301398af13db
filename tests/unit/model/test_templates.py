"""Key templates: parsing, checks at class definition, rendering and parsing back."""

from __future__ import annotations

import pytest

from tierstore import Entity, Index, KeyTemplate, PartitionKey, ValidationError
from tierstore.errors import ConfigError
from tierstore.model.schema import schema_of
from tierstore.model.templates import compile_template

FIELDS = {"a": str, "b": str, "n": int, "raw": bytes, "f": float}


def _compile(fmt: str, *, constant: bool = False) -> object:
    return compile_template(KeyTemplate("pk", fmt), FIELDS, "E", "partition_key", allow_constant=constant)


@pytest.mark.parametrize(
    ("fmt", "problem"),
    [
        ("X#{missing}", "unknown field 'missing'"),
        ("{a}{b}", "cannot be parsed back"),
        ("{n}7#{a}", "cannot be parsed back"),
        ("{a}#{a}", "repeats field"),
        ("{raw}", "must be str or int"),
        ("{f}", "must be str or int"),
        ("{a:>5}", "format spec"),
        ("{n:x}", "format spec"),
        ("{a!r}", "conversions"),
        ("{}", "placeholders name a field"),
        ("{0}", "placeholders name a field"),
        ("X#{a", "malformed"),
        ("CONSTANT", "names no field"),
    ],
)
def test_bad_templates_are_config_errors(fmt: str, problem: str) -> None:
    with pytest.raises(ConfigError, match=problem):
        _compile(fmt)


def test_render_and_parse_back() -> None:
    tpl = compile_template(KeyTemplate("sk", "ORDER#{n:06d}#{a}"), FIELDS, "E", "sort_key", allow_constant=True)
    text = tpl.render((42, "x#y"))
    assert text == "ORDER#000042#x#y"
    assert tpl.parse(text) == (42, "x#y")  # the last placeholder takes the rest
    assert tpl.parse("INVOICE#1") is None and tpl.prefix == "ORDER#"
    two = compile_template(KeyTemplate("sk", "{a}#{b}"), FIELDS, "E", "sort_key", allow_constant=True)
    with pytest.raises(ValidationError, match="could not be read back"):
        two.render(("x#y", "z"))  # '#' ends the first part: refused before any write
    const = compile_template(KeyTemplate("sk", "PROFILE"), FIELDS, "E", "sort_key", allow_constant=True)
    assert const.render(()) == "PROFILE" and const.parse("PROFILE") == () and const.parse("PROFILES") is None


def test_an_entity_declares_its_keys_by_templates() -> None:
    class Order(Entity, table="tpl_app", partition_key=KeyTemplate("pk", "C#{customer_id}"),
                sort_key=KeyTemplate("sk", "O#{order_id}"), type_attribute="_et"):
        customer_id: str
        order_id: int

    s = schema_of(Order)
    assert s.partition == ("customer_id",) and s.sort == ("order_id",) and s.type_name == "Order"
    assert s.cache_key(("c1", 7)) == "{tpl_app#Order:c1}:7"  # the type is part of the cache identity


def test_class_definition_checks() -> None:
    with pytest.raises(ConfigError, match="unknown field 'nope'"):
        class A(Entity, table="t", partition_key=KeyTemplate("pk", "C#{nope}")):
            x: str

    with pytest.raises(ConfigError, match="both by annotation"):
        class B(Entity, table="t", partition_key=KeyTemplate("pk", "C#{x}")):
            x: PartitionKey[str]

    with pytest.raises(ConfigError, match="also a field's attribute"):
        class C(Entity, table="t", partition_key=KeyTemplate("x", "C#{x}")):
            x: str

    with pytest.raises(ConfigError, match="two templates"):
        class D(Entity, table="t", partition_key=KeyTemplate("pk", "C#{x}"),
                indexes=[Index("g", KeyTemplate("pk", "D#{y}"))]):
            x: str
            y: str

    with pytest.raises(ConfigError, match="type_attribute"):
        class E(Entity, table="t", partition_key="x", type_attribute="x"):
            x: str

    with pytest.raises(ConfigError, match="type_name= needs a type_attribute"):
        class F(Entity, table="t", partition_key="x", type_name="f"):
            x: str

    with pytest.raises(ConfigError, match="local index"):
        class G(Entity, table="t", partition_key="x",
                indexes=[Index("l", "x", KeyTemplate("lsk", "L#{y}"), local=True)]):
            x: str
            y: str


def test_change_data_capture_reads_keys_back_from_templates_and_readable_partitions() -> None:
    from tierstore.cdc.keys import dynamo_key

    class CdcOrder(Entity, table="tpl_cdc", partition_key=KeyTemplate("pk", "C#{customer_id}"),
                   sort_key=KeyTemplate("sk", "O#{n:04d}")):
        customer_id: str
        n: int

    class CdcProfile(Entity, table="tpl_cdc", partition_key=KeyTemplate("pk", "C#{customer_id}"),
                     sort_key=KeyTemplate("sk", "PROFILE")):
        customer_id: str

    class CdcPair(Entity, table="tpl_cdc_pair", partition_key=("tenant", "n")):
        tenant: str
        n: int

    assert dynamo_key(schema_of(CdcOrder), {"pk": {"S": "C#c1"}, "sk": {"S": "O#0042"}}) == ("c1", 42)
    assert dynamo_key(schema_of(CdcOrder), {"pk": {"S": "C#c1"}, "sk": {"S": "PROFILE"}}) is None
    assert dynamo_key(schema_of(CdcProfile), {"pk": {"S": "C#c1"}, "sk": {"S": "PROFILE"}}) == ("c1",)
    assert dynamo_key(schema_of(CdcPair), {"_pk": {"S": "a%23b#7"}}) == ("a#b", 7)
