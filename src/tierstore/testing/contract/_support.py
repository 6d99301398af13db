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
    """Marks every check an asyncio test, turns :attr:`expected_failures` into strict ``xfail`` marks, and
    leaves out the checks a backend declares :attr:`not_applicable`."""

    pytestmark: ClassVar[Any] = pytest.mark.asyncio  # pytest gathers class marks along the MRO: kept

    not_applicable: ClassVar[Mapping[str, str]] = {}
    """Test name -> why the check does not apply to this backend (e.g. ``ScatterGather`` on an unsharded store).

    Such checks are not collected at all (rather than skipped), so a backend's run shows no skips: every check
    it collects ran. Without a declaration, a check whose optional fixture or protocol is missing skips with
    the reason.
    """

    def __init_subclass__(cls, **kwargs: Any) -> None:
        super().__init_subclass__(**kwargs)
        for name in cls.not_applicable:
            if not callable(getattr(cls, name, None)) or not name.startswith("test_"):
                raise TypeError(f"{cls.__name__}.not_applicable names no check of the suite: {name!r}")
            setattr(cls, name, None)  # pytest collects no attribute that is None

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
