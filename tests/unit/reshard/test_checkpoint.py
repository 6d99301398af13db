"""The resharding checkpoint: scan positions survive as text, the file is replaced whole, and a checkpoint of
another plan or an unreadable one stops the run."""

from __future__ import annotations

import json
from pathlib import Path

import pytest

from tierstore.reshard import ReshardError
from tierstore.reshard.checkpoint import CHECKPOINT_VERSION, Checkpoint, decode_key, encode_key
from tierstore.routing import Router

OLD = Router.uniform(["a", "b"], slots=16)
NEW = OLD.with_shards(["a", "b", "c"])


@pytest.mark.parametrize("key", [("c1",), ("c1", "o1"), (7, b"\x00\xff", "é"), (-(2**63), "")])
def test_scan_positions_round_trip_through_text(key: tuple[object, ...]) -> None:
    text = encode_key(key)  # type: ignore[arg-type]
    assert isinstance(text, str) and json.loads(json.dumps(text)) == text
    assert decode_key(text) == key


def test_a_new_checkpoint_starts_every_table_at_count(tmp_path: Path) -> None:
    path = tmp_path / "cp.json"
    cp = Checkpoint(path, OLD.plan(NEW))
    assert not path.exists()  # nothing is written until the first save
    state = cp.table("items")
    assert state == {"phase": "count"} and cp.table("items") is state
    state.update(phase="copy", cursor={"a": encode_key(("t1", 3))}, copied=12)
    cp.save()
    saved = json.loads(path.read_text())
    assert saved["version"] == CHECKPOINT_VERSION and saved["old"] == str(OLD) and saved["new"] == str(NEW)
    resumed = Checkpoint(path, OLD.plan(NEW))
    assert resumed.table("items")["copied"] == 12
    assert decode_key(resumed.table("items")["cursor"]["a"]) == ("t1", 3)
    assert [p.name for p in tmp_path.iterdir()] == ["cp.json"]  # no temporary file left behind


def test_without_a_path_nothing_is_written(tmp_path: Path) -> None:
    cp = Checkpoint(None, OLD.plan(NEW))
    cp.table("items")["phase"] = "copy"
    cp.save()
    assert list(tmp_path.iterdir()) == []


def test_a_checkpoint_of_another_plan_is_refused(tmp_path: Path) -> None:
    path = tmp_path / "cp.json"
    Checkpoint(path, OLD.plan(NEW)).save()
    with pytest.raises(ReshardError, match="another plan"):
        Checkpoint(path, NEW.plan(OLD))
    data = json.loads(path.read_text())
    data["version"] = CHECKPOINT_VERSION + 1
    path.write_text(json.dumps(data))
    with pytest.raises(ReshardError, match="another plan"):
        Checkpoint(path, OLD.plan(NEW))


def test_an_unreadable_checkpoint_is_refused(tmp_path: Path) -> None:
    path = tmp_path / "cp.json"
    path.write_text("{not json")
    with pytest.raises(ReshardError, match="unreadable"):
        Checkpoint(path, OLD.plan(NEW))
