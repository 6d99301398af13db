"""The targets (tierstore.bench.targets and targets.toml): what each reads off the rows; the file's rules."""

from __future__ import annotations

from pathlib import Path
from typing import Any

import pytest

from tierstore.bench.builtin import default_registry
from tierstore.bench.systems import DAX_STYLE
from tierstore.bench.targets import COMPARISONS, Target, evaluate, load_targets
from tierstore.errors import ConfigError


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
    assert checks["redis_get_vs_raw"]["ok"] is True  # within 1.05
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


# -- the file ----------------------------------------------------------------------------------------------


def test_shipped_targets_name_registered_scenarios_and_systems() -> None:
    targets = load_targets()
    assert len(targets) == len({t.name for t in targets}) >= 15
    reg = default_registry({})
    stores = {name.split(":", 1)[1].split("+")[0] for name in reg.systems if name.startswith("tierstore:")}
    for t in targets:
        assert t.scenario in reg.scenarios, t.name
        assert t.description and t.compare in COMPARISONS, t.name
        assert set(t.stores) <= stores, t.name
        if t.against is None or "{floor}" in t.against:
            continue
        assert "{store}" not in t.against or t.stores, t.name  # {store} names a floor of the stores listed
        for store in t.stores or ("-",):
            assert t.against.replace("{store}", store) in reg.systems, (t.name, store)


def test_the_readme_lists_every_target() -> None:
    readme = (Path(__file__).resolve().parents[3] / "benchmarks" / "README.md").read_text()
    missing = [t.name for t in load_targets() if f"`{t.name}`" not in readme]
    assert not missing


def _write(tmp_path: Path, body: str) -> Path:
    path = tmp_path / "targets.toml"
    path.write_text(body)
    return path


GOOD = """
[[target]]
name = "fast_get"
description = "a get is quick"
scenario = "get"
tiers = [""]
against = "raw:x"
statistic = "time_ratio"
compare = "<"
threshold = 1
"""


def test_a_targets_file_of_ones_own(tmp_path: Path) -> None:
    (t,) = load_targets(_write(tmp_path, GOOD))
    assert t == Target(
        name="fast_get", description="a get is quick", scenario="get", tiers=("",), against="raw:x",
        statistic="time_ratio", compare="<", threshold=1.0,
    )
    assert t.text == "< 1"
    assert t.applies("sqlite", ()) and not t.applies("sqlite", ("memory",))
    assert t.holds(0.99) and not t.holds(1.0) and not t.holds(None) and not t.holds(float("nan"))
    rows = [
        {"scenario": "get", "system": "tierstore:sqlite", "p50_us": 9.0},
        {"scenario": "get", "system": "tierstore:sqlite+memory", "p50_us": 1.0},
        {"scenario": "get", "system": "raw:x", "p50_us": 10.0},
    ]
    (check,) = evaluate(rows, [t])
    assert check == {
        "check": "fast_get", "system": "tierstore:sqlite", "value": 0.9, "target": "< 1 x raw:x",
        "description": "a get is quick", "ok": True, "detail": check["detail"],
    }
    assert "raw:x p50 10.0 us" in check["detail"]


def test_comparisons_and_row_statistics(tmp_path: Path) -> None:
    body = GOOD.replace('against = "raw:x"\n', "").replace('"time_ratio"', '"hit_ratio"').replace('"<"', '">="')
    (t,) = load_targets(_write(tmp_path, body.replace("threshold = 1", "threshold = 0.5")))
    rows = [
        {"scenario": "get", "system": "tierstore:memory", "p50_us": 1.0, "hit_ratio": 0.6},
        {"scenario": "get", "system": "tierstore:sqlite", "p50_us": 1.0, "hit_ratio": 0.4},
        {"scenario": "get", "system": "tierstore:postgres", "p50_us": 1.0},
    ]
    got = {c["system"]: (c["value"], c["ok"]) for c in evaluate(rows, [t])}
    assert got == {
        "tierstore:memory": (0.6, True), "tierstore:sqlite": (0.4, False), "tierstore:postgres": (None, False),
    }


@pytest.mark.parametrize(
    ("change", "message"),
    [
        (lambda b: b + 'extra = "x"\n', "unknown keys"),
        (lambda b: b.replace('scenario = "get"\n', ""), "missing"),
        (lambda b: b.replace('"<"', '"~"'), "'compare' must be one of"),
        (lambda b: b.replace("threshold = 1", 'threshold = "1"'), "'threshold' must be a number"),
        (lambda b: b.replace("threshold = 1", "threshold = true"), "'threshold' must be a number"),
        (lambda b: b.replace('against = "raw:x"\n', ""), "need 'against'"),
        (lambda b: b.replace('"time_ratio"', '"p50_us"'), "need 'against'"),
        (lambda b: b.replace('tiers = [""]', 'tiers = ""'), "'tiers' must be a list of strings"),
        (lambda b: b.replace('name = "fast_get"', "name = 3"), "'name' must be a non-empty string"),
        (lambda b: b + b, "unique"),
        (lambda b: b.replace("[[target]]", "[target]"), "array of tables"),
        (lambda b: "title = 'x'\n" + b, "unknown top-level keys"),
        (lambda b: b.replace("threshold = 1", "threshold = "), "targets.toml"),
    ],
)
def test_a_malformed_file_is_a_config_error(tmp_path: Path, change: Any, message: str) -> None:
    with pytest.raises(ConfigError, match=message):
        load_targets(_write(tmp_path, change(GOOD)))
