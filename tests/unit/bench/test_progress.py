"""The progress bar (tierstore.bench.progress)."""

from __future__ import annotations

from tierstore.bench.progress import Progress


def test_progress_bar_draws_only_when_enabled() -> None:
    import io

    out = io.StringIO()
    bar = Progress(enabled=True, stream=out)
    bar.begin("bench", 4)
    bar.advance("get · raw:x")
    bar.note("skipped raw:y: reason")
    text = out.getvalue()
    assert "[#######" in text and "1/4" in text and "skipped raw:y: reason\n" in text
    quiet = io.StringIO()
    off = Progress(enabled=False, stream=quiet)
    off.begin("bench", 2)
    off.advance("x")
    off.note("only notes")
    assert quiet.getvalue() == "only notes\n"


def test_one_line_per_cell_when_not_a_terminal() -> None:
    import io

    out = io.StringIO()  # not a terminal
    lines = Progress(stream=out)
    lines.begin("setup", 2)
    lines.advance("tierstore:memory")
    lines.finished("ignored: setup prints no line")
    lines.begin("bench", 2)
    lines.advance("get · tierstore:memory")
    lines.finished("get · tierstore:memory: 10 ops, 100 ops/s")
    lines.advance("get · raw:dict-decode")
    lines.finished("get · raw:dict-decode: 20 ops, 200 ops/s")
    text = out.getvalue()
    assert "\r" not in text and "[" not in text  # no bar
    got = text.splitlines()
    assert len(got) == 2
    assert got[0].startswith("bench 1/2 ") and got[0].endswith("get · tierstore:memory: 10 ops, 100 ops/s")
    assert got[1].startswith("bench 2/2 ")
    quiet = io.StringIO()
    off = Progress(enabled=False, stream=quiet)  # --no-progress: no lines either
    off.begin("bench", 1)
    off.advance("x")
    off.finished("x")
    assert quiet.getvalue() == ""
