"""``tierstore reshard …``: the command line of the resharding engine (argument parsing, opening the stores
and tiers named by URL, printing the report)."""

from __future__ import annotations

import argparse
import asyncio
import importlib
import json
import logging
import os
import sys
from pathlib import Path
from typing import Any

from tierstore.config import redact_url, store_config, tier_config
from tierstore.errors import ConfigError, TierstoreError
from tierstore.model.entity import Entity
from tierstore.reshard.engine import DEFAULT_BATCH, reshard
from tierstore.reshard.report import ReshardError
from tierstore.routing import Router
from tierstore.stores.base import Store
from tierstore.tiers.base import CacheTier

__all__ = ["main"]

log = logging.getLogger("tierstore.reshard")


def _parser() -> argparse.ArgumentParser:
    p = argparse.ArgumentParser(
        prog="tierstore reshard",
        description="Move the slots that change shard between two routers (dry run unless --execute).",
    )
    p.add_argument("--from", dest="old", required=True, help="current router: spec 'a=0-511,b=512-1023' or @file.json")
    target = p.add_mutually_exclusive_group(required=True)
    target.add_argument("--to", dest="new", help="new router: spec or @file.json")
    target.add_argument("--to-shards", help="new shard names, comma-separated: as few slots as possible move")
    p.add_argument("--store", action="append", default=[], metavar="SHARD=URL", help="store of one shard (repeat)")
    p.add_argument("--entity", action="append", default=[], metavar="MODULE:CLASS",
                   help="entity to move (repeat); MODULE is imported from the working directory first, like python -m")
    p.add_argument("--cache", action="append", default=[], metavar="URL", help="cache tier to invalidate (repeat)")
    p.add_argument("--checkpoint", help="checkpoint file (default: .tierstore-reshard.json)")
    p.add_argument("--batch-size", type=int, default=DEFAULT_BATCH, metavar="N",
                   help="items read, written or deleted per store request, and per checkpoint "
                   f"(default {DEFAULT_BATCH})")
    p.add_argument("--execute", action="store_true", help="write (default: dry run)")
    p.add_argument("--stop-after-copy", action="store_true", help="pause between copy and cleanup")
    p.add_argument("--json", action="store_true", help="print the report as JSON")
    p.add_argument("--quiet", action="store_true", help="no progress lines")
    return p


def _router_arg(text: str) -> Router:
    if text.startswith("@"):
        try:
            data = json.loads(Path(text[1:]).read_text())
        except (OSError, ValueError) as exc:
            raise ConfigError(f"cannot read router file {text[1:]}: {exc}") from None
        return Router.from_config(data)
    return Router.parse(text)


def _entity_arg(text: str) -> type[Entity]:
    module_name, _, attr = text.partition(":")
    if not module_name or not attr:
        raise ConfigError(f"--entity takes MODULE:CLASS, got {text!r}")
    cwd = os.getcwd()
    if cwd not in sys.path and "" not in sys.path:
        sys.path.insert(0, cwd)  # what `python -m` does: the service's own modules import from where it runs
    try:
        obj = getattr(importlib.import_module(module_name), attr)
    except (ImportError, AttributeError) as exc:
        raise ConfigError(f"cannot import entity {text}: {exc}") from None
    if not (isinstance(obj, type) and issubclass(obj, Entity)):
        raise ConfigError(f"{text} is not a tierstore Entity")
    return obj


def _missing_sqlite_file(config: Any) -> bool:
    from tierstore.stores.sql import SqlStoreConfig

    if not isinstance(config, SqlStoreConfig) or config.backend != "sqlite":
        return False
    path = config.url.split("?", 1)[0].split(":///", 1)[-1]
    return path not in ("", ":memory:") and not os.path.exists(path)


async def _main(args: argparse.Namespace) -> int:
    old = _router_arg(args.old)
    new = old.with_shards([s.strip() for s in args.to_shards.split(",")]) if args.to_shards else _router_arg(args.new)
    entities = [_entity_arg(e) for e in args.entity]
    if not entities:
        raise ConfigError("name at least one --entity MODULE:CLASS")
    urls: dict[str, str] = {}
    for spec in args.store:
        name, sep, url = spec.partition("=")
        if not sep or not name or not url:
            raise ConfigError(f"--store takes SHARD=URL, got {redact_url(spec)!r}")
        urls[name.strip()] = url.strip()
    stores: dict[str, Store] = {}
    tiers: list[CacheTier] = []
    out = sys.stdout
    # A dry run reads the source shards only: the other shards' stores are built but never opened, so
    # nothing is created or written on them (not even an empty SQLite file).
    sources = set(old.plan(new).sources)
    try:
        for name, url in urls.items():
            config = store_config(url)
            if not args.execute and name in sources and _missing_sqlite_file(config):
                config = store_config("memory://")  # a SQLite file that does not exist holds no items
            store = config.build()
            stores[name] = store
            if args.execute or name in sources:
                await store.open()
        for url in args.cache:
            tier = tier_config(url).build()
            tiers.append(tier)
            await tier.open()
        print(f"plan: {old} -> {new}", file=out)
        progress = None if args.quiet else (lambda e: print(f"  {e}", file=sys.stderr))
        report = await reshard(
            old, new, stores, entities, execute=args.execute,
            checkpoint=args.checkpoint or ".tierstore-reshard.json", batch_size=args.batch_size,
            tiers=tiers, progress=progress, stop_after_copy=args.stop_after_copy,
        )
        print(json.dumps(report.as_dict(), indent=1) if args.json else str(report), file=out)
        return 0 if report.ok else 1
    finally:
        closables: list[Any] = [*reversed(tiers), *reversed(list(stores.values()))]
        for closable in closables:
            try:
                await closable.aclose()
            except Exception as exc:
                log.warning("closing %r failed: %r", closable, exc)


def main(argv: list[str]) -> int:
    """``tierstore reshard …``: 0 done (or dry run), 1 verification failed, 2 bad arguments or config."""
    args = _parser().parse_args(argv)
    try:
        return asyncio.run(_main(args))
    except ReshardError as exc:
        print(f"tierstore reshard: {exc}", file=sys.stderr)
        return 1
    except TierstoreError as exc:
        print(f"tierstore reshard: {exc}", file=sys.stderr)
        return 2
