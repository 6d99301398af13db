"""libpq's ``sslmode=`` in a PostgreSQL URL (as RDS, Heroku and psql write it) reaches asyncpg as ``ssl=``:
a store opened with it reads and writes on the real server."""

from __future__ import annotations

import pytest

import tierstore
from tierstore import Entity, PartitionKey

from _servers import PG_URL, require


class Probe(Entity, table="ops_sslmode_probe"):
    id: PartitionKey[str]
    n: int = 0


@pytest.mark.postgres
@pytest.mark.parametrize("mode", ["disable", "prefer"])
async def test_sslmode_url_connects(mode: str) -> None:
    require(PG_URL, "postgres")
    sep = "&" if "?" in PG_URL else "?"
    async with tierstore.connect(f"{PG_URL}{sep}sslmode={mode}", schema="create") as db:
        stored = await db.repository(Probe).put(Probe(mode, 1))
        assert await db.repository(Probe).get(mode, consistent=True) == stored
