"""The progress of a run on stderr: a bar redrawn in place on a terminal, one line per cell elsewhere.

A full run takes minutes (every cell 1 s × 3 rounds, plus setup). On a terminal one line is redrawn in place
and says which phase and cell is running; when stderr is a file or a pipe (CI logs, ``make bench | tee``) each
timed cell prints a line of its own, so a log shows how far the run got and where the time went. Skip reasons
are printed as lines of their own in both modes, so a log keeps them.
"""

from __future__ import annotations

import sys
import time
from typing import TextIO

__all__ = ["Progress"]

LINE_PHASES = frozenset({"bench"})
"""Phases whose steps print a line each when stderr is not a terminal (setup, verify and close are quick)."""


class Progress:
    """Progress on stderr: a bar on a terminal, one line per cell otherwise; plus notes.

    ``enabled``: ``None`` shows progress (bar or lines, by whether the stream is a terminal), ``False`` only
    notes, ``True`` forces the bar.
    """

    def __init__(self, enabled: bool | None = None, stream: TextIO | None = None, width: int = 28) -> None:
        self.stream = stream if stream is not None else sys.stderr
        tty = self.stream.isatty()
        self.enabled = tty if enabled is None else enabled
        self.lines = enabled is None and not tty
        self.width = width
        self.total = 0
        self.done = 0
        self.phase = ""
        self._drawn = False
        self._start = time.monotonic()
        self._step = self._start

    def begin(self, phase: str, total: int) -> None:
        self.phase, self.total, self.done = phase, max(total, 1), 0
        self._step = time.monotonic()
        self.draw("")

    def advance(self, label: str = "") -> None:
        self.done += 1
        self._step = time.monotonic()
        self.draw(label)

    def finished(self, label: str) -> None:
        """The step begun by the last :meth:`advance` is done: one line, when not on a terminal."""
        if self.lines and self.phase in LINE_PHASES:
            now = time.monotonic()
            self.stream.write(
                f"{self.phase} {self.done}/{self.total} {now - self._start:6.1f}s (+{now - self._step:.2f}s) {label}\n"
            )
            self.stream.flush()

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
