"""What a resharding run tells its caller: progress events, the per-table and overall report, and the
error that stops a run (a failed check, or a checkpoint of another plan)."""

from __future__ import annotations

from dataclasses import asdict, dataclass, field
from typing import Any

from tierstore.errors import StoreError

__all__ = ["MoveCount", "ReshardError", "ReshardEvent", "ReshardReport", "TableReport"]


class ReshardError(StoreError):
    """Resharding cannot go on (a check failed, or the checkpoint belongs to another plan)."""


@dataclass(slots=True)
class ReshardEvent:
    """One progress report: ``phase`` of ``table`` on ``shard``; ``done`` items so far in this phase."""

    table: str
    phase: str
    shard: str | None
    done: int
    message: str = ""

    def __str__(self) -> str:
        where = f" {self.shard}" if self.shard else ""
        return f"{self.table} {self.phase}{where}: {self.done}{' ' + self.message if self.message else ''}"


@dataclass(slots=True)
class MoveCount:
    move: str
    items: int


@dataclass(slots=True)
class TableReport:
    table: str
    before: int = 0
    after: int = 0
    copied: int = 0
    deleted: int = 0
    misplaced: int = 0  # items on a shard the new router does not name (a key on two shards is one)
    moves: list[MoveCount] = field(default_factory=list)
    invalidation_failures: int = 0

    @property
    def ok(self) -> bool:
        return self.before == self.after and not self.misplaced


@dataclass(slots=True)
class ReshardReport:
    plan: str
    dry_run: bool
    fraction: float
    tables: list[TableReport] = field(default_factory=list)
    paused: bool = False  # stopped after the copy, as asked

    @property
    def ok(self) -> bool:
        return self.dry_run or self.paused or all(t.ok for t in self.tables)

    def as_dict(self) -> dict[str, Any]:
        d = asdict(self)
        d["ok"] = self.ok
        for t, td in zip(self.tables, d["tables"], strict=True):
            td["ok"] = t.ok
        return d

    def __str__(self) -> str:
        lines = [self.plan]
        for t in self.tables:
            if self.dry_run:
                lines.append(f"{t.table}: {sum(m.items for m in t.moves)} item(s) would move")
                lines += [f"  {m.move}: {m.items} item(s)" for m in t.moves]
            else:
                state = "ok" if t.ok else "FAILED"
                lines.append(
                    f"{t.table}: {state} — before {t.before}, after {t.after}, copied {t.copied}, "
                    f"deleted {t.deleted}, misplaced {t.misplaced}"
                    + (f", {t.invalidation_failures} cache invalidation(s) failed" if t.invalidation_failures else "")
                )
        if self.dry_run:
            lines.append("dry run: nothing was written (pass --execute to move the data)")
        elif self.paused:
            lines.append("paused after the copy: switch services to the new router, then run again to clean up")
        return "\n".join(lines)
