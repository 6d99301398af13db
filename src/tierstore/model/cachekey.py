"""How cache keys are spelled, in one place.

The cache key of an item is ``{table:partition}`` or ``{table:partition}:sort``. Key parts become *tokens*:
``str`` parts are kept when they hold only characters that cannot be mistaken for the separators (others are
percent-encoded as UTF-8), ``int`` parts are their decimal text, ``bytes`` parts ``x`` + hex. Several parts
are joined by ``,``. The braces make the partition a Redis Cluster hash tag (the slot is computed from the text
inside the first ``{...}``), so one partition's items share a slot and a node, and :func:`partition_tag`
reads it back for rendezvous hashing. Tiers prefix keys with their namespace (``<prefix>:<cache key>``).
Partition tokens are also the input of the routing hash, so any language can compute where a key lives.
"""

from __future__ import annotations

import re
from collections.abc import Callable, Sequence
from typing import Any

from tierstore.errors import ValidationError
from tierstore.model.keys import Key, KeyPart

__all__ = [
    "escape",
    "make_cache_key",
    "make_columns_check",
    "make_fast_key",
    "make_fast_keys",
    "make_fast_plain_key",
    "make_plain_keys",
    "partition_cache_tag",
    "partition_tag",
    "token",
]


_SAFE_TOKEN = re.compile(r"[A-Za-z0-9_.@/+=;!~*'()$&?#\-]*\Z")
_UNSAFE_CHAR = re.compile(r"[^A-Za-z0-9_.@/+=;!~*'()$&?#\-]").search


def escape(text: str) -> str:
    """``text`` with every character outside the safe set percent-encoded (its UTF-8 bytes)."""
    if (text.isalnum() and text.isascii()) or _UNSAFE_CHAR(text) is None:
        return text
    try:
        return "".join(c if _SAFE_TOKEN.match(c) else "".join(f"%{b:02X}" for b in c.encode()) for c in text)
    except UnicodeEncodeError:
        raise ValidationError("a key part holds a lone surrogate, which no store or tier can hold") from None


def token(part: KeyPart) -> str:
    """The token of one key part: escaped text, decimal digits, or ``x`` + hex."""
    if isinstance(part, str):
        return escape(part)
    if isinstance(part, bytes):
        return "x" + part.hex()
    return str(part)


def partition_cache_tag(table: str, partition_token: str) -> str:
    """``{table:partition}``: the hash tag every cache key of one partition starts with."""
    return "{" + table + ":" + partition_token + "}"


def partition_tag(key: str) -> str:
    """The part of a cache key that names its partition: inside the first ``{…}``, else the whole key."""
    start = key.find("{")
    if start >= 0:
        end = key.find("}", start + 1)
        if end > start + 1:
            return key[start + 1 : end]
    return key


_ascii: Callable[[Any], bool] = str.isascii
_TOKENIZERS: dict[type, Callable[[Any], str]] = {str: escape, int: int.__repr__, bytes: lambda b: "x" + b.hex()}


def make_cache_key(prefix: str, n_partition: int, types: tuple[type, ...]) -> Callable[[Key], str]:
    toks = [_TOKENIZERS[t] for t in types]
    if len(types) == 1:
        (t0,) = toks
        return lambda key: prefix + t0(key[0]) + "}"
    if len(types) == 2 and n_partition == 1:
        t0, t1 = toks
        return lambda key: prefix + t0(key[0]) + "}:" + t1(key[1])
    ptoks, stoks = toks[:n_partition], toks[n_partition:]

    def general(key: Key) -> str:
        head = prefix + ",".join([t(v) for t, v in zip(ptoks, key, strict=False)]) + "}"
        if not stoks:
            return head
        return head + ":" + ",".join([t(v) for t, v in zip(stoks, key[n_partition:], strict=True)])

    return general


def make_fast_plain_key(n_partition: int, n_sort: int, types: tuple[type, ...]) -> Callable[[Any, Any], Any]:
    """Like :func:`_make_fast_key` without the cache key (for reads that bypass the tiers)."""
    if n_partition != 1 or n_sort > 1:
        return lambda partition, sort: None
    pt = types[0]
    p_may_be_falsy = pt is int
    # Non-ASCII text takes the general path, which rejects lone surrogates (the cache-key path's escape()
    # does the same for the other builder).
    p_text = pt is str
    if n_sort == 0:

        def plain1(p: Any, s: Any) -> Any:
            if type(p) is pt and s is None and (p or p_may_be_falsy) and (not p_text or _ascii(p)):
                return (p,)
            return None

        return plain1
    st = types[1]
    s_may_be_falsy = st is int
    s_text = st is str

    def plain2(p: Any, s: Any) -> Any:
        if (
            type(p) is pt and type(s) is st and (p or p_may_be_falsy) and (s or s_may_be_falsy)
            and (not p_text or _ascii(p)) and (not s_text or _ascii(s))
        ):
            return (p, s)
        return None

    return plain2


def make_columns_check(types: tuple[type, ...]) -> Callable[[Sequence[Sequence[Any]]], bool]:
    """Whether columns of key parts (one sequence per key field, in key order) pass what the general path checks
    per key, for the values it sees most: the field's type (``str``: a subclass too, as the general path
    allows), non-empty text and bytes, ASCII text. A few C-level passes per column instead of a Python call per
    key; ``False`` (``None`` among the values, non-ASCII text, …) sends the keys to the per-key path, which
    validates and explains."""
    checks = [(t is str, {t}, t is not int) for t in types]

    def check(columns: Sequence[Sequence[Any]]) -> bool:
        if len(columns) != len(checks):
            return False
        for column, (text, want, non_empty) in zip(columns, checks, strict=True):
            if text:
                # str.join takes str only: one pass checks the type, a second the ASCII.
                try:
                    if not "".join(column).isascii():
                        return False
                except TypeError:
                    return False
            elif set(map(type, column)) != want:
                return False
            if non_empty and not all(column):
                return False
        return True

    return check


def make_plain_keys(
    n_partition: int, n_sort: int, types: tuple[type, ...], general: Callable[[Any], Key]
) -> Callable[[list[Any]], list[Key]]:
    """``get_many`` arguments (partitions, or ``(partition, sort)`` pairs) → their validated flat keys, for reads
    that bypass the tiers. When every argument passes :func:`make_columns_check`: a few C-level passes (pairs:
    the arguments themselves, exact tuples); else :func:`make_fast_plain_key` per argument, and ``general``
    (which validates and explains) for what it declines."""
    if n_partition != 1 or n_sort > 1:
        return lambda args: [general(a) for a in args]
    check = make_columns_check(types)
    plain = make_fast_plain_key(n_partition, n_sort, types)

    def per_key(some: list[Key | None], args: list[Any]) -> list[Key]:
        if None in some:
            return [general(a) if k is None else k for k, a in zip(some, args, strict=True)]
        return some  # type: ignore[return-value]  # no None left

    if n_sort == 0:

        def plain_partitions(args: list[Any]) -> list[Key]:
            if args and check((args,)):
                return list(zip(args))
            return per_key([plain(a, None) for a in args], args)

        return plain_partitions
    pair = {tuple}

    def plain_pairs(args: list[Any]) -> list[Key]:
        if args and set(map(type, args)) == pair:
            try:
                columns = list(zip(*args, strict=True))
            except ValueError:  # tuples of different lengths
                columns = []
            if check(columns):
                return args
        return per_key([plain(a[0], a[1]) if type(a) is tuple and len(a) == 2 else None for a in args], args)

    return plain_pairs


def make_fast_key(
    prefix: str, n_partition: int, n_sort: int, types: tuple[type, ...]
) -> Callable[[Any, Any], tuple[Key, str] | None]:
    """A specialised key builder for the common single-field layouts: the key tuple and its cache key,
    or ``None`` when the input needs the general path (which validates and explains)."""
    if n_partition != 1 or n_sort > 1:
        return lambda partition, sort: None
    pt = types[0]
    ptok = _TOKENIZERS[pt]
    p_may_be_falsy = pt is int
    if n_sort == 0:

        def fast1(partition: Any, sort: Any) -> tuple[Key, str] | None:
            if type(partition) is pt and sort is None and (partition or p_may_be_falsy):
                return (partition,), prefix + ptok(partition) + "}"  # type: ignore[return-value]
            return None

        return fast1
    st = types[1]
    if pt is str and st is str:
        # The most common layout; the alphanumeric check is inlined (C method calls, no Python frame).
        def fast_str2(partition: Any, sort: Any) -> tuple[Key, str] | None:
            if type(partition) is str and type(sort) is str and partition and sort:
                # A plain tuple (no cast() call on the hot path); one f-string builds the key in one allocation.
                if partition.isalnum() and sort.isalnum() and partition.isascii() and sort.isascii():
                    return (partition, sort), f"{prefix}{partition}}}:{sort}"
                return (partition, sort), f"{prefix}{escape(partition)}}}:{escape(sort)}"
            return None

        return fast_str2
    stok = _TOKENIZERS[st]
    s_may_be_falsy = st is int

    def fast2(partition: Any, sort: Any) -> tuple[Key, str] | None:
        if (
            type(partition) is pt
            and type(sort) is st
            and (partition or p_may_be_falsy)
            and (sort or s_may_be_falsy)
        ):
            return (partition, sort), prefix + ptok(partition) + "}:" + stok(sort)  # type: ignore[return-value]
        return None

    return fast2


def make_fast_keys(
    prefix: str, n_partition: int, n_sort: int, types: tuple[type, ...]
) -> Callable[[list[Any]], tuple[list[Key], list[str]] | None]:
    """:func:`make_fast_key` for a whole ``get_many``: the keys and cache keys of a list of key arguments in one
    loop, or ``None`` as soon as one argument needs the general path. For a sort key, an argument that is a
    ``(partition, sort)`` tuple of the key's exact types is its own key (the list itself is returned as the
    keys: pass a copy of the caller's)."""
    if n_partition != 1 or n_sort > 1:
        return lambda args: None
    pt = types[0]
    ptok = _TOKENIZERS[pt]
    p_may_be_falsy = pt is int
    if n_sort == 0:

        def many1(args: list[Any]) -> tuple[list[Key], list[str]] | None:
            cks: list[str] = []
            append = cks.append
            for p in args:
                if type(p) is not pt or not (p or p_may_be_falsy):
                    return None
                append(f"{prefix}{ptok(p)}}}")
            return [(p,) for p in args], cks

        return many1
    st = types[1]
    if pt is str and st is str:

        def many_str2(args: list[Any]) -> tuple[list[Key], list[str]] | None:
            cks: list[str] = []
            append = cks.append
            for a in args:
                if type(a) is not tuple or len(a) != 2:
                    return None
                p, s = a
                if type(p) is not str or type(s) is not str or not p or not s:
                    return None
                if p.isalnum() and s.isalnum() and p.isascii() and s.isascii():
                    append(f"{prefix}{p}}}:{s}")
                else:
                    append(f"{prefix}{escape(p)}}}:{escape(s)}")
            return args, cks

        return many_str2
    stok = _TOKENIZERS[st]
    s_may_be_falsy = st is int

    def many2(args: list[Any]) -> tuple[list[Key], list[str]] | None:
        cks: list[str] = []
        append = cks.append
        for a in args:
            if type(a) is not tuple or len(a) != 2:
                return None
            p, s = a
            if type(p) is not pt or type(s) is not st or not (p or p_may_be_falsy) or not (s or s_may_be_falsy):
                return None
            append(f"{prefix}{ptok(p)}}}:{stok(s)}")
        return args, cks

    return many2
