"""``tierstore bench`` end to end through ``main([...])``: the embedded default with no servers, and a real one."""

from __future__ import annotations

import importlib.util
import json
import socket
from pathlib import Path
from typing import Any

import pytest

from tierstore.cli import main

from conftest import PG_URL, require

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
               "raw:sqlalchemy-core-sqlite"}
    sql_store = importlib.util.find_spec("tierstore.stores.sql") is not None
    if sql_store:
        systems |= {"tierstore:sqlite", "tierstore:sqlite+memory"}
    assert {s for _, s in rows} == systems
    for system in systems:
        for scenario in ("get", "get_many_100", "put", "query_page"):
            assert (scenario, system) in rows, (scenario, system)
        assert (("get_concurrent_64", system) in rows) == (system != "raw:sqlite3")
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

    skipped = {s["system"]: s["reason"] for s in doc["skipped"]}
    assert "tierstore:postgres" in skipped and "unreachable" in skipped["tierstore:postgres"]
    assert not any(s.startswith("raw:") for s in skipped)  # floors of skipped systems are not even tried
    assert "skipped tierstore:postgres" in printed.err
    checks = {c["check"] for c in doc["checks"]}
    assert {"l1_entry_bytes", "zipf_policy", "page_memory", "l1_hit_get_us"} <= checks
    assert "get" in printed.out and "Targets and checks:" in printed.out
    assert not list(tmp_path.glob("*.db")), "the run must not leave database files behind"


@pytest.mark.postgres
def test_selected_systems_bring_their_floors(tmp_path: Path, capsys: pytest.CaptureFixture[str]) -> None:
    require(PG_URL, "postgres")
    if importlib.util.find_spec("tierstore.stores.sql") is None:
        pytest.skip("the SQL store has not landed")
    out = tmp_path / "pg.json"
    status = main([
        "bench", "--systems", "tierstore:postgres", "--scenarios", "get,put", "--duration", "0.05",
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
