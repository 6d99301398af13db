"""What a resharding run reports: ok only when counts match and nothing is misplaced, and a text and JSON
form for people and scripts."""

from __future__ import annotations

import json

from tierstore import StoreError
from tierstore.reshard import MoveCount, ReshardError, ReshardEvent, ReshardReport, TableReport


def test_a_table_is_ok_when_counts_match_and_nothing_is_misplaced() -> None:
    assert TableReport("t", before=5, after=5).ok
    assert not TableReport("t", before=5, after=4).ok
    assert not TableReport("t", before=5, after=5, misplaced=1).ok


def test_the_report_is_ok_for_dry_runs_and_pauses_else_when_every_table_is() -> None:
    bad = TableReport("t", before=5, after=4)
    assert ReshardReport("plan", dry_run=True, fraction=0.5, tables=[bad]).ok
    assert ReshardReport("plan", dry_run=False, fraction=0.5, tables=[bad], paused=True).ok
    assert not ReshardReport("plan", dry_run=False, fraction=0.5, tables=[bad]).ok
    assert ReshardReport("plan", dry_run=False, fraction=0.5, tables=[TableReport("t", 3, 3)]).ok


def test_text_and_json_forms() -> None:
    moves = [MoveCount("slots 0-3: a -> c", 7), MoveCount("slots 8-9: b -> c", 2)]
    dry = ReshardReport("9 of 16 slots move", dry_run=True, fraction=0.5, tables=[TableReport("t", moves=moves)])
    text = str(dry)
    assert "t: 9 item(s) would move" in text and "slots 0-3: a -> c: 7 item(s)" in text and "dry run" in text
    done = ReshardReport(
        "plan", dry_run=False, fraction=0.5,
        tables=[TableReport("t", before=9, after=8, copied=9, deleted=9, invalidation_failures=2)],
    )
    assert "t: FAILED — before 9, after 8" in str(done) and "2 cache invalidation(s) failed" in str(done)
    as_json = json.loads(json.dumps(done.as_dict()))
    assert as_json["ok"] is False and as_json["tables"][0]["ok"] is False and as_json["tables"][0]["copied"] == 9
    paused = ReshardReport("plan", dry_run=False, fraction=0.5, paused=True)
    assert "paused after the copy" in str(paused)


def test_events_and_errors() -> None:
    assert str(ReshardEvent("items", "copy", "a", 40)) == "items copy a: 40"
    assert str(ReshardEvent("items", "check", None, 9, "copies match")) == "items check: 9 copies match"
    assert issubclass(ReshardError, StoreError)
