"""Helpers for testing code that uses tierstore, and backends written for it.

* :class:`FaultProxy` (:mod:`tierstore.testing.proxy`): a TCP proxy that injects network faults (latency,
  a hung server, refused or reset connections) between a client and a real server. Standard library only.
* :mod:`tierstore.testing.contract`: the ``Store`` and ``CacheTier`` contract suites a backend runs on itself.
  Imported on its own, since it needs pytest and pytest-asyncio (the ``test`` extra).
"""

from tierstore.testing.proxy import FaultProxy

__all__ = ["FaultProxy"]
