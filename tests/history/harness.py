"""Runs a history: its own cache servers, N workload processes, a fault schedule; returns the history.

The servers a schedule stops or kills are started here on free ports and stopped by PID; the shared test
servers are never touched. The fault proxy (:mod:`tierstore.testing.proxy`) stands between the workload
processes and the cache server in schedules that delay traffic.
"""

from __future__ import annotations

import asyncio
import os
import signal
import socket
import subprocess
import sys
import tempfile
import time
import uuid
from collections.abc import Iterator
from contextlib import contextmanager, suppress
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import msgspec
from redis.asyncio import Redis

import tierstore
from tierstore.testing.proxy import FaultProxy

HERE = Path(__file__).resolve().parent
sys.path.insert(0, str(HERE))

from workload import Config, HItem, Op, Setup  # noqa: E402


def free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return int(s.getsockname()[1])


class Server:
    """A redis-server or memcached this run started: stop, continue, kill and restart it by PID."""

    def __init__(self, kind: str, workdir: str) -> None:
        self.kind, self.port = kind, free_port()
        if kind == "redis":
            # AOF fsynced on every write: a restart "with its data" brings back exactly what was acknowledged
            self.argv = ["redis-server", "--bind", "127.0.0.1", "--port", str(self.port), "--save", "",
                         "--appendonly", "yes", "--appendfsync", "always", "--dir", workdir]
        else:
            self.argv = ["memcached", "-l", "127.0.0.1", "-p", str(self.port), "-U", "0", "-m", "64"]
            if os.geteuid() == 0:
                self.argv += ["-u", "root"]
        self.proc: subprocess.Popen[bytes] | None = None
        self.start()

    def start(self, *, empty: bool = False) -> None:
        argv = self.argv
        if empty and self.kind == "redis":
            argv = [*argv[:-4], "--appendonly", "no", "--dir", tempfile.mkdtemp(prefix="hist-empty-")]
        self.proc = subprocess.Popen(argv, stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL)
        deadline = time.monotonic() + 10
        while True:
            try:
                socket.create_connection(("127.0.0.1", self.port), timeout=0.2).close()
                return
            except OSError:
                if self.proc.poll() is not None or time.monotonic() > deadline:
                    raise RuntimeError(f"could not start {self.kind} on port {self.port}") from None
                time.sleep(0.02)

    def signal(self, sig: signal.Signals) -> None:
        assert self.proc is not None
        os.kill(self.proc.pid, sig)

    def kill(self) -> None:
        proc, self.proc = self.proc, None
        if proc is not None and proc.poll() is None:
            os.kill(proc.pid, signal.SIGCONT)
            proc.kill()
            proc.wait(5)


@dataclass(frozen=True)
class SetupSpec:
    """One database of a run: ``tiers`` among "memory", "redis", "memcached"; ``naive``: the naive cache-aside
    tier on Redis instead."""

    name: str
    tiers: tuple[str, ...]
    naive: bool = False
    l1_ttl: float = 60.0
    keys: int = 0  # 0: the run's number of keys

    @property
    def slug(self) -> str:
        return self.name.replace("+", "_")

    def urls(self, ports: dict[str, int], run: str) -> list[str]:
        out = []
        for t in self.tiers:
            if t == "memory":
                out.append(f"memory://?max_items=10000&ttl={self.l1_ttl}s")
            elif t == "redis":
                out.append(f"redis://127.0.0.1:{ports['redis']}/0?prefix=h{run}{self.slug}")
            else:
                out.append(f"memcached://127.0.0.1:{ports['memcached']}?prefix=h{run}{self.slug}")
        return out


FAULTS = {
    "sigstop": "SIGSTOP every cache server for 1.5 s, then SIGCONT",
    "restart_empty": "kill -9 every cache server, restart it empty 0.3 s later",
    "restart_data": "kill -9 Redis, restart it from its AOF (fsynced on every write) 0.3 s later",
    "pubsub_kill": "CLIENT KILL TYPE pubsub on Redis: every process's invalidation channel drops",
    "proxy_delay": "150 ms more per chunk through the fault proxy (past the 100 ms tier timeout) for 1.5 s",
}


@dataclass
class History:
    setup: SetupSpec
    ops: list[Op]
    final: dict[str, int]
    faults: list[tuple[str, int, int]] = field(default_factory=list)  # (fault, start ns, end ns)
    seconds: float = 0.0

    def fault_at(self, t: int) -> str:
        """The last fault injected before ``t`` ("none" before the first)."""
        return max(((s, f) for f, s, _ in self.faults if s <= t), default=(0, "none"))[1]


async def _inject(fault: str, servers: dict[str, Server], proxies: list[FaultProxy]) -> None:
    if fault == "sigstop":
        for s in servers.values():
            s.signal(signal.SIGSTOP)
        await asyncio.sleep(1.5)
        for s in servers.values():
            s.signal(signal.SIGCONT)
    elif fault in ("restart_empty", "restart_data"):
        targets = [s for s in servers.values() if fault == "restart_empty" or s.kind == "redis"]
        for s in targets:
            s.kill()
        await asyncio.sleep(0.3)
        for s in targets:
            await asyncio.to_thread(s.start, empty=fault == "restart_empty")
    elif fault == "pubsub_kill":
        if "redis" in servers:
            r = Redis(port=servers["redis"].port)
            try:
                await r.execute_command("CLIENT", "KILL", "TYPE", "pubsub")
            finally:
                await r.aclose()
    elif fault == "proxy_delay":
        for p in proxies:
            p.set_delay(0.15)
        await asyncio.sleep(1.5)
        for p in proxies:
            p.reset()
    else:
        raise ValueError(fault)


@contextmanager
def _workers(argvs: list[list[str]]) -> Iterator[list[subprocess.Popen[str]]]:
    procs = [subprocess.Popen(a, stdin=subprocess.PIPE, stdout=subprocess.PIPE, text=True) for a in argvs]
    try:
        yield procs
    finally:
        for p in procs:
            if p.poll() is None:
                p.kill()
                p.wait(5)


async def run_history(
    setups: list[SetupSpec], store_url: str, *, seconds: float, faults: tuple[str, ...] = (), procs: int = 3,
    clients: int = 4, keys: int = 20, gap: float = 1.5, seed: int = 0, policy: dict[str, Any] | None = None,
) -> dict[str, History]:
    """Run every setup at once in ``procs`` processes × ``clients`` clients each for ``seconds``, injecting
    ``faults`` one after the other (``gap`` seconds apart, cycled until the time is up); the history of each
    setup with its final store state."""
    run = uuid.uuid4().hex[:8]
    names = {s.name: [f"{run}{s.slug}-{i}" for i in range(s.keys or keys)] for s in setups}
    kinds = {t for s in setups for t in s.tiers if t != "memory"}
    if any(s.naive for s in setups):
        kinds.add("redis")
    with tempfile.TemporaryDirectory(prefix="history-") as tmp:
        servers = {k: Server(k, tmp) for k in sorted(kinds)}
        proxies: list[FaultProxy] = []
        injected: list[tuple[str, int, int]] = []
        try:
            ports = {k: s.port for k, s in servers.items()}
            if "proxy_delay" in faults:
                for k, s in servers.items():
                    proxy = FaultProxy("127.0.0.1", s.port)
                    await proxy.start()
                    proxies.append(proxy)
                    ports[k] = proxy.port
            specs = [
                Setup(name=s.name, tiers=s.urls(ports, run), keys=names[s.name],
                      naive_redis=f"redis://127.0.0.1:{ports['redis']}/0" if s.naive else "")
                for s in setups
            ]
            argvs = []
            for p in range(procs):
                cfg = Config(store=store_url, setups=specs, seconds=seconds, clients=clients, proc=p, seed=seed,
                             policy=policy or {})
                argvs.append([sys.executable, str(HERE / "workload.py"), msgspec.json.encode(cfg).decode(),
                              os.path.join(tmp, f"ops-{p}.jsonl")])
            with _workers(argvs) as workers:
                for w in workers:
                    assert w.stdout is not None
                    line = await asyncio.to_thread(w.stdout.readline)
                    if line.strip() != "ready":
                        raise RuntimeError(f"workload process did not start: {line!r}")
                for w in workers:
                    assert w.stdin is not None
                    w.stdin.write("go\n")
                    w.stdin.flush()
                t0 = time.monotonic()
                i = 0
                while faults and time.monotonic() - t0 + gap + 2.0 < seconds:
                    await asyncio.sleep(gap)
                    fault = faults[i % len(faults)]
                    start = time.monotonic_ns()
                    await _inject(fault, servers, proxies)
                    injected.append((fault, start, time.monotonic_ns()))
                    i += 1
                codes = [await asyncio.to_thread(w.wait) for w in workers]
                if any(codes):
                    raise RuntimeError(f"workload processes exited with {codes}")
            ops: list[Op] = []
            dec = msgspec.json.Decoder(Op)
            for p in range(procs):
                text = await asyncio.to_thread(Path(tmp, f"ops-{p}.jsonl").read_bytes)
                ops += [dec.decode(line) for line in text.splitlines()]
        finally:
            for proxy in proxies:
                await proxy.aclose()
            for s in servers.values():
                s.kill()
    out = {}
    async with tierstore.connect(store_url, []) as db:
        repo = db.repository(HItem)
        for s in setups:
            items = await repo.get_many(names[s.name])
            final = {k: 0 if i is None else i.w for k, i in zip(names[s.name], items, strict=True)}
            out[s.name] = History(s, [op for op in ops if op.setup == s.name], final, injected, seconds)
    return out


def seconds_env(default: float) -> float:
    """``TIERSTORE_HISTORY_SECONDS`` overrides a run's length (``3600``: an hour)."""
    with suppress(ValueError, KeyError):
        return float(os.environ["TIERSTORE_HISTORY_SECONDS"])
    return default
