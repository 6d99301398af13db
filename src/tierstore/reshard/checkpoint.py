"""The checkpoint of a resharding run: a small JSON file, replaced atomically after every batch, that lets an
interrupted run resume where it stopped.

It records the plan (old and new router), and per table the phase reached, the scan position of each
source shard (a key, msgpack then base64) and the running counts. A checkpoint of another plan is refused,
so a run cannot resume someone else's half-finished move.
"""

from __future__ import annotations

import base64
import json
import os
import tempfile
from pathlib import Path
from typing import Any

import msgspec

from tierstore.model.schema import Key
from tierstore.reshard.report import ReshardError
from tierstore.routing import ReshardPlan

__all__ = ["CHECKPOINT_VERSION", "Checkpoint", "decode_key", "encode_key"]

CHECKPOINT_VERSION = 1


def encode_key(key: Key) -> str:
    """A scan position as JSON-safe text."""
    return base64.b64encode(msgspec.msgpack.encode(list(key))).decode()


def decode_key(text: str) -> Key:
    return tuple(msgspec.msgpack.decode(base64.b64decode(text)))


class Checkpoint:
    """A small JSON file, replaced atomically after every batch."""

    def __init__(self, path: Path | None, plan: ReshardPlan) -> None:
        self.path = path
        self.data: dict[str, Any] = {
            "version": CHECKPOINT_VERSION,
            "old": str(plan.old),
            "new": str(plan.new),
            "tables": {},
        }
        if path is not None and path.exists():
            try:
                loaded = json.loads(path.read_text())
            except (OSError, ValueError) as exc:
                raise ReshardError(f"checkpoint {path} is unreadable: {exc}") from None
            if (loaded.get("version"), loaded.get("old"), loaded.get("new")) != (
                CHECKPOINT_VERSION, self.data["old"], self.data["new"]
            ):
                raise ReshardError(
                    f"checkpoint {path} belongs to another plan ({loaded.get('old')} -> {loaded.get('new')}); "
                    f"finish that one or remove the file"
                )
            self.data = loaded

    def table(self, name: str) -> dict[str, Any]:
        tables: dict[str, dict[str, Any]] = self.data["tables"]
        return tables.setdefault(name, {"phase": "count"})

    def save(self) -> None:
        if self.path is None:
            return
        fd, tmp = tempfile.mkstemp(dir=self.path.parent, prefix=self.path.name, suffix=".tmp")
        with os.fdopen(fd, "w") as f:
            json.dump(self.data, f, indent=1, sort_keys=True)
            f.flush()
            os.fsync(f.fileno())
        os.replace(tmp, self.path)
