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
