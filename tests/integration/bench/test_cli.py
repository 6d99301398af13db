"""``tierstore bench`` end to end through ``main([...])``: the embedded default with no servers, and a real one."""

from __future__ import annotations

import importlib.util
import json
import socket
from pathlib import Path
from typing import Any

import pytest

from tierstore.cli import main

from _servers import DYNAMODB_URL, MYSQL_URL, PG_URL, REDIS_URL, require

SERVER_VARS = (
    "TIERSTORE_PG_URL",
    "TIERSTORE_MYSQL_URL",
    "TIERSTORE_REDIS_URL",
    "TIERSTORE_REDIS_CLUSTER_URL",
    "TIERSTORE_MEMCACHED_URL",
    "TIERSTORE_DYNAMODB_URL",
)
REQUIRED = ("scenario", "system", "ops_per_s", "p50_us", "p99_us", "round_trips_per_op")


def _closed_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return int(s.getsockname()[1])


def _no_servers(monkeypatch: pytest.MonkeyPatch) -> None:
    """Point every server URL at a closed port: the run must fall back to the embedded systems."""
    port = _closed_port()
    urls = {
        "TIERSTORE_PG_URL": f"postgresql+asyncpg://postgres@127.0.0.1:{port}/test",
        "TIERSTORE_MYSQL_URL": f"mysql+aiomysql://root@127.0.0.1:{port}/test",
        "TIERSTORE_REDIS_URL": f"redis://127.0.0.1:{port}/0",
        "TIERSTORE_REDIS_CLUSTER_URL": f"redis+cluster://127.0.0.1:{port}",
        "TIERSTORE_MEMCACHED_URL": f"memcached://127.0.0.1:{port}",
        "TIERSTORE_DYNAMODB_URL": f"dynamodb://us-east-1?endpoint_url=http://127.0.0.1:{port}",
    }
    for var in SERVER_VARS:
        monkeypatch.setenv(var, urls[var])


def _rows(path: Path) -> tuple[dict[str, Any], dict[tuple[str, str], dict[str, Any]]]:
    doc = json.loads(path.read_text())
    return doc, {(r["scenario"], r["system"]): r for r in doc["results"]}


@pytest.mark.sqlite
def test_quick_on_the_embedded_default_without_servers(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch, capsys: pytest.CaptureFixture[str]
) -> None:
    _no_servers(monkeypatch)
    monkeypatch.chdir(tmp_path)
    out = tmp_path / "quick.json"
    status = main(["bench", "--quick", "--json", str(out), "--duration", "0.02", "--no-progress"])
    printed = capsys.readouterr()
    assert status == 0, printed.err
    doc, rows = _rows(out)

    systems = {"tierstore:memory", "tierstore:memory+memory", "raw:dict-decode", "raw:sqlite3", "raw:aiosqlite",
               "raw:sqlalchemy-core-sqlite", "raw:dict-join-batch", "raw:dict-join-n+1", "raw:dict-join-many"}
    sql_store = importlib.util.find_spec("tierstore.stores.sql") is not None
    if sql_store:
        systems |= {"tierstore:sqlite", "tierstore:sqlite+memory", "raw:sqlite3-join-batch", "raw:sqlite3-join-n+1",
                    "raw:aiosqlite-join-batch", "raw:aiosqlite-join-n+1", "raw:sqlite3-join-many"}
    assert {s for _, s in rows} == systems
    for system in systems:
        joins_only = "-join-" in system
        many_floor = system.endswith("-join-many")
        for scenario in ("get", "get_many_100", "put", "query_page"):
            assert ((scenario, system) in rows) != joins_only, (scenario, system)
        assert (("join_100", system) in rows) == (
            (joins_only and not many_floor) or system.startswith("tierstore:")
        )
        assert (("join_many_20", system) in rows) == (many_floor or system.startswith("tierstore:"))
        assert (("get_concurrent_64", system) in rows) == (system not in ("raw:sqlite3",) and not joins_only)
        cached = system.endswith("+memory")
        assert (("zipf_read", system) in rows) == cached
        assert (("herd_100", system) in rows) == cached
    for row in doc["results"]:
        for key in REQUIRED:
            assert key in row, (row["system"], key)
        assert row["ops_per_s"] > 0 and row["p99_us"] >= row["p50_us"] > 0

    # round trips per op come from the stores' own counters
    assert rows[("get", "tierstore:memory")]["round_trips_per_op"] == 1.0
    assert rows[("get", "tierstore:memory+memory")]["round_trips_per_op"] == 0.0
    assert rows[("get_many_100", "tierstore:memory")]["round_trips_per_op"] == 1.0
    assert rows[("herd_100", "tierstore:memory+memory")]["round_trips_per_op"] == 1.0
    zipf = rows[("zipf_read", "tierstore:memory+memory")]
    assert 0 < zipf["hit_ratio"] < 1 and 0 < zipf["lru_hit_ratio"] < 1
    assert rows[("get", "tierstore:memory+memory")]["floor"] == "raw:dict-decode"
    assert rows[("get", "tierstore:memory+memory")]["ratio_vs_floor"] > 0
    if sql_store:
        get = rows[("get", "tierstore:sqlite")]
        assert get["round_trips_per_op"] == 1.0
        assert get["floor"] == "raw:sqlalchemy-core-sqlite"
        assert set(get["ratios"]) == {"raw:sqlalchemy-core-sqlite", "raw:aiosqlite", "raw:sqlite3"}

    # join_100: 1 query + 1 batch; the naive floor reads once per order
    assert rows[("join_100", "tierstore:memory")]["round_trips_per_op"] == 2.0
    assert rows[("join_100", "tierstore:memory")]["floor"] == "raw:dict-join-batch"
    assert rows[("join_100", "raw:dict-join-n+1")]["round_trips_per_op"] == 101.0
    # join_many_20: the children of 20 parents in one batched read, as by hand
    assert rows[("join_many_20", "tierstore:memory")]["round_trips_per_op"] == 1.0
    assert rows[("join_many_20", "tierstore:memory")]["floor"] == "raw:dict-join-many"
    assert rows[("join_many_20", "raw:dict-join-many")]["round_trips_per_op"] == 1.0
    if sql_store:
        join = rows[("join_100", "tierstore:sqlite")]
        assert join["round_trips_per_op"] == 2.0 and join["floor"] == "raw:sqlite3-join-batch"
        assert set(join["ratios"]) == {"raw:sqlite3-join-batch", "raw:aiosqlite-join-batch",
                                       "raw:sqlite3-join-n+1", "raw:aiosqlite-join-n+1"}

    skipped = {s["system"]: s["reason"] for s in doc["skipped"]}
    assert "--servers" in skipped["tierstore:postgres"]  # servers only when asked
    assert "--servers" in skipped["tierstore:dynamodb+dax-style"]
    assert not any(s.startswith("raw:") for s in skipped)  # floors of skipped systems are not even tried
    assert "need a server (pass --servers to include them): tierstore:postgres" in printed.err
    checks = {c["check"] for c in doc["checks"]}
    assert {"l1_entry_bytes", "zipf_policy", "page_memory", "l1_hit_get_us", "join_vs_hand_batch",
            "join_round_trips"} <= checks
    assert "get" in printed.out and "Targets and checks:" in printed.out
    assert "Columns:" in printed.out and "×floor" in printed.out  # the legend under the table
    if importlib.util.find_spec("matplotlib") is not None:
        assert (tmp_path / "quick-ratios.png").stat().st_size > 0 and "wrote " in printed.out
    assert not list(tmp_path.glob("*.db")), "the run must not leave database files behind"


@pytest.mark.postgres
def test_selected_systems_bring_their_floors(tmp_path: Path, capsys: pytest.CaptureFixture[str]) -> None:
    require(PG_URL, "postgres")
    if importlib.util.find_spec("tierstore.stores.sql") is None:
        pytest.skip("the SQL store has not landed")
    out = tmp_path / "pg.json"
    status = main([
        "bench", "--servers", "--systems", "tierstore:postgres", "--scenarios", "get,put", "--duration", "0.05",
        "--rounds", "2", "--partitions", "2", "--no-checks", "--json", str(out),
    ])
    assert status == 0, capsys.readouterr().err
    doc, rows = _rows(out)
    assert {s for _, s in rows} == {"tierstore:postgres", "raw:sqlalchemy-core-postgres", "raw:asyncpg"}
    for scenario in ("get", "put"):
        row = rows[(scenario, "tierstore:postgres")]
        assert row["rounds"] == 2 and row["round_trips_per_op"] == 1.0
        assert row["floor"] == "raw:sqlalchemy-core-postgres"
        assert set(row["ratios"]) == {"raw:sqlalchemy-core-postgres", "raw:asyncpg"}
        assert rows[(scenario, "raw:asyncpg")]["round_trips_per_op"] == 1.0
    assert doc["meta"]["items"] == 200


@pytest.mark.postgres
@pytest.mark.mysql
def test_join_100_rows_on_postgres_and_mariadb(tmp_path: Path, capsys: pytest.CaptureFixture[str]) -> None:
    require(PG_URL, "postgres")
    require(MYSQL_URL, "mysql")
    if importlib.util.find_spec("tierstore.stores.sql") is None:
        pytest.skip("the SQL store has not landed")
    out = tmp_path / "join.json"
    status = main([
        "bench", "--servers", "--systems", "tierstore:postgres,tierstore:mariadb", "--scenarios", "join_100",
        "--duration", "0.05", "--rounds", "1", "--partitions", "2", "--no-checks", "--json", str(out),
    ])
    assert status == 0, capsys.readouterr().err
    doc, rows = _rows(out)
    for store, client in (("postgres", "asyncpg"), ("mariadb", "aiomysql")):
        row = rows[("join_100", f"tierstore:{store}")]
        assert row["round_trips_per_op"] == 2.0, store  # 1 query + 1 batch of the 90 distinct customers
        assert row["floor"] == f"raw:{client}-join-batch"
        assert set(row["ratios"]) == {f"raw:{client}-join-batch", f"raw:{client}-join-n+1"}
        assert rows[("join_100", f"raw:{client}-join-batch")]["round_trips_per_op"] == 2.0
        assert rows[("join_100", f"raw:{client}-join-n+1")]["round_trips_per_op"] == 101.0
        # the naive loop is far slower than either batched join
        assert row["ratios"][f"raw:{client}-join-n+1"] < 1
    assert not doc["skipped"]


@pytest.mark.dynamodb
@pytest.mark.redis
def test_dax_style_rows(tmp_path: Path, capsys: pytest.CaptureFixture[str]) -> None:
    require(DYNAMODB_URL, "dynamodb")
    require(REDIS_URL, "redis")
    out = tmp_path / "dax.json"
    status = main([
        "bench", "--servers", "--systems", "tierstore:dynamodb+dax-style",
        "--scenarios", "get,get_many_100,query_page,join_100",
        "--duration", "0.1", "--rounds", "1", "--partitions", "2", "--no-checks", "--json", str(out),
    ])
    assert status == 0, capsys.readouterr().err
    _, rows = _rows(out)
    dax = "tierstore:dynamodb+dax-style"
    assert {s for _, s in rows} == {dax, "raw:aioboto3", "peer:aiodynamo", "raw:dict-decode",
                                    "raw:aioboto3-join-batch", "raw:aioboto3-join-n+1"}
    for scenario in ("get", "get_many_100", "query_page"):
        row = rows[(scenario, dax)]
        assert row["floor"] == "raw:aioboto3" and row["ratio_vs_floor"] < 1, scenario
        assert row["store_round_trips_per_op"] == 0.0, scenario  # answered by the item or the query cache
    assert rows[("query_page", dax)]["query_cache_hit_ratio"] == 1.0
    assert rows[("join_100", dax)]["floor"] == "raw:aioboto3-join-batch"
    assert rows[("join_100", "raw:aioboto3-join-batch")]["round_trips_per_op"] == 2.0


@pytest.mark.dynamodb
def test_dax_style_is_skipped_without_redis(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch, capsys: pytest.CaptureFixture[str]
) -> None:
    require(DYNAMODB_URL, "dynamodb")
    port = _closed_port()
    monkeypatch.setenv("TIERSTORE_REDIS_URL", f"redis://127.0.0.1:{port}/0")
    out = tmp_path / "nodax.json"
    status = main([
        "bench", "--servers", "--systems", "tierstore:dynamodb+dax-style", "--scenarios", "get", "--duration", "0.02",
        "--partitions", "1", "--no-checks", "--no-progress", "--json", str(out),
    ])
    err = capsys.readouterr().err
    assert status == 1  # nothing could run
    assert f"skipped tierstore:dynamodb+dax-style: 127.0.0.1:{port} is unreachable" in err
