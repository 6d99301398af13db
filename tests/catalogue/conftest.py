"""One database per store × tier for the whole ``tests/catalogue`` directory (opened once per session, not per
case or module): the value suites write keys of their own, so they share tables without truncating them."""

from __future__ import annotations

import asyncio
from collections.abc import AsyncIterator

import pytest
import pytest_asyncio

import tierstore
from _values import ENTITIES

from _servers import MATRIX, TIERS, open_db

Env = tuple[tierstore.Database, str, str]


@pytest_asyncio.fixture(scope="session", loop_scope="session", params=MATRIX)
async def vdb(request: pytest.FixtureRequest, tmp_path_factory: pytest.TempPathFactory) -> AsyncIterator[Env]:
    """``(database, store name, tier name)`` for every store × tier."""
    store, tier_name = request.param
    db = await open_db(store, TIERS[tier_name], tmp_path_factory.mktemp(f"values-{store}-{tier_name}"))
    for e in ENTITIES:
        await db.create_tables(e)
    try:
        yield db, store, tier_name
    finally:
        await db.aclose()


@pytest_asyncio.fixture(scope="session", loop_scope="session")
async def vloop() -> asyncio.AbstractEventLoop:
    """The loop the ``vdb`` databases live on, for synchronous tests (hypothesis) that drive them."""
    return asyncio.get_running_loop()
