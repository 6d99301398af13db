"""The invalidation channel of a Redis tier: how other processes' in-process tiers learn of this one's writes.

The ``invalidate`` and ``set`` scripts ``PUBLISH`` on ``tierstore:inv:<prefix>`` in the same step that writes
the tombstones (no extra round trip). A message is the sender's origin token, then one cache key per line
(``*``: everything, after a clear); a process skips its own messages. :class:`~tierstore.tiers.coherence.
L1Coherence` consumes :meth:`InvalidationChannel.listen` through ``RedisTier.invalidations()``.

A subscription that is lost must reach the consumer (which flushes its in-process tier, since messages sent
meanwhile are lost): no silent reconnect, and a ``PING`` every ``ping`` seconds tells a hung connection from
a quiet channel.
"""

from __future__ import annotations

import asyncio
from collections.abc import AsyncIterator
from typing import TYPE_CHECKING, Any

from redis.asyncio.client import Redis
from redis.asyncio.retry import Retry
from redis.backoff import NoBackoff
from redis.exceptions import RedisError

from tierstore.errors import TierError
from tierstore.logs import get_logger

if TYPE_CHECKING:
    from tierstore.tiers.redis.cluster import Topology
    from tierstore.tiers.redis.config import RedisTierConfig

__all__ = ["InvalidationChannel", "channel_name"]

log = get_logger("tierstore.cache.redis")


def channel_name(prefix: str) -> str:
    return f"tierstore:inv:{prefix}"


class InvalidationChannel:
    """Subscriptions to one prefix's channel, ended together by :meth:`aclose`."""

    def __init__(self, config: RedisTierConfig, origin: str, tier: str) -> None:
        self.config = config
        self.name = channel_name(config.prefix)
        self.origin = origin
        self.closed = False
        self._tier = tier
        self._listeners: set[asyncio.Task[Any]] = set()

    async def listen(self, topology: Topology) -> AsyncIterator[list[str]]:
        """Cache keys invalidated by other processes, as published on this prefix's channel.

        Yields ``[]`` once subscribed, then one list per message (``["*"]``: everything). Returns or raises
        when the subscription is lost; the consumer flushes its in-process tier and subscribes again.
        """
        candidates = await topology.masters()
        node = next((n for n in candidates if n.guard.breaker.state == "closed"), candidates[0])
        cfg = self.config
        kwargs: dict[str, Any] = {
            "host": node.host, "port": node.port, "db": cfg.db, "username": cfg.username,
            "password": cfg.password, "socket_timeout": None, "socket_connect_timeout": cfg.connect_timeout,
            # No silent reconnect: messages sent while disconnected are lost, so a drop must reach the consumer
            # (which flushes L1) rather than be papered over by a retry that resubscribes.
            "retry": Retry(NoBackoff(), 0),
        }
        if cfg.tls:
            kwargs.update(ssl=True, ssl_cert_reqs="required" if cfg.tls_verify else "none",
                          ssl_check_hostname=cfg.tls_verify, ssl_ca_certs=cfg.tls_ca)
        if self.closed:
            return
        client = Redis(**kwargs)
        pubsub = client.pubsub(ignore_subscribe_messages=False)
        me = asyncio.current_task()
        if me is not None:
            self._listeners.add(me)
        try:
            async with asyncio.timeout(cfg.connect_timeout + cfg.timeout):
                await pubsub.subscribe(self.name)
                while True:
                    msg = await pubsub.get_message(timeout=cfg.timeout)
                    if msg is not None and msg["type"] == "subscribe":
                        break
            yield []
            waiting_pong = False
            origin = self.origin
            while not self.closed:
                msg = await pubsub.get_message(timeout=cfg.ping)
                if msg is None:
                    if waiting_pong:
                        raise TierError("invalidation channel: no answer to PING", backend=self._tier)
                    await pubsub.ping()
                    waiting_pong = True
                    continue
                waiting_pong = False
                if msg["type"] != "message":
                    continue
                data = msg["data"]
                text = data.decode() if isinstance(data, bytes) else str(data)
                sender, _, body = text.partition("\n")
                if sender == origin or not body:
                    continue
                yield body.split("\n")
        except RedisError as exc:
            raise TierError(f"invalidation channel lost: {exc}", backend=self._tier) from exc
        finally:
            if me is not None:
                self._listeners.discard(me)
            try:
                await pubsub.aclose()  # type: ignore[no-untyped-call]
                await client.aclose()
            except Exception as exc:
                log.debug("invalidation channel: close failed: %r", exc)

    async def aclose(self) -> None:
        """End every subscription (their consumers see the channel end)."""
        self.closed = True
        listeners = [t for t in self._listeners if not t.done() and t is not asyncio.current_task()]
        for task in listeners:
            task.cancel()
        if listeners:
            await asyncio.wait(listeners, timeout=1.0)
