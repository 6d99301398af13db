"""``peer:aiodynamo``: DynamoDB reads through aiodynamo, the asyncio DynamoDB client that talks the HTTP API
itself (no botocore), on an aiohttp session — the HTTP adapter aiodynamo ships for aiohttp.

The table (``tsbench_aiodynamo_<run>``) is created and loaded with the aioboto3 helpers of the ``raw:aioboto3``
floor (loading is not timed) and deleted afterwards. Reads are aiodynamo's own: ``get_item`` and
``query_single_page``, with the returned plain values converted to ``BenchItem`` by ``msgspec.convert``.
Numbers come back as ``int`` when integral, else ``float``.
"""

from __future__ import annotations

import contextlib
import os
from typing import Any

import msgspec

from tierstore.bench.api import CONCURRENT, GET, QUERY, GetFn, PageFn, differences
from tierstore.bench.data import BenchItem, Dataset
from tierstore.bench.floors.dynamodb import Aioboto3Driver

__all__ = ["AiodynamoDriver"]


def _number(text: str) -> int | float:
    try:
        return int(text)
    except ValueError:
        return float(text)


class AiodynamoDriver(Aioboto3Driver):
    caps = frozenset({GET, QUERY, CONCURRENT})

    def __init__(self, url: str, run_id: str) -> None:
        super().__init__(url, run_id)
        self.table = f"tsbench_aiodynamo_{run_id}"
        self._session: Any = None
        self._table: Any = None

    async def open(self, data: Dataset) -> None:
        import aiohttp
        from aiodynamo.client import Client
        from aiodynamo.credentials import Credentials, Key, StaticCredentials
        from aiodynamo.http.aiohttp import AIOHTTP
        from yarl import URL

        await super().open(data)
        self._session = aiohttp.ClientSession()
        credentials: Credentials = Credentials.auto()
        if self.endpoint_url and "AWS_ACCESS_KEY_ID" not in os.environ:
            credentials = StaticCredentials(Key("local", "local"))  # DynamoDB Local accepts any
        client = Client(
            AIOHTTP(self._session), credentials, self.region,
            endpoint=URL(self.endpoint_url) if self.endpoint_url else None, numeric_type=_number,
        )
        self._table = client.table(self.table)

    async def verify(self, data: Dataset) -> str | None:
        """The ``get_many_100`` keys read back one by one through aiodynamo equal the data set's items."""
        get = self.getter()
        got = [await get(pk, sk) for pk, sk in data.many]
        return differences(data, data.many, got)

    async def aclose(self) -> None:
        if self._session is not None:
            with contextlib.suppress(Exception):
                await self._session.close()
        await super().aclose()

    def getter(self) -> GetFn:
        from aiodynamo.errors import ItemNotFound

        get_item, convert = self._table.get_item, msgspec.convert

        async def get(pk: str, sk: str) -> BenchItem | None:
            self.trips += 1
            try:
                raw = await get_item({"pk": pk, "sk": sk})
            except ItemNotFound:
                return None
            return convert(raw, BenchItem)

        return get

    def pager(self) -> PageFn:
        from aiodynamo.expressions import HashKey

        query, convert = self._table.query_single_page, msgspec.convert

        async def page(pk: str, limit: int) -> list[BenchItem]:
            self.trips += 1
            result = await query(HashKey("pk", pk), limit=limit)
            return [convert(raw, BenchItem) for raw in result.items]

        return page
