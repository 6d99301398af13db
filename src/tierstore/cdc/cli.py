"""``tierstore invalidator``: run a change-data-capture invalidator as a process (a sidecar).

    tierstore invalidator --store postgresql://app@db/app --cache redis://cache:6379/0?prefix=app \\
        --entity myapp.models:Customer --entity myapp.models:Order --health-port 9464

The store URL picks the source: ``dynamodb://`` → DynamoDB Streams, ``postgresql://`` → a logical slot
(``--notify`` for the trigger + LISTEN/NOTIFY fallback), ``mysql://``/``mariadb://`` → the binlog;
``--source`` gives the change log's own connection when it differs (a replication user). ``--cache`` lists the
shared tiers exactly as the services configure them (same URLs, same ``prefix``): the invalidations land in
them, and on Redis are published to every service's in-process tier. ``--checkpoint`` is required for
DynamoDB and binlogs (the PostgreSQL slot keeps its own position). SIGTERM/SIGINT stop it cleanly; so does
``kill -9`` as far as correctness goes (the checkpoint lags, the log is re-read).
"""

from __future__ import annotations

import argparse
import asyncio
import importlib
import json
import logging
import os
import signal
import sys
from collections.abc import Sequence
from typing import Any

from tierstore.errors import ConfigError, TierstoreError
from tierstore.model.entity import Entity

__all__ = ["main"]

log = logging.getLogger("tierstore.cdc.cli")


def parser() -> argparse.ArgumentParser:
    p = argparse.ArgumentParser(
        prog="tierstore invalidator",
        description="Keep tierstore's caches coherent with writes that bypass tierstore, from the store's "
        "change log (DynamoDB Streams, a PostgreSQL logical slot or LISTEN/NOTIFY, a MySQL/MariaDB binlog).",
    )
    p.add_argument("--store", required=True, metavar="URL", help="the store of record's URL (picks the source)")
    p.add_argument("--source", metavar="URL", help="connection for the change log, if not --store's")
    p.add_argument("--cache", action="append", default=[], metavar="URL",
                   help="a cache tier as the services use it (repeat, nearest first; same prefix)")
    p.add_argument("--entity", action="append", default=[], metavar="MODULE:CLASS",
                   help="an entity to keep coherent (repeat); MODULE alone takes every Entity it defines")
    p.add_argument("--checkpoint", metavar="PATH", help="checkpoint file (required for DynamoDB and binlogs)")
    p.add_argument("--query-cache", action="store_true",
                   help="also bump the DAX-style query cache's generations (services use DaxStylePolicy)")
    p.add_argument("--on-gap", choices=("clear", "ttl"), default="clear",
                   help="when the log cannot be resumed exactly: clear the tiers (default) or rely on TTLs")
    p.add_argument("--poll", type=float, metavar="SECONDS", help="pause between empty reads of the log")
    p.add_argument("--slot", default="tierstore_invalidator", help="PostgreSQL: logical slot name")
    p.add_argument("--notify", action="store_true", help="PostgreSQL: LISTEN/NOTIFY fallback instead of a slot")
    p.add_argument("--channel", default="tierstore_cdc", help="PostgreSQL --notify: channel name")
    p.add_argument("--namespace", default="public", help="PostgreSQL: schema of the tables")
    p.add_argument("--server-id", type=int, help="MySQL/MariaDB: replica server id (unique per server)")
    p.add_argument("--enable-stream", action="store_true", help="DynamoDB: turn on a KEYS_ONLY stream if none")
    p.add_argument("--health-port", type=int, metavar="PORT", help="serve /health and /metrics on this port")
    p.add_argument("--health-host", default="127.0.0.1", help="address for --health-port (default loopback)")
    p.add_argument("--status-file", metavar="PATH", help="write the health JSON here (atomically) periodically")
    p.add_argument("--status-every", type=float, default=1.0, metavar="SECONDS", help="period of --status-file")
    p.add_argument("--print-ddl", action="store_true", help="PostgreSQL: print the NOTIFY trigger DDL and exit")
    p.add_argument("--drop-slot", action="store_true", help="PostgreSQL: drop the logical slot and exit")
    p.add_argument("--log-level", default="INFO", help="logging level (default INFO)")
    return p


def load_entities(specs: Sequence[str]) -> list[type[Entity]]:
    out: list[type[Entity]] = []
    for spec in specs:
        module_name, _, attr = spec.partition(":")
        try:
            module = importlib.import_module(module_name)
        except ImportError as exc:
            raise ConfigError(f"--entity {spec}: cannot import {module_name} ({exc})") from None
        if attr:
            obj = getattr(module, attr, None)
            if not (isinstance(obj, type) and issubclass(obj, Entity)):
                raise ConfigError(f"--entity {spec}: {attr} is not a tierstore Entity in {module_name}")
            out.append(obj)
        else:
            found = [v for v in vars(module).values()
                     if isinstance(v, type) and issubclass(v, Entity) and v is not Entity
                     and v.__module__ == module.__name__]
            if not found:
                raise ConfigError(f"--entity {spec}: {module_name} defines no Entity")
            out.extend(found)
    if not out:
        raise ConfigError("name at least one --entity")
    return list(dict.fromkeys(out))


def make_source(args: argparse.Namespace) -> Any:
    url: str = args.source or args.store
    scheme = url.split("://", 1)[0].lower().split("+", 1)[0]
    poll = {} if args.poll is None else {"poll": args.poll}
    if scheme == "dynamodb":
        from tierstore.cdc.dynamodb_streams import DynamoStreamsSource

        return DynamoStreamsSource(url, enable_stream=args.enable_stream, **poll)
    if scheme in ("postgresql", "postgres"):
        if args.notify:
            from tierstore.cdc.pg_notify import PostgresNotifySource

            return PostgresNotifySource(url, channel=args.channel, namespace=args.namespace)
        from tierstore.cdc.postgres import PostgresLogicalSource

        return PostgresLogicalSource(url, slot=args.slot, namespace=args.namespace, **poll)
    if scheme in ("mysql", "mariadb"):
        from tierstore.cdc.mysql_binlog import MySqlBinlogSource

        return MySqlBinlogSource(url, server_id=args.server_id)
    raise ConfigError(f"no change-data-capture source for {scheme}:// stores (DynamoDB, PostgreSQL, MySQL/MariaDB)")


async def _run(args: argparse.Namespace) -> int:
    import tierstore
    from tierstore.cdc.base import Invalidator
    from tierstore.cdc.checkpoint import FileCheckpoint, MemoryCheckpoint
    from tierstore.cdc.health import HealthServer
    from tierstore.config import tier_config

    source = make_source(args)
    if args.drop_slot:
        if not hasattr(source, "drop_slot"):
            raise ConfigError("--drop-slot is for PostgreSQL logical slots")
        dropped = await source.drop_slot()
        print(f"slot {args.slot}: {'dropped' if dropped else 'not found'}")
        return 0
    entities = load_entities(args.entity)
    needs_file = not hasattr(source, "slot")
    if args.checkpoint:
        checkpoint: Any = FileCheckpoint(args.checkpoint)
    else:
        if needs_file:
            log.warning("no --checkpoint: a restart starts at the log's end (changes meanwhile fall to the TTLs)")
        checkpoint = MemoryCheckpoint()
    if not args.cache:
        raise ConfigError("name the shared cache tiers with --cache (as the services configure them)")
    if any(u.split("://", 1)[0].lower() == "memory" for u in args.cache):
        log.warning("a memory:// tier in a sidecar is its own, not the services': name the shared tiers only")
    tiers = [tier_config(u).build() for u in args.cache]
    query_cache = None
    if args.query_cache:
        from tierstore.policies.dax import DaxStylePolicy

        query_cache = DaxStylePolicy(tiers)
    db = tierstore.connect("memory://", tiers, query_cache=query_cache, create_tables=False)
    invalidator = Invalidator(db, source, entities, checkpoint=checkpoint, on_gap=args.on_gap)
    stop = asyncio.Event()
    loop = asyncio.get_running_loop()
    for sig in (signal.SIGTERM, signal.SIGINT):
        loop.add_signal_handler(sig, stop.set)
    health_server = None
    status_task = None
    try:
        await invalidator.start()
        if args.health_port is not None:
            health_server = await HealthServer(invalidator, args.health_port, args.health_host).start()
            log.info("health on http://%s:%d/health", args.health_host, health_server.port)
        if args.status_file:
            status_task = asyncio.create_task(_write_status(invalidator, args.status_file, args.status_every))
        log.info("invalidator running: %r", invalidator)
        waiter = asyncio.ensure_future(stop.wait())
        assert invalidator._task is not None
        done, _ = await asyncio.wait({waiter, invalidator._task}, return_when=asyncio.FIRST_COMPLETED)
        waiter.cancel()
        if invalidator._task in done:
            invalidator._task.result()
        return 0
    finally:
        if status_task is not None:
            status_task.cancel()
        if health_server is not None:
            await health_server.aclose()
        await invalidator.aclose()
        await db.aclose()
        for tier in tiers:
            try:
                await tier.aclose()
            except Exception as exc:
                log.debug("closing %s failed: %r", tier.name, exc)


def _replace_file(path: str, data: str) -> None:
    tmp = path + ".tmp"
    with open(tmp, "w", encoding="utf-8") as f:
        f.write(data)
    os.replace(tmp, path)


async def _write_status(invalidator: Any, path: str, every: float) -> None:
    while True:
        await asyncio.to_thread(_replace_file, path, json.dumps(invalidator.health(), default=str))
        await asyncio.sleep(every)


def main(argv: Sequence[str]) -> int:
    args = parser().parse_args(list(argv))
    logging.basicConfig(level=args.log_level.upper(), stream=sys.stderr,
                        format="%(asctime)s %(name)s %(levelname)s %(message)s")
    try:
        if args.print_ddl:
            from tierstore.cdc.pg_notify import notify_ddl

            print(notify_ddl(load_entities(args.entity), channel=args.channel, namespace=args.namespace), end="")
            return 0
        return asyncio.run(_run(args))
    except TierstoreError as exc:
        print(f"tierstore invalidator: {exc}", file=sys.stderr)
        return 2
    except KeyboardInterrupt:
        return 130
