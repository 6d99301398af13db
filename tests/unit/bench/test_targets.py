"""The targets (tierstore.bench.targets and targets.toml): what each reads off the rows; the file's rules."""

from __future__ import annotations

import pytest

from tierstore.bench.systems import DAX_STYLE
from tierstore.bench.targets import evaluate


def test_targets_from_rows() -> None:
    rows = [
        {"scenario": "get", "system": "tierstore:sqlite", "p50_us": 10.0, "cpu_us_per_op": 9.0},
        {"scenario": "get", "system": "raw:sqlalchemy-core-sqlite", "p50_us": 100.0},
        {"scenario": "get", "system": "raw:aiosqlite", "p50_us": 40.0},
        {"scenario": "get", "system": "tierstore:sqlite+memory", "p50_us": 1.7, "cpu_us_per_op": 1.6},
    ]
    checks = {(c["check"], c["system"]): c for c in evaluate(rows)}
    assert checks[("get_cache_off_vs_core", "tierstore:sqlite")]["value"] == 0.1
    assert checks[("sqlite_get_vs_aiosqlite", "tierstore:sqlite")]["value"] == 0.25
    l1 = checks[("l1_hit_get_us", "tierstore:sqlite+memory")]
    assert l1["value"] == 1.7 and l1["ok"] is False
    assert not any(c["check"].startswith("redis") for c in checks.values())  # no Redis rows: no Redis checks


def test_targets_for_later_backends() -> None:
    rows = [
        {"scenario": "get", "system": "tierstore:postgres+redis", "p50_us": 50.0, "cpu_us_per_op": 40.0},
        {"scenario": "get", "system": "raw:redis-get-decode", "p50_us": 48.0, "cpu_us_per_op": 45.0},
        {"scenario": "get", "system": "peer:aiocache", "p50_us": 75.0},
        {"scenario": "get_concurrent_64", "system": "tierstore:postgres+redis", "p50_us": 9.0, "ops_per_s": 60_000.0},
        {"scenario": "get_concurrent_64", "system": "raw:redis-get-decode", "p50_us": 9.0, "ops_per_s": 10_000.0},
        {"scenario": "herd_100", "system": "tierstore:postgres+redis", "p50_us": 900.0, "round_trips_per_op": 2.0},
        {"scenario": "get", "system": "tierstore:dynamodb", "p50_us": 300.0, "cpu_us_per_op": 100.0},
        {"scenario": "get", "system": "raw:aioboto3", "p50_us": 900.0, "cpu_us_per_op": 600.0},
    ]
    checks = {c["check"]: c for c in evaluate(rows)}
    assert checks["redis_get_vs_raw"]["value"] == pytest.approx(50 / 48, abs=1e-3)
    assert checks["redis_get_vs_raw"]["ok"] is True  # within 1.08
    assert checks["redis_get_vs_aiocache"]["ok"] is True
    assert "redis_get_vs_cashews" not in checks  # that peer did not run
    assert checks["redis_concurrent_vs_raw"]["value"] == pytest.approx(1 / 6, abs=1e-3)
    assert checks["redis_concurrent_vs_raw"]["ok"] is True
    assert checks["herd_store_reads"]["ok"] is False
    assert checks["dynamodb_get_cpu_vs_aioboto3"]["value"] == pytest.approx(1 / 6, abs=1e-3)


def test_targets_for_joins_and_the_dax_style_system() -> None:
    rows = [
        {"scenario": "join_100", "system": "tierstore:postgres", "p50_us": 130.0, "round_trips_per_op": 2.0},
        {"scenario": "join_100", "system": "raw:asyncpg-join-batch", "p50_us": 100.0},
        {"scenario": "join_100", "system": "tierstore:sqlite", "p50_us": 140.0, "round_trips_per_op": 3.0},
        {"scenario": "join_100", "system": "raw:sqlite3-join-batch", "p50_us": 100.0},
        {"scenario": "join_100", "system": "raw:aiosqlite-join-batch", "p50_us": 400.0},
        {"scenario": "query_page", "system": DAX_STYLE, "p50_us": 20.0, "store_round_trips_per_op": 0.0},
        {"scenario": "query_page", "system": "tierstore:dynamodb", "p50_us": 900.0, "store_round_trips_per_op": 1.0},
    ]
    checks = {(c["check"], c["system"]): c for c in evaluate(rows)}
    assert checks[("join_vs_hand_batch", "tierstore:postgres")]["value"] == 1.3
    assert checks[("join_vs_hand_batch", "tierstore:postgres")]["ok"] is True
    sqlite = checks[("join_vs_hand_batch", "tierstore:sqlite")]  # against sqlite3, the store's own driver
    assert sqlite["value"] == 1.4 and sqlite["ok"] is False
    assert checks[("join_round_trips", "tierstore:sqlite")]["ok"] is False
    assert checks[("dax_style_query_cache_hits", DAX_STYLE)]["ok"] is True
    assert ("dax_style_query_cache_hits", "tierstore:dynamodb") not in checks
