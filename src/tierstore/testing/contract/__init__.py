"""Contract suites for the two backend seams: run them on your own store or cache tier.

Each suite is a pytest class of tests written once against the protocol. A backend's test module subclasses
it and supplies the backend as a fixture, the way SQLAlchemy dialects run its suite::

    import pytest
    from tierstore.testing.contract import CacheTierContract, StoreContract

    class TestMyStore(StoreContract):
        @pytest.fixture
        async def store(self):
            store = MyStore("…")
            await store.open()
            yield store
            await store.aclose()

    class TestMyTier(CacheTierContract):
        @pytest.fixture
        async def tier(self):  # an opened tier with an empty namespace
            tier = MyTier("…", prefix=unique_prefix())
            await tier.open()
            yield tier
            await tier.aclose()

``StoreContract`` also takes a ``dead_store`` fixture; ``CacheTierContract`` takes ``other_process_tier``,
``other_namespace_tier`` and ``dead_tier`` (see :mod:`tierstore.testing.contract.store` and
:mod:`tierstore.testing.contract.tier`); ``LocalTierContract`` adds the checks of an in-process
``LocalTier``. A check the backend is known to fail goes in the class's ``expected_failures``
(``{"test_name": "why"}``): a strict xfail, so the run fails once the backend passes and the entry can go. A
check that does not apply to the backend (a protocol it does not implement, an instance it cannot share)
goes in ``not_applicable`` (``{"test_name": "why"}``): it is not collected, so every collected check runs.

The suites need pytest and pytest-asyncio (the ``test`` extra: ``pip install 'tierstore[test]'``). Their
tests are coroutines marked ``asyncio``; with pytest-asyncio's default strict mode, declare your async
fixtures with ``@pytest_asyncio.fixture`` (``asyncio_mode = "auto"`` takes plain ``@pytest.fixture``).
Importing this package registers its modules for pytest's assertion rewriting, so a failed check shows the
values it compared.
"""

import pytest

pytest.register_assert_rewrite("tierstore.testing.contract.store", "tierstore.testing.contract.tier")

from tierstore.testing.contract.store import StoreContract  # noqa: E402
from tierstore.testing.contract.tier import CacheTierContract, LocalTierContract  # noqa: E402

__all__ = ["CacheTierContract", "LocalTierContract", "StoreContract"]
