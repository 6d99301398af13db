"""The progress bar of a run: one line on stderr, redrawn in place, only when stderr is a terminal.

A full run takes minutes (every cell 1 s × 3 rounds, plus setup); the bar says which phase and cell is running.
Skip reasons are printed as lines of their own whether or not the bar is shown, so a log keeps them.
"""

from __future__ import annotations

import sys
import time
from typing import TextIO

__all__ = ["Progress"]


class Progress:
    """A one-line progress bar on stderr (only when it is a terminal, unless forced), plus notes."""

    def __init__(self, enabled: bool | None = None, stream: TextIO | None = None, width: int = 28) -> None:
        self.stream = stream if stream is not None else sys.stderr
        self.enabled = self.stream.isatty() if enabled is None else enabled
        self.width = width
        self.total = 0
        self.done = 0
        self.phase = ""
        self._drawn = False
        self._start = time.monotonic()

    def begin(self, phase: str, total: int) -> None:
        self.phase, self.total, self.done = phase, max(total, 1), 0
        self.draw("")

    def advance(self, label: str = "") -> None:
        self.done += 1
        self.draw(label)

    def draw(self, label: str) -> None:
        if not self.enabled:
            return
        filled = int(self.width * min(self.done, self.total) / self.total)
        bar = "#" * filled + "." * (self.width - filled)
        elapsed = time.monotonic() - self._start
        line = f"\r{self.phase:<6} [{bar}] {self.done}/{self.total} {elapsed:5.1f}s {label}"
        self.stream.write(line[:120].ljust(120))
        self.stream.flush()
        self._drawn = True

    def note(self, message: str) -> None:
        """A line of its own (skip reasons), printed whether or not the bar is shown."""
        self.clear()
        self.stream.write(message + "\n")
        self.stream.flush()

    def clear(self) -> None:
        if self._drawn:
            self.stream.write("\r" + " " * 120 + "\r")
            self.stream.flush()
            self._drawn = False
