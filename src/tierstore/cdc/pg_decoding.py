"""A reader for the text that PostgreSQL's built-in ``test_decoding`` output plugin writes.

``test_decoding`` ships with every PostgreSQL (also RDS, Aurora, Cloud SQL, Azure), which makes it the one
logical-decoding output that needs nothing installed; it is what ``pg_logical_slot_peek_changes`` returns as
``data``::

    BEGIN 726
    table public.t1: INSERT: id[character varying]:'a''b c' s[bigint]:1 b[bytea]:'\\x00ff' name[text]:'x'
    table public.t1: UPDATE: old-key: id[character varying]:'a' s[bigint]:1 new-tuple: id[character varying]:'k2' …
    table public.t1: DELETE: id[character varying]:'k2' s[bigint]:1
    table public.t1: TRUNCATE: (no-flags)
    COMMIT 726 (at 2026-11-27 15:47:56.940081+00)
    message: transactional: 0 prefix: tierstore-cdc, sz: 9 content:heartbeat

Identifiers are quoted as ``quote_identifier`` does (``"Mixed Case"``, ``""`` inside), values as literals
(``'…'`` with ``''`` inside) except numbers, booleans and ``null``; an unchanged TOASTed value is
``unchanged-toast-datum``. ``old-key:`` appears only when an UPDATE changed the key (or with REPLICA IDENTITY
FULL); a DELETE carries the key columns (``(no-tuple-data)`` for a table without replica identity). The
format is that of ``contrib/test_decoding/test_decoding.c`` (PostgreSQL 10-17).

Only what invalidation needs is decoded: the table, the operation, and column values typed by the declared
type (integers as ``int``, ``bytea`` as ``bytes``, everything else as ``str``).
"""

from __future__ import annotations

from dataclasses import dataclass
from datetime import datetime
from typing import Any

__all__ = ["Begin", "Commit", "Message", "RowChange", "Unparsed", "parse"]


@dataclass(frozen=True, slots=True)
class Begin:
    pass


@dataclass(frozen=True, slots=True)
class Commit:
    at: float | None  # Unix seconds (with 'include-timestamp'), else None


@dataclass(frozen=True, slots=True)
class Message:
    prefix: str


@dataclass(frozen=True, slots=True)
class RowChange:
    namespace: str
    table: str
    op: str  # INSERT, UPDATE, DELETE, TRUNCATE
    old: dict[str, Any] | None  # old key (UPDATE that moved the key, DELETE)
    new: dict[str, Any] | None  # new tuple (INSERT, UPDATE)


@dataclass(frozen=True, slots=True)
class Unparsed:
    text: str


_INT_TYPES = frozenset({"bigint", "integer", "smallint", "oid"})


def parse(data: str) -> Begin | Commit | Message | RowChange | Unparsed:
    """One ``data`` line of ``test_decoding``."""
    if data.startswith("table "):
        try:
            return _row(data)
        except (ValueError, IndexError):
            return Unparsed(data)
    if data.startswith("BEGIN"):
        return Begin()
    if data.startswith("COMMIT"):
        at = None
        start = data.find("(at ")
        if start >= 0 and data.endswith(")"):
            at = _timestamp(data[start + 4 : -1])
        return Commit(at)
    if data.startswith("message:"):
        head, _, _ = data.partition(", sz:")
        return Message(head.rpartition("prefix: ")[2])
    return Unparsed(data)


def _timestamp(text: str) -> float | None:
    # "2026-11-27 15:47:56.940081+00" (timestamptz output in ISO style; the zone may be +05:30)
    t = text.strip()
    if len(t) >= 3 and t[-3] in "+-" and t[-2:].isdigit():
        t += ":00"
    try:
        return datetime.fromisoformat(t).timestamp()
    except ValueError:
        return None


def _ident(s: str, i: int) -> tuple[str, int]:
    """An identifier at ``s[i]`` (maybe double-quoted); returns it and the index after it."""
    if s[i] == '"':
        out = []
        j = i + 1
        while True:
            k = s.index('"', j)
            if k + 1 < len(s) and s[k + 1] == '"':
                out.append(s[j : k + 1])
                j = k + 2
                continue
            out.append(s[j:k])
            return "".join(out), k + 1
    j = i
    while j < len(s) and s[j] not in '.:[ ':
        j += 1
    return s[i:j], j


def _row(s: str) -> RowChange:
    i = len("table ")
    namespace, i = _ident(s, i)
    if s[i] != ".":
        raise ValueError("no namespace")
    table, i = _ident(s, i + 1)
    if not s.startswith(": ", i):
        raise ValueError("no operation")
    i += 2
    end = s.index(":", i)
    op = s[i:end]
    i = end + 1
    if op == "TRUNCATE":
        return RowChange(namespace, table, op, None, None)
    rest = s[i:]
    old: dict[str, Any] | None = None
    new: dict[str, Any] | None = None
    if rest.startswith(" old-key:"):
        old, j = _columns(rest, len(" old-key:"), stop=" new-tuple:")
        new, _ = _columns(rest, j + len(" new-tuple:"))
    elif rest.startswith(" (no-tuple-data)"):
        pass
    else:
        cols, _ = _columns(rest, 0)
        if op == "DELETE":
            old = cols
        else:
            new = cols
    return RowChange(namespace, table, op, old, new)


def _columns(s: str, i: int, stop: str | None = None) -> tuple[dict[str, Any], int]:
    out: dict[str, Any] = {}
    n = len(s)
    while i < n:
        if stop is not None and s.startswith(stop, i):
            return out, i
        if s[i] != " ":
            raise ValueError(f"expected a space at {i}")
        i += 1
        name, i = _ident(s, i)
        if s[i] != "[":
            raise ValueError("no type")
        close = s.index("]:", i)
        typ = s[i + 1 : close]
        i = close + 2
        if s.startswith("'", i):
            parts = []
            j = i + 1
            while True:
                k = s.index("'", j)
                if k + 1 < n and s[k + 1] == "'":
                    parts.append(s[j : k + 1])
                    j = k + 2
                    continue
                parts.append(s[j:k])
                i = k + 1
                break
            out[name] = _typed("".join(parts), typ)
        else:
            j = s.find(" ", i)
            j = n if j < 0 else j
            raw = s[i:j]
            i = j
            out[name] = None if raw == "null" else _typed(raw, typ)
    return out, i


def _typed(text: str, typ: str) -> Any:
    if typ in _INT_TYPES:
        try:
            return int(text)
        except ValueError:
            return text
    if typ == "bytea":
        if text.startswith("\\x"):
            try:
                return bytes.fromhex(text[2:])
            except ValueError:
                return text
        return text
    return text
