"""Where an invalidator remembers how far into the change log its invalidations have been delivered.

The invalidator saves a position only after every invalidation up to it was taken by every tier, so a
restart resumes at or before the first change not yet delivered: nothing is lost, some invalidations may be
repeated (harmless: invalidation is idempotent).

* :class:`FileCheckpoint`: a JSON file replaced atomically (write a temporary file, ``fsync``, ``rename``,
  ``fsync`` the folder), so a crash at any instant leaves the old or the new position, never a torn one. Put
  it on a volume that survives the sidecar's restarts.
* :class:`MemoryCheckpoint`: in the process only — for tests, and for sources whose server keeps the position
  itself (a PostgreSQL replication slot is advanced only after delivery; the slot *is* the checkpoint).

Each saved position carries the identity of its source (stream ARN, slot, server), so a checkpoint file
pointed at another source is refused instead of resuming from a foreign position.
"""

from __future__ import annotations

import asyncio
import contextlib
import json
import os
import tempfile
from typing import Any, Protocol, runtime_checkable

from tierstore.errors import ConfigError

__all__ = ["Checkpoint", "FileCheckpoint", "MemoryCheckpoint"]


@runtime_checkable
class Checkpoint(Protocol):
    async def load(self, source: str) -> Any | None:
        """The position saved for ``source`` (a JSON value), or ``None`` if nothing was saved yet."""
        ...

    async def save(self, source: str, position: Any) -> None:
        """Durably record ``position`` (a JSON value) for ``source``."""
        ...


class MemoryCheckpoint:
    """A checkpoint that lives as long as the object (lost with the process)."""

    def __init__(self) -> None:
        self.source: str | None = None
        self.position: Any = None
        self.saves = 0

    def __repr__(self) -> str:
        return f"MemoryCheckpoint(saves={self.saves})"

    async def load(self, source: str) -> Any | None:
        if self.source is not None and self.source != source:
            raise ConfigError(f"this checkpoint belongs to {self.source!r}, not {source!r}")
        return self.position

    async def save(self, source: str, position: Any) -> None:
        self.source = source
        self.position = position
        self.saves += 1


class FileCheckpoint:
    """A JSON file ``{"source": ..., "position": ...}`` replaced atomically on every save."""

    def __init__(self, path: str | os.PathLike[str]) -> None:
        self.path = os.fspath(path)
        self.saves = 0

    def __repr__(self) -> str:
        return f"FileCheckpoint({self.path!r})"

    async def load(self, source: str) -> Any | None:
        return await asyncio.to_thread(self._load, source)

    def _load(self, source: str) -> Any | None:
        try:
            with open(self.path, encoding="utf-8") as f:
                doc = json.load(f)
        except FileNotFoundError:
            return None
        except (OSError, ValueError) as exc:
            raise ConfigError(f"cannot read the checkpoint {self.path}: {exc}") from None
        if not isinstance(doc, dict) or "source" not in doc:
            raise ConfigError(f"{self.path} is not a tierstore invalidator checkpoint")
        if doc["source"] != source:
            raise ConfigError(
                f"the checkpoint {self.path} belongs to {doc['source']!r}, not {source!r}; "
                "give each invalidator its own checkpoint file"
            )
        return doc.get("position")

    async def save(self, source: str, position: Any) -> None:
        await asyncio.to_thread(self._save, source, position)
        self.saves += 1

    def _save(self, source: str, position: Any) -> None:
        folder = os.path.dirname(os.path.abspath(self.path))
        os.makedirs(folder, exist_ok=True)
        data = json.dumps({"source": source, "position": position}, separators=(",", ":")).encode()
        fd, tmp = tempfile.mkstemp(prefix=".checkpoint-", dir=folder)
        try:
            with os.fdopen(fd, "wb") as f:
                f.write(data)
                f.flush()
                os.fsync(f.fileno())
            os.replace(tmp, self.path)
        except BaseException:
            with contextlib.suppress(OSError):
                os.unlink(tmp)
            raise
        dir_fd = os.open(folder, os.O_RDONLY)
        try:
            os.fsync(dir_fd)
        finally:
            os.close(dir_fd)
