"""Shared fixtures: the ``db`` fixture runs a test on every store × tier (see ``_servers.MATRIX``)."""

from __future__ import annotations

import os
from collections.abc import AsyncIterator

import pytest

import tierstore

from _servers import MATRIX, TIERS, open_db


@pytest.fixture(params=MATRIX)
async def db(request: pytest.FixtureRequest, tmp_path: os.PathLike[str]) -> AsyncIterator[tierstore.Database]:
    from _models import ALL

    store, tier_name = request.param
    database = await open_db(store, TIERS[tier_name], tmp_path, entities=ALL)
    try:
        yield database
    finally:
        await database.aclose()
