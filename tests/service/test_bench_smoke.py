"""The service load test's harness, in miniature: one command starts the service, drives it with wrk, prints the
table and the targets, writes the JSON and the plot. (The real load test is too long for CI; run
``python benchmarks/service/run.py``.)"""

from __future__ import annotations

import json
import pathlib
import shutil
import subprocess
import sys

import pytest

from _servers import IN_CI

ROOT = pathlib.Path(__file__).resolve().parents[2]


def test_the_load_test_harness_runs_end_to_end(tmp_path: pathlib.Path) -> None:
    if shutil.which("wrk") is None:
        msg = "wrk is not installed; run scripts/services start wrk"
        if IN_CI:
            pytest.fail(msg)
        pytest.skip(msg)
    out = tmp_path / "out"
    res = subprocess.run(
        [sys.executable, str(ROOT / "benchmarks" / "service" / "run.py"),
         "--store", f"sqlite+aiosqlite:///{tmp_path}/bench.db", "--configs", "none,memory",
         "--customers", "50", "--orders", "2", "--duration", "1", "--warmup", "0", "--rounds", "1",
         "--connections", "4", "--max-requests", "400", "--out", str(out)],
        capture_output=True, text=True, timeout=300,
    )
    assert res.returncode == 0, res.stdout + res.stderr
    assert "req/s" in res.stdout and "memory req/s >= 1.5x no cache" in res.stdout
    data = json.loads((out / "service-bench.json").read_text())
    rows = {r["config"]: r for r in data["rows"]}
    assert set(rows) == {"none", "memory"}
    for r in rows.values():
        assert 0 < r["requests"] <= 400 + 8  # bounded in count (each wrk connection may finish its request)
        assert r["errors"] == 0 and r["cpu_us_per_req"] > 0
    assert rows["none"]["point_reads_per_req"] > rows["memory"]["point_reads_per_req"]
    assert (out / "service-bench.png").stat().st_size > 1000
