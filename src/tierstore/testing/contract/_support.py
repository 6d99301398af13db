"""What both contract suites share: optional fixtures and expected failures."""

from __future__ import annotations

from collections.abc import Mapping
from typing import Any, ClassVar

import pytest

__all__ = ["ContractBase", "optional_fixture"]


def optional_fixture(request: pytest.FixtureRequest, name: str, why: str) -> Any:
    """The value of fixture ``name`` if the backend's test module defines one (in the class, the module or a
    conftest), else skip the check, saying what the fixture would enable.

    Looked up from a synchronous fixture, before the test's event loop runs, so ``name`` may be async.
    """
    try:
        return request.getfixturevalue(name)
    except pytest.FixtureLookupError:
        pytest.skip(f"no `{name}` fixture: {why}")


class ContractBase:
    """Marks every check an asyncio test, and turns :attr:`expected_failures` into strict ``xfail`` marks."""

    pytestmark: ClassVar[Any] = pytest.mark.asyncio  # pytest gathers class marks along the MRO: kept

    expected_failures: ClassVar[Mapping[str, str]] = {}
    """Test name (``test_x``, or ``test_x[param]`` for one parametrization) -> why this backend fails it.

    Strict: when the backend is fixed the test passes, the run fails, and the entry must go.
    """

    @pytest.fixture(autouse=True)
    def _contract_expected_failure(self, request: pytest.FixtureRequest) -> None:
        node = request.node
        reason = self.expected_failures.get(node.name) or self.expected_failures.get(
            getattr(node, "originalname", node.name)
        )
        if reason:
            node.add_marker(pytest.mark.xfail(reason=reason, strict=True))
