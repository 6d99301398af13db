"""The plugin API (tierstore.bench.api): the registry's rules, a system's floors, the driver's defaults."""

from __future__ import annotations

import pytest

from tierstore.bench.api import Driver, Registry, SystemSpec
from tierstore.bench.scenarios import Get


def test_registry_rejects_duplicates_and_bad_names() -> None:
    reg = Registry()
    spec = SystemSpec(name="raw:x", make=lambda ctx: Driver())
    reg.add_system(spec)
    with pytest.raises(ValueError, match="twice"):
        reg.add_system(spec)
    with pytest.raises(ValueError, match="tierstore:, raw: or peer:"):
        reg.add_system(SystemSpec(name="mine", make=lambda ctx: Driver()))
    reg.add_scenario(Get())
    with pytest.raises(ValueError, match="twice"):
        reg.add_scenario(Get())
