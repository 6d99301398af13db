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
