"""The example backends of docs/extending.md (examples/extending/) pass both contract suites, and the page
shows their code as it is."""

from __future__ import annotations

import importlib.util
import os
import re
import sys
from collections.abc import AsyncIterator
from pathlib import Path
from types import ModuleType
from typing import Any

import pytest

from tierstore import ConfigError
from tierstore.testing.contract import CacheTierContract, StoreContract

ROOT = Path(__file__).resolve().parents[2]
EXAMPLES = ROOT / "examples" / "extending"
PAGE = ROOT / "docs" / "extending.md"


def _load(name: str) -> ModuleType:
    spec = importlib.util.spec_from_file_location(f"extending_{name}", EXAMPLES / f"{name}.py")
    assert spec is not None and spec.loader is not None
    module = importlib.util.module_from_spec(spec)
    sys.modules[spec.name] = module
    spec.loader.exec_module(module)
    return module


kv_store = _load("kv_store")
dict_tier = _load("dict_tier")


class TestKvStore(StoreContract):
    not_applicable = {
        "test_scatter_gather_merges_every_shard": "one store, not shards",
        **{name: "the example reads one partition per query (joins then ask one query per parent)" for name in (
            "test_query_many_answers_each_partition_as_query_does",
            "test_query_many_on_an_index_partitioned_unlike_the_table",
        )},
        **{name: "the example evaluates no conditions (it does not set `expressions = True`)" for name in (
            "test_query_where_filters_after_the_key_condition",
            "test_put_when_a_condition_on_the_stored_item",
            "test_delete_when_a_condition_on_the_stored_item",
            "test_update_changes_fields_in_place_and_returns_the_new_item",
            "test_update_counters_are_atomic",
            "test_transact_updates_under_condition_checks",
        )},
    }

    @pytest.fixture
    async def store(self, tmp_path: os.PathLike[str]) -> AsyncIterator[Any]:
        store = kv_store.KvStoreConfig.from_url(f"kv://{tmp_path}/kv.db").build()
        await store.open()
        yield store
        await store.aclose()

    @pytest.fixture
    def dead_store(self, tmp_path: os.PathLike[str]) -> Any:
        return kv_store.KvStore(f"{tmp_path}/no/such/directory/kv.db")


class TestDictTier(CacheTierContract):
    @pytest.fixture
    def server(self) -> Any:
        return dict_tier.DictServer()

    @pytest.fixture
    def tier(self, server: Any) -> Any:
        return dict_tier.DictTier(server, prefix="app")

    @pytest.fixture
    def other_process_tier(self, server: Any) -> Any:
        return dict_tier.DictTier(server, prefix="app")

    @pytest.fixture
    def other_namespace_tier(self, server: Any) -> Any:
        return dict_tier.DictTier(server, prefix="other")

    @pytest.fixture
    def dead_tier(self) -> Any:
        server = dict_tier.DictServer()
        server.up = False
        return dict_tier.DictTier(server)


def test_urls_build_the_backends(tmp_path: os.PathLike[str]) -> None:
    assert kv_store.KvStoreConfig.from_url("kv://").path == ":memory:"
    assert kv_store.KvStoreConfig.from_url(f"kv://{tmp_path}/x.db").build().path == f"{tmp_path}/x.db"
    a = dict_tier.DictTierConfig.from_url("dict://shared?prefix=svc&lease=500ms").build()
    b = dict_tier.DictTierConfig.from_url("dict://shared").build()
    assert a.server is b.server and (a.prefix, a.lease_ttl, b.prefix) == ("svc", 0.5, "tierstore")
    for bad in ("kv://?cache=1", "redis://h", "dict://x?prefix=", "dict://x?lease=0", "dict://x?typo=1"):
        with pytest.raises(ConfigError):
            (kv_store.KvStoreConfig if bad.startswith("kv") else dict_tier.DictTierConfig).from_url(bad)


@pytest.mark.parametrize("name", ["kv_store.py", "dict_tier.py"])
def test_the_page_shows_the_example_code(name: str) -> None:
    blocks = re.findall(rf"^<!-- examples/extending/{name} -->\n```python\n(.*?)^```", PAGE.read_text(),
                        re.DOTALL | re.MULTILINE)
    assert blocks == [(EXAMPLES / name).read_text()], f"paste examples/extending/{name} into its block of {PAGE.name}"
