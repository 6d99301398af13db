"""The service load test: the reference service (examples/service) under uvicorn, driven by wrk over loopback.

One command::

    python benchmarks/service/run.py                      # PostgreSQL if TIERSTORE_PG_URL answers, else SQLite
    python benchmarks/service/run.py --duration 20 --configs none,memory,memory+redis

For each cache configuration it starts the service (one uvicorn process, the image's command) and warms it up;
then, in ``--rounds`` interleaved rounds, runs wrk against each with ``mix.lua`` for ``--duration`` seconds or
``--max-requests``, whichever ends first: Zipf(s) customer ids, ``--read-ratio`` reads (a customer; an order
with its customer joined; a page of a customer's orders), the rest new orders. The data set (customers
``c000000``… with ``--orders`` orders each) is written once, before, straight through tierstore; the shared
tier of a configuration is warmed with every item first (``--no-prefill``: cold). It reports req/s, p50/p99
latency, errors (socket errors and non-2xx answers), store point reads and queries per request (deltas of the
service's ``db.stats()``) and the service's CPU per request (from ``/proc/<pid>/stat``), prints the table and
the target ratios, and writes ``service-bench.json`` and ``service-bench.png`` (matplotlib, the ``bench``
extra) to ``--out``.

Configurations: ``none`` (no cache), ``memory`` (in-process tier), ``memory+redis``, ``memory+memcached``,
``memory+query`` (in-process tier plus the query cache). Redis and Memcached URLs come from TIERSTORE_REDIS_URL
and TIERSTORE_MEMCACHED_URL; every run uses a key prefix of its own. Only loopback addresses are targeted.
"""

from __future__ import annotations

import argparse
import asyncio
import json
import os
import pathlib
import shutil
import socket
import statistics
import subprocess
import sys
import tempfile
import time
import urllib.request
import uuid
from dataclasses import asdict, dataclass
from typing import Any

ROOT = pathlib.Path(__file__).resolve().parents[2]
SERVICE = ROOT / "examples" / "service"
SCRIPT = pathlib.Path(__file__).resolve().parent / "mix.lua"
BIN = pathlib.Path(sys.executable).parent
CONFIGS = ("none", "memory", "memory+redis", "memory+memcached", "memory+query")


@dataclass
class Row:
    config: str
    requests: int
    seconds: float
    rps: float
    p50_ms: float
    p99_ms: float
    errors: int
    point_reads_per_req: float
    queries_per_req: float
    cpu_us_per_req: float
    cpu_share: float


def _reachable(url: str) -> bool:
    netloc = url.split("://", 1)[1].split("/", 1)[0].split("?", 1)[0].rsplit("@", 1)[-1]
    host, _, port = netloc.split(",")[0].rpartition(":")
    try:
        with socket.create_connection((host or "127.0.0.1", int(port)), timeout=1.0):
            return True
    except (OSError, ValueError):
        return False


def _loopback(url: str) -> None:
    netloc = url.split("://", 1)[1].split("/", 1)[0].split("?", 1)[0].rsplit("@", 1)[-1]
    for hostport in netloc.split(","):
        host = hostport.rpartition(":")[0] or hostport
        if host not in ("127.0.0.1", "localhost", "[::1]", "::1") and not host.startswith("127."):
            raise SystemExit(f"refusing to load a non-loopback server: {host}")


def _free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return int(s.getsockname()[1])


def _get(url: str, timeout: float = 10.0) -> Any:
    with urllib.request.urlopen(url, timeout=timeout) as res:  # noqa: S310  (loopback URL built here)
        return json.loads(res.read())


def _cpu_seconds(pid: int) -> float:
    fields = pathlib.Path(f"/proc/{pid}/stat").read_text().rsplit(")", 1)[1].split()
    return (int(fields[11]) + int(fields[12])) / os.sysconf("SC_CLK_TCK")  # utime + stime


async def seed(store: str, customers: int, orders: int) -> None:
    """Write the data set once (upserts; skipped when its last items are already there)."""
    sys.path.insert(0, str(SERVICE))
    import app as service  # the service's own entities

    import tierstore

    async with tierstore.connect(store) as db:
        await db.create_tables(service.Customer, service.Order)
        cust, ords = db.repository(service.Customer), db.repository(service.Order)
        last = f"c{customers - 1:06d}"
        if await cust.get(last) is not None and await ords.get(last, f"o{orders - 1:03d}") is not None:
            return
        batch = 500
        for start in range(0, customers, batch):
            ids = [f"c{i:06d}" for i in range(start, min(start + batch, customers))]
            await cust.put_many([service.Customer(i, f"Customer {i}", f"{i}@example.com") for i in ids])
            await ords.put_many([
                service.Order(i, f"o{j:03d}", 100 * (j + 1)) for i in ids for j in range(orders)
            ])


async def prefill(store: str, tier: str, customers: int, orders: int) -> None:
    """Read every item once through ``tier`` alone, so the shared tier starts warm — as it is for a task that
    joins a running fleet. (An in-process tier cannot be warmed from outside; the warm-up load does that.)"""
    import app as service

    import tierstore

    async with tierstore.connect(store, [tier], create_tables=False) as db:
        cust, ords = db.repository(service.Customer), db.repository(service.Order)
        batch = 50
        for start in range(0, customers, batch):
            ids = [f"c{i:06d}" for i in range(start, min(start + batch, customers))]
            await cust.get_many(ids)
            await ords.get_many([(i, f"o{j:03d}") for i in ids for j in range(orders)])


class Service:
    def __init__(self, env: dict[str, str], log: pathlib.Path) -> None:
        self.port = _free_port()
        self.url = f"http://127.0.0.1:{self.port}"
        full = {**os.environ, **env, "UVICORN_HOST": "127.0.0.1", "UVICORN_PORT": str(self.port),
                "PATH": f"{BIN}{os.pathsep}{os.environ.get('PATH', '')}"}
        exe = shutil.which("uvicorn", path=str(BIN)) or "uvicorn"
        self._log = log.open("wb")
        self.proc = subprocess.Popen(
            [exe, "app:app", "--no-access-log"], cwd=SERVICE, env=full, stdout=self._log, stderr=subprocess.STDOUT
        )
        end = time.monotonic() + 60
        while True:
            if self.proc.poll() is not None:
                raise SystemExit(f"the service exited ({self.proc.returncode}); see {log}")
            try:
                _get(f"{self.url}/healthz", 1.0)
                return
            except OSError:
                if time.monotonic() > end:
                    raise SystemExit(f"the service did not start; see {log}") from None
                time.sleep(0.1)

    def stop(self) -> None:
        self.proc.terminate()
        try:
            self.proc.wait(timeout=30)
        except subprocess.TimeoutExpired:
            self.proc.kill()
            self.proc.wait()
        self._log.close()


def wrk(url: str, seconds: float, args: argparse.Namespace, max_requests: int) -> dict[str, Any]:
    exe = shutil.which("wrk")
    if exe is None:
        raise SystemExit("wrk is not installed: scripts/services start wrk (Debian package 'wrk')")
    cmd = [
        exe, "-t", str(args.threads), "-c", str(args.connections), "-d", f"{max(1, round(seconds))}s",
        "--timeout", "5s", "-s", str(SCRIPT), url, "--",
        str(args.customers), str(args.orders), str(args.read_ratio), str(max(1, max_requests // args.threads)),
        str(args.seed), str(args.zipf), uuid.uuid4().hex[:8],
    ]
    out = subprocess.run(cmd, capture_output=True, text=True, timeout=seconds + 60, check=True)
    for line in out.stdout.splitlines():
        if line.startswith("BENCH_JSON "):
            result: dict[str, Any] = json.loads(line[len("BENCH_JSON "):])
            return result
    raise SystemExit(f"wrk printed no result:\n{out.stdout}\n{out.stderr}")


def start_config(config: str, args: argparse.Namespace, store: str, work: pathlib.Path) -> Service:
    """The service of ``config``, started (its shared tier warmed first, unless ``--no-prefill``)."""
    env = {"TIERSTORE_STORE": store, "TIERSTORE_CREATE_TABLES": "0", "TIERSTORE_STRICT": "1",
           "TIERSTORE_QUERY_CACHE": ""}
    prefix = f"bench{uuid.uuid4().hex[:8]}"
    tiers = {
        "none": "none",
        "memory": "memory://",
        "memory+query": "memory://",
        "memory+redis": f"memory:// {os.environ.get('TIERSTORE_REDIS_URL', 'redis://127.0.0.1:6379/0')}"
                        f"?prefix={prefix}",
        "memory+memcached": "memory:// " + os.environ.get(
            "TIERSTORE_MEMCACHED_URL", "memcached://127.0.0.1:11211,127.0.0.1:11212") + f"?prefix={prefix}",
    }[config]
    shared = tiers.split()[1:]
    for url in shared:
        _loopback(url)
    env["TIERSTORE_CACHE"] = tiers
    if shared and args.prefill:
        asyncio.run(prefill(store, shared[0], args.customers, args.orders))
    if config == "memory+query":
        env["TIERSTORE_QUERY_CACHE"] = "query://?ttl=60s"
    return Service(env, work / f"service-{config}.log")


@dataclass
class Totals:
    requests: int = 0
    seconds: float = 0.0
    errors: int = 0
    reads: int = 0
    queries: int = 0
    cpu: float = 0.0
    p50: list[float] | None = None
    p99: list[float] | None = None


def measure(svc: Service, args: argparse.Namespace, into: Totals) -> None:
    """One timed wrk run against ``svc``, added to ``into``."""
    before, cpu0 = _get(f"{svc.url}/stats"), _cpu_seconds(svc.proc.pid)
    res = wrk(svc.url, args.duration, args, args.max_requests)
    after, cpu1 = _get(f"{svc.url}/stats"), _cpu_seconds(svc.proc.pid)
    into.requests += res["requests"]
    into.seconds += res["duration_us"] / 1e6
    into.errors += sum(res[k] for k in res if k.startswith("errors_"))
    into.reads += after["store"]["reads"] - before["store"]["reads"]
    into.queries += after["store"]["queries"] - before["store"]["queries"]
    into.cpu += cpu1 - cpu0
    into.p50 = [*(into.p50 or []), res["p50_us"] / 1000]
    into.p99 = [*(into.p99 or []), res["p99_us"] / 1000]


def row(config: str, t: Totals) -> Row:
    n = max(1, t.requests)
    return Row(
        config=config, requests=t.requests, seconds=round(t.seconds, 2), rps=round(t.requests / t.seconds, 1),
        p50_ms=round(statistics.median(t.p50 or [0.0]), 2), p99_ms=round(statistics.median(t.p99 or [0.0]), 2),
        errors=t.errors, point_reads_per_req=round(t.reads / n, 4), queries_per_req=round(t.queries / n, 4),
        cpu_us_per_req=round(t.cpu * 1e6 / n, 1), cpu_share=round(t.cpu / t.seconds, 3),
    )


def run_all(configs: list[str], args: argparse.Namespace, store: str, work: pathlib.Path) -> list[Row]:
    """Every configuration's service runs at once (idle while another is measured); rounds interleave the
    configurations, each round in a rotated order, so a load change on the machine hits all of them alike."""
    services: dict[str, Service] = {}
    try:
        for config in configs:
            services[config] = start_config(config, args, store, work)
            if args.warmup > 0:
                wrk(services[config].url, args.warmup, args, args.max_requests)
            print(f"  {config}: started and warmed up", flush=True)
        totals = {c: Totals() for c in configs}
        for r in range(args.rounds):
            order = configs[r % len(configs):] + configs[: r % len(configs)]
            for config in order:
                measure(services[config], args, totals[config])
            print(f"  round {r + 1}/{args.rounds} done", flush=True)
    finally:
        for svc in services.values():
            svc.stop()
    return [row(c, totals[c]) for c in configs]


def table(rows: list[Row]) -> str:
    head = f"{'config':<18}{'req/s':>9}{'p50 ms':>9}{'p99 ms':>9}{'errors':>8}{'reads/req':>11}" \
           f"{'queries/req':>13}{'CPU us/req':>12}{'CPU':>7}"
    lines = [head, "-" * len(head)]
    lines += [
        f"{r.config:<18}{r.rps:>9.0f}{r.p50_ms:>9.2f}{r.p99_ms:>9.2f}{r.errors:>8}{r.point_reads_per_req:>11.3f}"
        f"{r.queries_per_req:>13.3f}{r.cpu_us_per_req:>12.0f}{r.cpu_share:>7.2f}"
        for r in rows
    ]
    return "\n".join(lines)


def targets(rows: list[Row]) -> list[tuple[str, str, bool]]:
    by = {r.config: r for r in rows}
    out: list[tuple[str, str, bool]] = []
    if "none" in by and "memory" in by:
        ratio = by["memory"].rps / by["none"].rps
        out.append(("memory req/s >= 1.5x no cache", f"{ratio:.2f}x", ratio >= 1.5))
    if "memory" in by and "memory+redis" in by:
        ratio = by["memory+redis"].rps / by["memory"].rps
        out.append(("memory+redis within 5% of memory", f"{ratio:.3f}", ratio >= 0.95))
    if "memory+redis" in by:
        reads = by["memory+redis"].point_reads_per_req
        out.append(("memory+redis <= 0.05 point reads/req", f"{reads:.4f}", reads <= 0.05))
    errors = sum(r.errors for r in rows)
    out.append(("0 errors", str(errors), errors == 0))
    return out


def plot(rows: list[Row], path: pathlib.Path, title: str) -> bool:
    try:
        import matplotlib

        matplotlib.use("Agg")
        import matplotlib.pyplot as plt
    except ImportError:
        print("matplotlib is not installed (pip install 'tierstore[bench]'): no plot", file=sys.stderr)
        return False
    fig, (ax1, ax2) = plt.subplots(1, 2, figsize=(11, 4))
    names = [r.config for r in rows]
    ax1.bar(names, [r.rps for r in rows], color="#4c72b0")
    ax1.set_ylabel("requests / s")
    ax1.set_title("throughput")
    ax2.bar(names, [r.p99_ms for r in rows], color="#dd8452", label="p99")
    ax2.bar(names, [r.p50_ms for r in rows], color="#55a868", label="p50")
    ax2.set_ylabel("latency (ms)")
    ax2.set_title("latency")
    ax2.legend()
    for ax in (ax1, ax2):
        ax.tick_params(axis="x", rotation=30)
    fig.suptitle(title, fontsize=9)
    fig.tight_layout()
    fig.savefig(path, dpi=100)
    plt.close(fig)
    return True


def main(argv: list[str] | None = None) -> int:
    p = argparse.ArgumentParser(description=__doc__.split("\n\n", 1)[0])
    p.add_argument("--store", help="store URL (default: TIERSTORE_PG_URL if it answers, else a temporary SQLite)")
    p.add_argument("--configs", default=",".join(CONFIGS), help=f"comma-separated subset of {', '.join(CONFIGS)}")
    p.add_argument("--customers", type=int, default=10_000)
    p.add_argument("--orders", type=int, default=10, help="orders per customer")
    p.add_argument("--duration", type=float, default=10.0, help="timed seconds per configuration and round")
    p.add_argument("--rounds", type=int, default=2, help="interleaved rounds (each configuration once per round)")
    p.add_argument("--warmup", type=float, default=10.0, help="seconds of load before timing")
    p.add_argument("--max-requests", type=int, default=2_000_000, help="bound on requests per wrk run")
    p.add_argument("--connections", type=int, default=32)
    p.add_argument("--threads", type=int, default=1, help="wrk threads (the machine's other core runs the service)")
    p.add_argument("--read-ratio", type=float, default=0.9)
    p.add_argument("--zipf", type=float, default=1.0, help="Zipf exponent of the customer ids")
    p.add_argument("--seed", type=int, default=1)
    p.add_argument("--prefill", action=argparse.BooleanOptionalAction, default=True,
                   help="warm the shared tier (Redis, Memcached) with every item before its run (default: on)")
    p.add_argument("--out", default=str(ROOT / "benchmarks" / "service" / "results"))
    args = p.parse_args(argv)
    configs = [c.strip() for c in args.configs.split(",") if c.strip()]
    unknown = set(configs) - set(CONFIGS)
    if unknown or not configs:
        p.error(f"unknown configurations {sorted(unknown)}")
    out = pathlib.Path(args.out)
    out.mkdir(parents=True, exist_ok=True)
    work = pathlib.Path(tempfile.mkdtemp(prefix="service-bench-"))
    store = args.store
    if store is None:
        pg = os.environ.get("TIERSTORE_PG_URL", "postgresql+asyncpg://postgres@127.0.0.1:5432/test")
        store = pg if _reachable(pg) else f"sqlite+aiosqlite:///{work}/bench.db"
    if "://" in store and not store.startswith("sqlite"):
        _loopback(store)
    print(f"store: {store.split('@')[-1]}; {args.customers} customers x {args.orders} orders; "
          f"{args.read_ratio:.0%} reads; Zipf s={args.zipf}; {args.connections} connections; "
          f"{args.rounds} x {args.duration:g}s per configuration", flush=True)
    t0 = time.monotonic()
    asyncio.run(seed(store, args.customers, args.orders))
    print(f"data set ready in {time.monotonic() - t0:.1f}s", flush=True)
    rows = run_all(configs, args, store, work)
    print()
    print(table(rows))
    print()
    checks = targets(rows)
    for name, value, ok in checks:
        print(f"{'PASS' if ok else 'MISS'}  {name}: {value}")
    title = (f"tierstore service: {store.split('://')[0]}, {args.customers} customers, {args.read_ratio:.0%} reads, "
             f"Zipf s={args.zipf}, {args.connections} conns, {args.rounds} x {args.duration:g}s")
    (out / "service-bench.json").write_text(json.dumps({
        "settings": {k: v for k, v in vars(args).items() if k != "out"} | {"store": store.split("@")[-1]},
        "rows": [asdict(r) for r in rows],
        "targets": [{"name": n, "value": v, "met": ok} for n, v, ok in checks],
    }, indent=2))
    plotted = plot(rows, out / "service-bench.png", title)
    print(f"\nwrote {out / 'service-bench.json'}" + (f" and {out / 'service-bench.png'}" if plotted else ""))
    return 0


if __name__ == "__main__":
    sys.exit(main())
