"""docs/backends.md documents every URL parameter of every backend (meaning, unit, default): the list on
the page equals the set each parser accepts, and each default written there is the parsed config's default.

What a parser accepts is read from the parser itself: a URL with an unknown parameter is a ``ConfigError``
listing the allowed ones. A deliberately wrong table (a missing and an extra row) must fail the check."""

from __future__ import annotations

import ast
import pathlib
import re
from typing import Any

import pytest

from tierstore import ConfigError
from tierstore.config import parse_bool, parse_duration, parse_size, store_config, tier_config

DOC = pathlib.Path(__file__).resolve().parents[2] / "docs" / "backends.md"
MARKER = re.compile(r"^<!-- url-parameters: (\S+) -->\n(.*?)(?:\n\n|\Z)", re.DOTALL | re.MULTILINE)

# table name on the page -> (a URL of that backend, store or tier)
BACKENDS: dict[str, tuple[str, str]] = {
    "memory-store": ("memory://", "store"),
    "sqlite": ("sqlite+aiosqlite:///x.db", "store"),
    "postgres": ("postgresql+asyncpg://u@h/db", "store"),
    "mysql": ("mysql+aiomysql://u@h/db", "store"),
    "dynamodb": ("dynamodb://us-east-1", "store"),
    "dax": ("dax://h:8111?region=us-east-1", "store"),
    "memory-tier": ("memory://", "tier"),
    "redis": ("redis://h:6379/0", "tier"),
    "memcached": ("memcached://h:11211", "tier"),
}
# parameters that are not a field of the config under their own name
FIELD_OF = {"attempts": "backoff.attempts", "backoff_base": "backoff.base", "backoff_cap": "backoff.cap"}


def documented(text: str) -> dict[str, dict[str, tuple[str, str]]]:
    """table name -> parameter -> (unit cell, default cell)."""
    out: dict[str, dict[str, tuple[str, str]]] = {}
    for name, body in MARKER.findall(text):
        rows = [line for line in body.splitlines() if line.startswith("| `")]
        params: dict[str, tuple[str, str]] = {}
        for row in rows:
            cells = [c.strip() for c in row.strip("|").split(" | ")]
            assert len(cells) == 4, f"{name}: a row needs parameter, meaning, unit, default: {row}"
            params[cells[0].strip("`")] = (cells[2], cells[3])
        out[name] = params
    return out


def accepted(url: str, kind: str) -> set[str]:
    parse = store_config if kind == "store" else tier_config
    sep = "&" if "?" in url else "?"
    with pytest.raises(ConfigError) as info:
        parse(f"{url}{sep}zz_not_a_parameter=1")
    match = re.search(r"allowed: (\[.*?\])", str(info.value))
    assert match, str(info.value)
    return set(ast.literal_eval(match.group(1)))


def _field(config: Any, param: str) -> Any:
    value = config
    for part in FIELD_OF.get(param, param).split("."):
        if not hasattr(value, part):
            return AttributeError
        value = getattr(value, part)
    return value


def check(tables: dict[str, dict[str, tuple[str, str]]]) -> list[str]:
    problems = []
    for name, (url, kind) in BACKENDS.items():
        if name not in tables:
            problems.append(f"{name}: no url-parameters table")
            continue
        doc, parser = set(tables[name]), accepted(url, kind)
        if doc != parser:
            missing, refused = sorted(parser - doc), sorted(doc - parser)
            problems.append(f"{name}: undocumented {missing}, documented but refused {refused}")
        config = (store_config if kind == "store" else tier_config)(url)
        for param, (_, default) in tables[name].items():
            literal = re.fullmatch(r"`([^`]*)`(?::.*)?", default)
            actual = _field(config, param)
            if literal is None or actual is AttributeError:
                continue  # prose default (e.g. "the region's endpoint") or a driver option passed through
            text = literal.group(1)
            if text == "none":
                expected: Any = None
            elif isinstance(actual, bool):
                expected = parse_bool(text, param)
            elif isinstance(actual, float):
                expected = parse_duration(text, param)
            elif isinstance(actual, int):
                expected = parse_size(text, param)
            else:
                expected = text
            if expected != actual:
                problems.append(f"{name}.{param}: documented default {text!r}, parser's {actual!r}")
    return problems


def test_every_url_parameter_is_documented_with_its_default() -> None:
    tables = documented(DOC.read_text())
    assert set(tables) == set(BACKENDS)
    for name, params in tables.items():
        for param, (unit, default) in params.items():
            assert unit and default, f"{name}.{param}: unit and default must be written"
    assert check(tables) == []


def test_the_check_catches_a_wrong_table() -> None:
    """Control: drop one documented parameter, add one the parser refuses, change a default."""
    text = DOC.read_text()
    lease_row = "| `lease` | how long a reader that missed holds the right to fill the key; others"
    broken = text.replace(lease_row, "| `leese` | x")
    broken = broken.replace("| `max_items` | entries held; beyond, S3-FIFO evicts | count | `50000` |",
                            "| `max_items` | entries held; beyond, S3-FIFO evicts | count | `5000` |")
    broken = broken.replace("<!-- url-parameters: memory-store -->", "<!-- url-parameters: nothing -->")
    assert broken.count("leese") == 1 and "`5000` |" in broken
    problems = "\n".join(check(documented(broken)))
    assert "redis: undocumented ['lease'], documented but refused ['leese']" in problems
    assert "memory-tier.max_items: documented default '5000'" in problems
    assert "memory-store: no url-parameters table" in problems
