"""Helpers for testing code that uses tierstore, and backends written for it.

* :class:`FaultProxy` (:mod:`tierstore.testing.proxy`): a TCP proxy that injects network faults (latency,
  a hung server, refused or reset connections) between a client and a real server. Standard library only.
* :mod:`tierstore.testing.servers`: real servers' URLs from the ``TIERSTORE_*`` variables (:func:`server_url`),
  :func:`with_params`, and :class:`ProxiedServer` (a fault proxy in front of one URL's server).
* :mod:`tierstore.testing.plugin`: the pytest plugin (fixtures ``tierstore_db``, ``tierstore_connect``,
  ``tierstore_*_url``, ``tierstore_fault_proxy``), loaded by pytest wherever tierstore is installed.
* :mod:`tierstore.testing.contract`: the ``Store`` and ``CacheTier`` contract suites a backend runs on itself.
  Imported on its own, since it needs pytest and pytest-asyncio (the ``test`` extra).
"""

from tierstore.testing.proxy import FaultProxy
from tierstore.testing.servers import SERVER_VARIABLES, ProxiedServer, proxied_url, server_url, with_params

__all__ = ["SERVER_VARIABLES", "FaultProxy", "ProxiedServer", "proxied_url", "server_url", "with_params"]
