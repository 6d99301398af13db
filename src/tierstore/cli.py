"""The ``tierstore`` command: ``bench``, ``reshard``, ``invalidator`` and ``version``."""

from __future__ import annotations

import argparse
import asyncio
import sys
from collections.abc import Sequence

__all__ = ["main"]


def _parser() -> argparse.ArgumentParser:
    from tierstore import __version__

    parser = argparse.ArgumentParser(prog="tierstore", description="tierstore command line tools")
    parser.add_argument("--version", action="version", version=f"tierstore {__version__}")
    sub = parser.add_subparsers(dest="command", metavar="COMMAND")

    bench = sub.add_parser(
        "bench",
        help="benchmark tierstore against raw clients in the same run",
        description=(
            "Run every selected scenario on every available system, print a table (ops/s, p50, p99, CPU, round "
            "trips per op, ratio vs the raw floor) and optionally write JSON. Without --servers only the "
            "embedded systems run (memory, SQLite in a temporary directory): no server is touched, even one "
            "that is running. With --servers, server URLs come from TIERSTORE_PG_URL, TIERSTORE_MYSQL_URL, "
            "TIERSTORE_REDIS_URL, TIERSTORE_REDIS_CLUSTER_URL, TIERSTORE_MEMCACHED_URL and "
            "TIERSTORE_DYNAMODB_URL, and the run writes only to tables and keys named tsbench*. Systems whose "
            "backend module is missing or whose server is unreachable are skipped with the reason."
        ),
    )
    bench.add_argument("--quick", action="store_true", help="short cells, small data set, quick systems (< 60 s)")
    bench.add_argument("--json", metavar="PATH", help="write the results as JSON to PATH")
    bench.add_argument(
        "--servers",
        action="store_true",
        help="include the systems on servers (TIERSTORE_*_URL); they write only to tsbench* tables and keys",
    )
    bench.add_argument(
        "--systems",
        metavar="GLOB[,GLOB]",
        help="systems to run, e.g. 'tierstore:postgres*' (default: every tierstore system, plus their floors)",
    )
    bench.add_argument("--scenarios", metavar="LIST", help="comma-separated scenario names (default: all)")
    bench.add_argument("--duration", type=float, metavar="SECONDS", help="timed seconds per system and scenario")
    bench.add_argument("--rounds", type=int, metavar="N", help="interleaved rounds per cell (default 3; 1 quick)")
    bench.add_argument("--partitions", type=int, metavar="N", help="data set size in partitions of 100 items")
    bench.add_argument("--no-floors", action="store_true", help="do not add the floors of the selected systems")
    bench.add_argument("--no-checks", action="store_true", help="skip the memory and Zipf-policy checks")
    bench.add_argument("--progress", action=argparse.BooleanOptionalAction, default=None,
                       help="progress on stderr: a bar on a terminal, else one line per cell (default: on)")
    bench.add_argument("--plots", action=argparse.BooleanOptionalAction, default=True,
                       help="with --json: PNG plots next to it (needs matplotlib, extra bench; default: on)")
    bench.add_argument("--list", action="store_true", help="list systems and scenarios, then exit")
    bench.add_argument(
        "--curves", nargs="?", const="all", metavar="LIST",
        help="cost as work grows instead of the table: get_many, concurrency, item_size, l1_capacity, "
             "dataset_size (comma-separated; default all); with --json, one PNG per curve next to it",
    )
    bench.add_argument("--curves-large", action="store_true",
                       help="with --curves: add the 1M-entry point to dataset_size (GiBs of memory, minutes)")

    sub.add_parser("reshard", help="move slot ranges between shards (see tierstore reshard --help)", add_help=False)
    sub.add_parser("invalidator", add_help=False,
                   help="invalidate caches from the store's change log (see tierstore invalidator --help)")
    sub.add_parser("version", help="print the tierstore version")
    return parser


def main(argv: Sequence[str] | None = None) -> int:
    """Entry point of the ``tierstore`` console script; returns the exit status."""
    args_list = list(sys.argv[1:] if argv is None else argv)
    if args_list and args_list[0] == "reshard":
        return _reshard(args_list[1:])
    if args_list and args_list[0] == "invalidator":  # hook: change-data-capture (tierstore.cdc.cli)
        from tierstore.cdc import cli as cdc_cli

        try:
            return cdc_cli.main(args_list[1:])
        except SystemExit as exc:  # argparse: --help and usage errors
            return int(exc.code or 0)
    parser = _parser()
    try:
        args = parser.parse_args(args_list)
    except SystemExit as exc:  # argparse exits on --help and on usage errors
        return int(exc.code or 0)
    if args.command == "version":
        from tierstore import __version__

        print(f"tierstore {__version__}")
        return 0
    if args.command == "bench":
        return _bench(args)
    parser.print_help()
    return 2


def _reshard(argv: list[str]) -> int:
    try:
        from tierstore import reshard
    except ImportError as exc:
        if exc.name not in ("tierstore.reshard", "tierstore"):
            raise
        print("tierstore reshard is not available in this version (module tierstore.reshard is missing)",
              file=sys.stderr)
        return 2
    status: int = reshard.main(argv)
    return status


def _split(value: str | None) -> tuple[str, ...]:
    return tuple(p.strip() for p in value.split(",") if p.strip()) if value else ()


def _bench(args: argparse.Namespace) -> int:
    from tierstore.bench.builtin import default_registry
    from tierstore.bench.report import format_report, write_json
    from tierstore.bench.runner import Settings, run, select

    if args.duration is not None and args.duration <= 0:
        print("tierstore bench: --duration must be positive", file=sys.stderr)
        return 2
    if args.rounds is not None and args.rounds < 1:
        print("tierstore bench: --rounds must be at least 1", file=sys.stderr)
        return 2
    if args.partitions is not None and args.partitions < 1:
        print("tierstore bench: --partitions must be at least 1", file=sys.stderr)
        return 2
    if args.curves is not None:
        return _curves(args)
    settings = Settings(
        quick=args.quick,
        duration=args.duration,
        rounds=args.rounds,
        systems=_split(args.systems),
        scenarios=_split(args.scenarios),
        floors=not args.no_floors,
        checks=not args.no_checks,
        partitions=args.partitions,
        progress=args.progress,
        servers=args.servers,
    )
    registry = default_registry()
    try:
        select(registry, settings)
    except ValueError as exc:
        print(f"tierstore bench: {exc}", file=sys.stderr)
        return 2
    if args.list:
        print("Scenarios:")
        for sc in registry.scenarios.values():
            print(f"  {sc.name:<20} {sc.description}")
        print("Systems:")
        for spec in registry.systems.values():
            quick = "" if spec.quick else " (not in --quick)"
            print(f"  {spec.name:<34} {spec.description}{quick}")
        return 0
    report = asyncio.run(run(settings, registry))
    print(format_report(report))
    if args.json:
        write_json(report, args.json)
        print(f"\nwrote {args.json}")
        if args.plots:
            from tierstore.bench.plots import write_plots

            paths, notice = write_plots(report.rows, args.json)
            for path in paths:
                print(f"wrote {path}")
            if notice:
                print(notice)
    if not report.rows:
        print("tierstore bench: no system could run; see the reasons above", file=sys.stderr)
        return 1
    return 0


def _curves(args: argparse.Namespace) -> int:
    from tierstore.bench.curves import CurveConfig, format_curves, run_curves

    names = () if args.curves == "all" else _split(args.curves)
    cfg = CurveConfig(
        names=names,
        servers=args.servers,
        progress=args.progress,
        large=args.curves_large,
        **({"duration": args.duration} if args.duration is not None else {}),
        **({"rounds": args.rounds} if args.rounds is not None else {}),
        **({"partitions": args.partitions} if args.partitions is not None else {}),
    )
    try:
        result = asyncio.run(run_curves(cfg))
    except ValueError as exc:
        print(f"tierstore bench: {exc}", file=sys.stderr)
        return 2
    print(format_curves(result))
    if args.json:
        import json

        with open(args.json, "w", encoding="utf-8") as fh:
            json.dump(result, fh, indent=1, allow_nan=False, default=str)
            fh.write("\n")
        print(f"\nwrote {args.json}")
        if args.plots:
            from tierstore.bench.curves_plot import write_curve_plots

            paths, notice = write_curve_plots(result, args.json)
            for path in paths:
                print(f"wrote {path}")
            if notice:
                print(notice)
    return 0


if __name__ == "__main__":
    sys.exit(main())
