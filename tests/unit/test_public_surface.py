"""The two public surfaces, pinned: ``tierstore`` (what a service author uses) and ``tierstore.backends``
(what a backend author needs). A change to either list is an API change: make it here on purpose."""

from __future__ import annotations

import subprocess
import sys
import warnings

import pytest

import tierstore
import tierstore.backends

SERVICE_SURFACE = [
    "TTL",
    "BackendError",
    "CachePolicy",
    "CircuitOpen",
    "Collection",
    "Condition",
    "ConditionFailed",
    "ConfigError",
    "Database",
    "Entity",
    "Index",
    "KeyTemplate",
    "Many",
    "MemoryStore",
    "MemoryTier",
    "Mismatch",
    "NotAwaited",
    "NotFound",
    "NotLoaded",
    "Page",
    "PartialBatchError",
    "PartitionKey",
    "Path",
    "Pending",
    "QueryResult",
    "Ref",
    "Repository",
    "Router",
    "SchemaMismatch",
    "Session",
    "ShardedStore",
    "ShardedStoreConfig",
    "ShardedTier",
    "ShardedTierConfig",
    "SortCondition",
    "SortKey",
    "StoreError",
    "StoreTimeout",
    "Throttled",
    "TierError",
    "TierstoreError",
    "Transaction",
    "TransactionCanceled",
    "Unsupported",
    "ValidationError",
    "Version",
    "__version__",
    "attr",
    "begins_with",
    "between",
    "connect",
    "eq",
    "ge",
    "gt",
    "le",
    "lt",
    "not_",
]

BACKEND_SURFACE = [
    "ABSENT",
    "BackendConfig",
    "Backlogged",
    "Backoff",
    "Breaker",
    "CacheTier",
    "Changes",
    "Check",
    "Codec",
    "Delete",
    "InvalidationFeed",
    "Key",
    "KeyPart",
    "Lease",
    "LocalTier",
    "NodeGuard",
    "NodeTier",
    "Page",
    "Put",
    "Query",
    "QueryCache",
    "QueryMany",
    "Scannable",
    "ScatterGather",
    "Schema",
    "Store",
    "StoreStats",
    "TierStats",
    "TieredCache",
    "Update",
    "WriteOp",
    "apply_changes",
    "codec_for",
    "decode_cursor",
    "encode_cursor",
    "evaluate",
    "gather_all",
    "parse_bool",
    "parse_duration",
    "parse_hosts",
    "parse_int",
    "parse_size",
    "query_all",
    "query_each",
    "query_params",
    "redact_url",
    "retry_async",
    "schema_of",
    "sort_matches",
    "valid_prefix",
]

# Importable from ``tierstore`` until 0.1.0; one more release through a deprecation warning.
MOVED_TO_BACKENDS = [
    "ABSENT",
    "CacheTier",
    "Codec",
    "Delete",
    "Lease",
    "Put",
    "Schema",
    "Store",
    "StoreStats",
    "TierStats",
    "TieredCache",
    "schema_of",
]


def _isort_order(names: list[str]) -> list[str]:
    """What ruff's RUF022 enforces: CONSTANTS, then Classes, then functions, each alphabetical."""
    return sorted(names, key=lambda n: (0 if n.isupper() else 1 if n[0].isupper() else 2, n))


def test_service_surface_is_pinned() -> None:
    assert tierstore.__all__ == SERVICE_SURFACE


def test_backend_surface_is_pinned() -> None:
    assert tierstore.backends.__all__ == BACKEND_SURFACE


@pytest.mark.parametrize("module", [tierstore, tierstore.backends], ids=lambda m: m.__name__)
def test_surface_is_sorted_and_every_name_resolves_without_warnings(module: object) -> None:
    names: list[str] = module.__all__  # type: ignore[attr-defined]
    assert names == _isort_order(names)
    with warnings.catch_warnings():
        warnings.simplefilter("error")
        for name in names:
            assert getattr(module, name) is not None, name


def test_every_public_class_of_tierstore_is_listed() -> None:
    public = {n for n in dir(tierstore) if not n.startswith("_") and n[0].isupper()}
    assert public - set(tierstore.__all__) == set()


def test_the_two_surfaces_share_only_page() -> None:
    assert set(SERVICE_SURFACE) & set(BACKEND_SURFACE) == {"Page"}
    assert tierstore.Page is tierstore.backends.Page


@pytest.mark.parametrize("name", MOVED_TO_BACKENDS)
def test_moved_names_still_work_for_one_release_with_a_warning(name: str) -> None:
    with pytest.warns(DeprecationWarning, match=rf"tierstore\.{name} moved to tierstore\.backends\.{name}"):
        value = getattr(tierstore, name)
    assert value is getattr(tierstore.backends, name)
    assert name not in tierstore.__all__ and name in tierstore.backends.__all__


def test_moved_names_work_in_from_imports() -> None:
    with pytest.warns(DeprecationWarning, match="tierstore.backends"):
        from tierstore import Store
    assert Store is tierstore.backends.Store


def test_unknown_names_are_attribute_errors() -> None:
    with pytest.raises(AttributeError, match="no attribute 'Nope'"):
        _ = tierstore.Nope  # type: ignore[attr-defined]
    with pytest.raises(ImportError):
        from tierstore import Nope  # type: ignore[attr-defined]  # noqa: F401


def test_importing_and_star_importing_warn_about_nothing() -> None:
    code = (
        "import warnings; warnings.simplefilter('error'); "
        "import tierstore, tierstore.backends; "
        "from tierstore import *; from tierstore.backends import *; "
        "ns = {}; exec('from tierstore import *', ns); "
        "assert sorted(k for k in ns if k != '__builtins__') == sorted(tierstore.__all__)"
    )
    subprocess.run([sys.executable, "-c", code], check=True)
