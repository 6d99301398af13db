"""When telemetry is on, and that off means the plain classes: nothing traced, nothing imported.

Global OpenTelemetry providers can be set once per process, so the cases that set or block them run in a
fresh interpreter each."""

from __future__ import annotations

import subprocess
import sys
import textwrap

import pytest

import tierstore
from tierstore import Entity, PartitionKey
from tierstore.backends import TieredCache
from tierstore.repository import Repository


class Item(Entity, table="switch_items"):
    id: PartitionKey[str]


def _run(code: str) -> str:
    result = subprocess.run([sys.executable, "-c", textwrap.dedent(code)], capture_output=True, text=True, timeout=60)
    assert result.returncode == 0, result.stdout + result.stderr
    return result.stdout.strip()


async def test_off_is_the_plain_classes() -> None:
    async with tierstore.connect("memory://", ["memory://"], telemetry=False) as db:
        assert type(db.repository(Item)) is Repository
        assert type(db.cache) is TieredCache
        assert db.repository(Item).store is db.store
        assert db.telemetry is None


def test_default_without_a_provider_is_off_and_imports_no_opentelemetry() -> None:
    out = _run('''
        import asyncio, sys
        import tierstore
        from tierstore import Entity, PartitionKey

        class Item(Entity, table="items"):
            id: PartitionKey[str]

        async def main():
            async with tierstore.connect("memory://", ["memory://"]) as db:
                await db.repository(Item).put(Item("a"))
                await db.repository(Item).get("a")
                print(type(db.repository(Item)).__name__, type(db.cache).__name__)
            print(sorted(m for m in sys.modules if m.startswith("opentelemetry")))

        asyncio.run(main())
    ''')
    assert out.splitlines() == ["Repository TieredCache", "[]"]


def test_default_with_a_global_tracer_provider_is_on() -> None:
    pytest.importorskip("opentelemetry.sdk")
    out = _run('''
        import asyncio
        from opentelemetry import trace
        from opentelemetry.sdk.trace import TracerProvider
        from opentelemetry.sdk.trace.export import SimpleSpanProcessor
        from opentelemetry.sdk.trace.export.in_memory_span_exporter import InMemorySpanExporter
        import tierstore
        from tierstore import Entity, PartitionKey

        class Item(Entity, table="items"):
            id: PartitionKey[str]

        spans = InMemorySpanExporter()
        provider = TracerProvider()
        provider.add_span_processor(SimpleSpanProcessor(spans))

        async def main():
            async with tierstore.connect("memory://", ["memory://"]) as db:   # before the provider: off
                print(type(db.repository(Item)).__name__)
            trace.set_tracer_provider(provider)
            async with tierstore.connect("memory://", ["memory://"]) as db:
                await db.repository(Item).get("a")
                print(type(db.repository(Item)).__name__)
            async with tierstore.connect("memory://", ["memory://"], telemetry=False) as db:
                print(type(db.repository(Item)).__name__)
            print([s.name for s in spans.get_finished_spans() if s.name.startswith("get items")])

        asyncio.run(main())
    ''')
    assert out.splitlines() == ["Repository", "TracedRepository", "Repository", "['get items']"]


def test_asked_for_without_the_extra_names_it() -> None:
    out = _run('''
        import importlib.abc, sys

        class Refuse(importlib.abc.MetaPathFinder):
            def find_spec(self, name, path=None, target=None):
                if name.split(".")[0] == "opentelemetry":
                    raise ModuleNotFoundError(f"No module named {name!r}", name=name)
                return None

        sys.meta_path.insert(0, Refuse())
        import tierstore
        try:
            tierstore.connect("memory://", telemetry=True)
        except tierstore.ConfigError as exc:
            print(exc)
        db = tierstore.connect("memory://")  # the default stays off without the extra
        print(db.telemetry)
    ''')
    lines = out.splitlines()
    assert "pip install 'tierstore[otel]'" in lines[0] and lines[1] == "None"


def test_a_bad_value_is_a_config_error() -> None:
    with pytest.raises(tierstore.ConfigError, match="telemetry="):
        tierstore.connect("memory://", telemetry="yes")  # type: ignore[arg-type]
