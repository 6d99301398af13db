"""tierstore's logging: one logger tree, bounded messages, and repeated messages summarised.

Every logger is ``tierstore`` or below it (``tierstore.cache``, ``tierstore.cache.redis``…). tierstore adds
no handler: the service configures logging (unconfigured, Python prints warnings to stderr).

Loggers of the paths that run per operation (the cache tiers, the tiered path, the query cache) come from
:func:`get_logger`, which adds :class:`Throttle`. A failing server fails every operation, and its loggers
must not write a line per operation: the first record of a kind (same logger, same message template, same
leading names such as the tier and the node) passes; the same kind again within :data:`SUMMARY_INTERVAL`
seconds is counted, not written; the first one after the interval is written with the count
(``[1234 more like this in the last 60s]``). Arguments are rendered bounded (:func:`bounded`): an exception
or an object a user's data reached (a key, a server's reply) never puts more than :data:`MAX_ARG` characters
into a message.

Hand-written rather than a library: the standard library's ``logging`` has no rate limit, and the filter is
a dict lookup per record, on error paths only.
"""

from __future__ import annotations

import logging
import time
from typing import Any

__all__ = ["MAX_ARG", "SUMMARY_INTERVAL", "Throttle", "bounded", "get_logger"]

ROOT = "tierstore"
SUMMARY_INTERVAL = 60.0
"""Seconds during which repeats of one kind of message are counted instead of written."""
MAX_ARG = 200
"""Longest rendering of one message argument."""
_MAX_KINDS = 1024  # distinct kinds remembered per logger; past it the memory starts again


def _now() -> float:
    return time.monotonic()


def bounded(value: Any, limit: int = MAX_ARG) -> str:
    """``value`` as text of at most ``limit`` characters (an exception as ``Type: message``)."""
    text = f"{type(value).__name__}: {value}" if isinstance(value, BaseException) else repr(value)
    if len(text) > limit:
        text = f"{text[:limit]}…(+{len(text) - limit} chars)"
    return text


class _Kind:
    __slots__ = ("since", "suppressed")

    def __init__(self, since: float) -> None:
        self.since = since
        self.suppressed = 0


class Throttle(logging.Filter):
    """Lets the first record of each kind through, counts its repeats for :data:`SUMMARY_INTERVAL` seconds,
    then lets one through with the count. Also bounds every argument (see the module docstring)."""

    def __init__(self, interval: float | None = None) -> None:
        super().__init__()
        self.interval = interval
        self._kinds: dict[tuple[Any, ...], _Kind] = {}

    def filter(self, record: logging.LogRecord) -> bool:
        args = record.args if isinstance(record.args, tuple) else ()
        names = tuple(a for a in args[:2] if isinstance(a, str) and len(a) <= 100)
        key = (record.levelno, record.msg, *names)
        now = _now()
        interval = SUMMARY_INTERVAL if self.interval is None else self.interval
        kind = self._kinds.get(key)
        if kind is not None and now - kind.since < interval:
            kind.suppressed += 1
            return False
        suppressed = kind.suppressed if kind is not None else 0
        if kind is None and len(self._kinds) >= _MAX_KINDS:
            self._kinds.clear()
        self._kinds[key] = _Kind(now)
        if args:
            record.msg = str(record.msg).replace("%r", "%s")
            record.args = tuple(a if isinstance(a, int | float) else bounded(a) if not isinstance(a, str)
                                else a[:MAX_ARG] for a in args)
        if suppressed:
            record.msg = f"{record.msg} [{suppressed} more like this in the last {now - kind.since:.0f}s]"  # type: ignore[union-attr]
        return True


def get_logger(name: str) -> logging.Logger:
    """The logger ``name`` (``tierstore`` or below) with a :class:`Throttle`, added once."""
    if name != ROOT and not name.startswith(ROOT + "."):
        raise ValueError(f"tierstore loggers live under {ROOT!r}, got {name!r}")
    logger = logging.getLogger(name)
    if not any(isinstance(f, Throttle) for f in logger.filters):
        logger.addFilter(Throttle())
    return logger
