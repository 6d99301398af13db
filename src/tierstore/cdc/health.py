"""A tiny HTTP endpoint for an invalidator sidecar: ``GET /health`` (JSON; 200 when ok or degraded, 503 when
down) and ``GET /metrics`` (Prometheus text). asyncio streams only — a web framework for two read-only
routes would be a heavier dependency than the routes themselves."""

from __future__ import annotations

import asyncio
import json
from typing import Any

from tierstore.cdc.base import Invalidator

__all__ = ["HealthServer", "prometheus"]


def prometheus(health: dict[str, Any]) -> str:
    """The invalidator's health as Prometheus text (gauges and counters prefixed ``tierstore_invalidator_``)."""
    lines: list[str] = []

    def metric(name: str, value: Any, kind: str = "gauge", help_text: str = "") -> None:
        if value is None:
            return
        full = f"tierstore_invalidator_{name}"
        if help_text:
            lines.append(f"# HELP {full} {help_text}")
        lines.append(f"# TYPE {full} {kind}")
        lines.append(f"{full} {float(value)}")

    metric("up", 1 if health["status"] != "down" else 0, help_text="1 unless the loop is down")
    metric("degraded", 1 if health["status"] == "degraded" else 0)
    for name in ("changes", "keys_invalidated", "ignored", "batches", "checkpoints", "gaps", "clears", "errors",
                 "delivery_retries", "restarts"):
        metric(f"{name}_total", health[name], "counter")
    metric("undelivered", health["undelivered"], help_text="invalidations waiting for a tier")
    metric("last_read_age_seconds", health["last_read_age"])
    lag = health["lag_seconds"]
    metric("lag_p50_seconds", lag["p50"], help_text="commit -> invalidated, last 4096 changes")
    metric("lag_p99_seconds", lag["p99"])
    metric("lag_max_seconds", lag["max"])
    for key, value in (health.get("backlog") or {}).items():
        if isinstance(value, int | float) and not isinstance(value, bool):
            metric(f"backlog_{key}", value)
    return "\n".join(lines) + "\n"


class HealthServer:
    """Serves one invalidator's health on ``host:port`` (loopback by default)."""

    def __init__(self, invalidator: Invalidator, port: int, host: str = "127.0.0.1") -> None:
        self.invalidator = invalidator
        self.host = host
        self.port = port
        self._server: asyncio.Server | None = None

    async def start(self) -> HealthServer:
        self._server = await asyncio.start_server(self._serve, self.host, self.port)
        sockets = self._server.sockets
        if sockets:
            self.port = sockets[0].getsockname()[1]
        return self

    async def _serve(self, reader: asyncio.StreamReader, writer: asyncio.StreamWriter) -> None:
        try:
            async with asyncio.timeout(5):
                request = await reader.readline()
                while (await reader.readline()) not in (b"\r\n", b"\n", b""):
                    pass
            parts = request.decode("latin-1").split()
            path = parts[1] if len(parts) >= 2 else "/"
            health = self.invalidator.health()
            if path.startswith("/metrics"):
                status, ctype, body = 200, "text/plain; version=0.0.4", prometheus(health).encode()
            elif path.startswith("/health") or path == "/":
                status = 503 if health["status"] == "down" else 200
                ctype, body = "application/json", json.dumps(health, default=str).encode()
            else:
                status, ctype, body = 404, "text/plain", b"not found\n"
            reason = {200: "OK", 404: "Not Found", 503: "Service Unavailable"}[status]
            writer.write(
                f"HTTP/1.1 {status} {reason}\r\nContent-Type: {ctype}\r\nContent-Length: {len(body)}\r\n"
                "Connection: close\r\n\r\n".encode() + body
            )
            await writer.drain()
        except (TimeoutError, ConnectionError):
            pass
        finally:
            writer.close()

    async def aclose(self) -> None:
        if self._server is not None:
            self._server.close()
            await self._server.wait_closed()
            self._server = None
