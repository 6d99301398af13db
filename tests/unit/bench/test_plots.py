"""The PNG plots of a run (tierstore.bench.plots), and the one-line notice without matplotlib."""

from __future__ import annotations

import sys
from pathlib import Path

import pytest

from tierstore.bench import plots

ROWS = [
    {"scenario": "get", "system": "tierstore:memory+memory", "ratios": {"raw:dict-decode": 0.9}},
    {"scenario": "get", "system": "tierstore:postgres+redis",
     "ratios": {"raw:redis-get-decode": 1.1, "peer:cashews": 0.5}},
    {"scenario": "put", "system": "raw:sqlite3"},  # a floor: no ratios, not plotted
]


def test_plots_are_written_next_to_the_json(tmp_path: Path) -> None:
    pytest.importorskip("matplotlib")
    paths, notice = plots.write_plots(ROWS, str(tmp_path / "run.json"))
    assert notice is None
    assert paths == [str(tmp_path / "run-ratios.png")]
    assert Path(paths[0]).read_bytes()[:8] == b"\x89PNG\r\n\x1a\n"


def test_without_matplotlib_no_plot_and_one_line(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setitem(sys.modules, "matplotlib", None)  # import matplotlib raises ImportError
    paths, notice = plots.write_plots(ROWS, str(tmp_path / "run.json"))
    assert paths == [] and notice == plots.MISSING and "\n" not in notice
    assert not list(tmp_path.iterdir())


def test_no_ratios_no_plot(tmp_path: Path) -> None:
    paths, notice = plots.write_plots(ROWS[2:], str(tmp_path / "run.json"))
    assert paths == [] and notice is not None and "no row" in notice
