"""The registry of every built-in scenario and system (what ``tierstore bench`` runs by default).

Kept apart from :mod:`tierstore.bench.api` so the plugin API imports no scenario or system of its own: the
built-in rows depend on the API, never the other way round.
"""

from __future__ import annotations

import os
from collections.abc import Mapping

from tierstore.bench.api import Registry
from tierstore.bench.scenarios import builtin_scenarios
from tierstore.bench.systems import builtin_systems

__all__ = ["default_registry"]


def default_registry(env: Mapping[str, str] | None = None) -> Registry:
    """Every built-in scenario and system; server URLs from ``env`` (default ``os.environ``)."""
    reg = Registry()
    for sc in builtin_scenarios():
        reg.add_scenario(sc)
    for spec in builtin_systems(os.environ if env is None else env):
        reg.add_system(spec)
    return reg
