"""The report (tierstore.bench.report): ratios against floors, and the printed checks."""

from __future__ import annotations

from tierstore.bench import report
from tierstore.bench.scenarios import GetConcurrent64


def test_ratio_uses_throughput_for_concurrent_scenarios() -> None:
    sys_row = {"p50_us": 100.0, "ops_per_s": 4000.0}
    floor = {"p50_us": 50.0, "ops_per_s": 1000.0}
    assert report.ratio(sys_row, floor) == 2.0
    assert report.ratio(sys_row, floor, GetConcurrent64.concurrency) == 0.25
    assert report.ratio({"p50_us": None}, floor) is None


def test_checks_print_pass_or_miss_with_the_target() -> None:
    text = report.format_checks([
        {"check": "fast_get", "system": "tierstore:sqlite", "value": 0.9, "target": "< 1 x raw:x",
         "description": "a get is quick", "ok": True, "detail": "p50 9.0 us"},
        {"check": "zipf_policy", "system": "tierstore:memory", "value": 0.4, "target": ">= LRU 0.5", "ok": False,
         "detail": "capacity 10"},
    ])
    lines = text.splitlines()
    assert lines[0] == "Targets and checks:"
    assert lines[1] == (
        "  PASS fast_get [tierstore:sqlite]: measured 0.900, target < 1 x raw:x — a get is quick (p50 9.0 us)"
    )
    assert lines[2] == "  MISS zipf_policy [tierstore:memory]: measured 0.400, target >= LRU 0.5 (capacity 10)"
    assert report.format_checks([]) == ""


def test_the_legend_explains_every_column_of_the_table() -> None:
    row = {"scenario": "get", "system": "tierstore:memory", "ops_per_s": 1.0, "p50_us": 1.0, "p99_us": 2.0,
           "round_trips_per_op": 0.0}
    text = report.format_report(report.Report(rows=[row]))
    header = text.splitlines()[0]
    legend = text[text.index("Columns:"):]
    for column in ("scenario", "system", "ops/s", "p50 µs", "p99 µs", "cpu µs", "rt/op", "×floor", "floor", "notes"):
        assert column in header
        assert f"\n  {column}" in legend or f"; {column}" in legend, column
    assert "PASS / MISS" in legend
