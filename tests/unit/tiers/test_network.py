"""What the network tiers share (tiers/network.py), on a fake node: invalidations a node cannot take are kept and
replayed before it is used again (a clear first when the backlog overflowed), breaker states land in the
tier's stats, and the URL parts both tiers read."""

from __future__ import annotations

import logging
from dataclasses import dataclass
from types import SimpleNamespace
from typing import ClassVar

import pytest

from tierstore import ConfigError
from tierstore.backends import TierStats
from tierstore.tiers import health
from tierstore.tiers.health import Breaker, NodeGuard
from tierstore.tiers.network import NodeTier, parse_hosts, valid_prefix


@dataclass(frozen=True)
class Settings:
    breaker_failures: int = 2
    breaker_cooldown: float = 60.0
    max_pending: int = 3


class FakeNode:
    def __init__(self, addr: str, guard: NodeGuard[Breaker]) -> None:
        self.addr = addr
        self.guard = guard
        self.down = False
        self.log: list[str] = []


class FakeTier(NodeTier[FakeNode]):
    _log: ClassVar[logging.Logger] = logging.getLogger("test.fake")
    _kind: ClassVar[str] = "fake"

    def __init__(self) -> None:
        self.stats = TierStats()
        self.node = FakeNode("n:1", self._guard("n:1", Settings()))

    def _failed(self, node: FakeNode, exc: BaseException) -> None:
        self.stats.errors += 1
        node.guard.breaker.failure()

    async def _clear_node(self, node: FakeNode) -> None:
        if node.down:
            raise ConnectionError("down")
        node.log.append("clear")

    async def _invalidate_on(self, node: FakeNode, keys: list[str], *, publish: bool) -> None:
        if node.down:
            raise ConnectionError("down")
        node.log.append(f"invalidate {','.join(keys)} publish={publish}")


async def test_undelivered_invalidations_are_replayed_before_the_node_is_used(monkeypatch: pytest.MonkeyPatch) -> None:
    now = [1000.0]
    monkeypatch.setattr(health, "time", SimpleNamespace(monotonic=lambda: now[0]))  # the breaker's clock only
    tier = FakeTier()
    node = tier.node
    assert tier.stats.breakers == {"n:1": "closed"}
    node.down = True
    await tier._invalidate_node(node, ["a"])
    await tier._invalidate_node(node, ["b"])  # two failures: the breaker opens
    assert node.guard.pending == {"a", "b"} and tier.stats.errors == 2
    assert tier.stats.breakers == {"n:1": "open"} and tier.stats.breaker_opens == 1
    await tier._invalidate_node(node, ["c"])  # refused without I/O (within the cooldown), kept
    assert node.guard.pending == {"a", "b", "c"} and tier.stats.errors == 2
    node.down = False
    now[0] += 60  # the breaker's cooldown: the next use probes the node
    assert await tier._usable(node)
    assert node.log == ["invalidate a,b,c publish=True"]  # published: other processes never heard of them
    assert tier.stats.invalidations_replayed == 3 and not node.guard.owes
    assert tier.stats.breakers == {"n:1": "closed"}


async def test_an_overflowing_backlog_clears_the_node() -> None:
    tier = FakeTier()
    node = tier.node
    node.guard.remember(["a", "b", "c", "d"])  # past max_pending=3
    assert await tier._usable(node)
    assert node.log == ["clear"] and tier.stats.namespace_clears == 1 and tier.stats.invalidations_replayed == 0


async def test_clear_nodes_reports_failures_and_owes_a_clear() -> None:
    tier = FakeTier()
    tier.node.down = True
    failed = await tier._clear_nodes([tier.node])
    assert len(failed) == 1 and tier.node.guard.overflow
    tier.node.down = False
    assert await tier._clear_nodes([tier.node]) == [] and not tier.node.guard.owes


def test_parse_hosts_and_valid_prefix() -> None:
    assert parse_hosts("h1:1,h2,[::1]:3", 9) == (("h1", 1), ("h2", 9), ("::1", 3))
    for bad in ("", "h:0", "h:x", ":5"):
        with pytest.raises(ConfigError):
            parse_hosts(bad, 9)
    assert valid_prefix("app.v2:x-y_z") == "app.v2:x-y_z"
    for bad in ("", "a b", "{tag}", "x" * 65):
        with pytest.raises(ConfigError):
            valid_prefix(bad)
