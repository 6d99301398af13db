"""Whether a system can run here: its modules import, its servers accept a TCP connection, its probe passes.

A system that cannot run is skipped with the reason (printed, and kept in the JSON under ``skipped``), so a
machine with no servers still runs the embedded systems. Each endpoint gets one TCP connect per run with a
0.5 s timeout: a refused port answers at once, a filtered one costs the timeout once, not once per system.
"""

from __future__ import annotations

import asyncio
import contextlib
import importlib.util
from urllib.parse import urlsplit

from tierstore.bench.api import RunContext, SystemSpec
from tierstore.config import redact_url

__all__ = ["TCP_TIMEOUT", "Reachability", "endpoints", "one_line", "unavailable"]

TCP_TIMEOUT = 0.5


def endpoints(url: str) -> list[tuple[str, int]]:
    """``(host, port)`` of every node of a backend URL (comma-separated hosts, ``endpoint_url=`` for AWS)."""
    if "endpoint_url=" in url:
        url = url.split("endpoint_url=", 1)[1].split("&", 1)[0]
    netloc = urlsplit(url).netloc.rsplit("@", 1)[-1]
    out: list[tuple[str, int]] = []
    for hostport in netloc.split(","):
        host, sep, port = hostport.rpartition(":")
        if not sep or not port.isdigit():
            raise ValueError(f"no port in {redact_url(url)!r}")
        out.append((host.strip("[]") or "127.0.0.1", int(port)))
    return out


class Reachability:
    """TCP connect checks with a short timeout, each endpoint tried once per run."""

    def __init__(self, timeout: float = TCP_TIMEOUT) -> None:
        self.timeout = timeout
        self._seen: dict[tuple[str, int], str | None] = {}

    async def check(self, url: str) -> str | None:
        try:
            nodes = endpoints(url)
        except ValueError as exc:
            return str(exc)
        for host, port in nodes:
            if (host, port) not in self._seen:
                self._seen[(host, port)] = await self._connect(host, port)
            why = self._seen[(host, port)]
            if why is not None:
                return why
        return None

    async def _connect(self, host: str, port: int) -> str | None:
        try:
            _, writer = await asyncio.wait_for(asyncio.open_connection(host, port), self.timeout)
        except (TimeoutError, OSError) as exc:
            what = "timed out" if isinstance(exc, TimeoutError) else type(exc).__name__
            return f"{host}:{port} is unreachable ({what}); start it with scripts/services start"
        writer.close()
        with contextlib.suppress(OSError):
            await writer.wait_closed()
        return None


async def unavailable(spec: SystemSpec, ctx: RunContext, reach: Reachability) -> str | None:
    """Why ``spec`` cannot run here, or ``None``."""
    for module in spec.modules:
        try:
            found = importlib.util.find_spec(module) is not None
        except (ImportError, ValueError):
            found = False
        if not found:
            return f"module {module} is not installed"
    for url in spec.servers:
        why = await reach.check(url)
        if why is not None:
            return why
    if spec.probe is not None:
        try:
            return spec.probe(ctx)
        except Exception as exc:
            return one_line(exc)
    return None


def one_line(exc: BaseException) -> str:
    """The first line of an exception, with its type: a skip reason that fits on one line."""
    text = str(exc).strip().splitlines()[0] if str(exc).strip() else ""
    return f"{type(exc).__name__}: {text}"[:300] if text else type(exc).__name__
