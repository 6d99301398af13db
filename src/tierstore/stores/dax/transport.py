"""``ThreadTransport``: a blocking botocore-shaped client (amazon-dax-client, or boto3) run on a thread pool.

amazon-dax-client is blocking, so every call runs on a small thread pool, off the event loop. Its client mirrors
botocore's DynamoDB client for the data-plane operations (GetItem, PutItem, UpdateItem, DeleteItem, BatchGetItem,
BatchWriteItem, Query, Scan, TransactWriteItems, TransactGetItems) and raises botocore ``ClientError``
subclasses, so its replies and errors go through the same translation as the aioboto3 client's
(:func:`~tierstore.stores.dynamodb.transport.fault_from_botocore`).
"""

from __future__ import annotations

import asyncio
import functools
from concurrent.futures import ThreadPoolExecutor
from typing import Any

from tierstore.stores.dynamodb.transport import DynamoFault, fault_from_botocore, method_name

__all__ = ["ThreadTransport"]


class ThreadTransport:
    """A blocking botocore-shaped client (amazon-dax-client, boto3) run on a thread pool."""

    def __init__(self, client: Any, executor: ThreadPoolExecutor) -> None:
        self.client = client
        self._executor = executor
        self._methods: dict[str, Any] = {}

    async def call(self, operation: str, params: dict[str, Any]) -> dict[str, Any]:
        method = self._methods.get(operation)
        if method is None:
            method = getattr(self.client, method_name(operation), None)
            if method is None:
                raise DynamoFault("UnsupportedOperation", f"{type(self.client).__name__} has no {operation}")
            self._methods[operation] = method
        loop = asyncio.get_running_loop()
        try:
            reply: dict[str, Any] = await loop.run_in_executor(self._executor, functools.partial(method, **params))
        except asyncio.CancelledError:
            raise
        except NotImplementedError as exc:  # amazon-dax-client: a table operation
            raise DynamoFault("UnsupportedOperation", str(exc), cause=exc) from None
        except Exception as exc:
            raise fault_from_botocore(exc) from None
        return reply
