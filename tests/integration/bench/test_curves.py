"""``tierstore bench --curves``: the JSON series and one PNG per curve, on the embedded systems (no server is
touched without ``--servers``), and the in-process tier's curves on tiny sizes."""

from __future__ import annotations

import asyncio
import importlib.util
import json
from pathlib import Path

from tierstore.bench.curves import CurveConfig, run_curves
from tierstore.cli import main


def test_cli_writes_the_series_and_a_plot_per_curve(tmp_path: Path) -> None:
    out = tmp_path / "curves.json"
    status = main(["bench", "--curves", "get_many", "--duration", "0.01", "--rounds", "1", "--partitions", "10",
                   "--no-progress", "--json", str(out)])
    assert status == 0
    result = json.loads(out.read_text())
    (curve,) = result["curves"]
    assert curve["name"] == "get_many" and curve["x"] == [1, 10, 100, 1000]
    for system in ("tierstore:memory+memory", "raw:dict-decode"):
        values = curve["series"][system]
        assert len(values) == 4 and all(isinstance(v, float) and v > 0 for v in values)
    ratios = curve["ratios"]["tierstore:memory+memory ÷ raw:dict-decode"]
    assert all(r > 0 for r in ratios)
    # Without --servers the server systems are reported as not run, never opened.
    assert any(s["system"] == "tierstore:memory+redis" for s in curve["skipped"])
    assert {r["x"] for r in curve["rows"]} == {1, 10, 100, 1000}
    assert len(result["meta"]["loadavg_before"]) == 3
    png = tmp_path / "curves-curve-get_many.png"
    if importlib.util.find_spec("matplotlib") is not None:
        assert png.read_bytes()[:8] == b"\x89PNG\r\n\x1a\n"
    else:
        assert not png.exists()


def test_unknown_curve_is_a_usage_error(capsys: object) -> None:
    assert main(["bench", "--curves", "get_many,nope", "--no-progress"]) == 2


def test_l1_curves_on_tiny_sizes() -> None:
    cfg = CurveConfig(
        names=("l1_capacity", "dataset_size"), points={"l1_capacity": (5, 50), "dataset_size": (300, 600)},
        l1_keys=400, l1_trace=4000, hit_ops=600, miss_ops=200, progress=False,
    )
    result = asyncio.run(run_curves(cfg, env={}))
    l1, size = result["curves"]
    assert l1["capacity"] == [20, 200]
    tier = l1["series"]["tierstore:memory+memory (hit ratio)"]
    ceiling = l1["series"]["Belady MIN, same trace (ceiling)"]
    for got, best in zip(tier, ceiling, strict=True):
        assert 0 < got <= best <= 1  # no cache filled on demand beats MIN on the same trace
    assert tier[1] > tier[0]
    assert size["x"] == [300, 600]
    assert size["hit_ratio_uniform"] == [1.0, 1.0] and size["hit_ratio_zipf"] == [1.0, 1.0]
    assert size["miss_hit_ratio"] == [0.0, 0.0]
    assert size["entries_after"] == [300, 600]  # full: every miss evicted one entry
    assert all(v > 0 for values in size["series"].values() for v in values)
