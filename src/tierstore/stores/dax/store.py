"""``DaxStore``: DynamoDB through a DAX cluster (``dax://host:8111`` or ``daxs://host``), on amazon-dax-client.

Only the data-plane transport differs from :class:`~tierstore.stores.dynamodb.DynamoStore`: a blocking DAX
client on a thread pool (:mod:`~tierstore.stores.dax.transport`). Everything above it — requests, the codec,
limits, retries, coalescing, versions, transactions — is ``DynamoStore``'s. That is also why the adapter can be
tested without a cluster: hand ``DaxStore(client=...)`` a boto3 DynamoDB client pointed at DynamoDB Local.

DAX has no control plane: tables are created and described through a regular (aioboto3) DynamoDB client for
the same region (``control_endpoint_url`` to override), or through ``control_client=``.

DAX's own caches: its item cache serves eventually consistent GetItem/BatchGetItem and is written through by
writes that go through DAX; its query cache serves Query/Scan by the full request and is *never* invalidated by
writes (TTL only). ``consistent=True`` reads pass through to DynamoDB. For a query cache that writes do
invalidate, see :class:`tierstore.policies.dax.DaxStylePolicy`.
"""

from __future__ import annotations

import asyncio
from concurrent.futures import ThreadPoolExecutor
from contextlib import AsyncExitStack
from typing import Any

from tierstore.errors import ConfigError
from tierstore.stores.dax.config import DaxStoreConfig
from tierstore.stores.dax.transport import ThreadTransport
from tierstore.stores.dynamodb.store import DynamoStore

__all__ = ["DaxStore"]


class DaxStore(DynamoStore):
    """DynamoStore whose data plane is a blocking DAX (or botocore) client on a thread pool.

    ``client``: a ready blocking client with botocore's DynamoDB data-plane methods — an ``AmazonDaxClient``, or
    in tests a boto3 DynamoDB client. ``control_client``: a blocking client for table management; by default a
    boto3-style ``client`` that has real table operations serves both, else an aioboto3 client is opened. Clients
    passed in are not closed by the store.
    """

    name = "dax"

    def __init__(
        self,
        config: DaxStoreConfig | None = None,
        *,
        client: Any = None,
        control_client: Any = None,
        threads: int | None = None,
    ) -> None:
        if config is None:
            config = DaxStoreConfig(endpoint="dax://injected-client")
        super().__init__(config.dynamo_config())
        self.dax_config = config
        self._client = client
        self._control_client = control_client
        self._threads = threads or config.threads

    def __repr__(self) -> str:
        return f"DaxStore(endpoint={self.dax_config.endpoint!r}, region={self.dax_config.region!r})"

    async def _open_transports(self, stack: AsyncExitStack) -> None:
        executor = ThreadPoolExecutor(max_workers=self._threads, thread_name_prefix="tierstore-dax")
        stack.callback(executor.shutdown, wait=False)
        loop = asyncio.get_running_loop()
        client = self._client
        if client is None:
            client = await loop.run_in_executor(executor, self._connect)
            stack.push_async_callback(loop.run_in_executor, executor, client.close)
        self._data = ThreadTransport(client, executor)
        control = self._control_client
        if control is None and self._client is not None and _has_table_operations(self._client):
            control = self._client
        if control is not None:
            self._control = ThreadTransport(control, executor)
            return
        await super()._open_transports(stack)  # an aioboto3 client for the control plane only

    def _connect(self) -> Any:
        from amazondax import AmazonDaxClient
        from botocore.config import Config

        cfg = self.dax_config
        try:
            return AmazonDaxClient(
                endpoint_url=cfg.endpoint, region_name=cfg.region,
                aws_access_key_id=cfg.aws_access_key_id, aws_secret_access_key=cfg.aws_secret_access_key,
                aws_session_token=cfg.aws_session_token,
                config=Config(connect_timeout=cfg.connect_timeout, read_timeout=cfg.timeout),
            )
        except Exception as exc:
            raise ConfigError(f"cannot connect to the DAX cluster {cfg.endpoint}: {exc}", backend=self.name) from exc


def _has_table_operations(client: Any) -> bool:
    """A botocore/boto3 client manages tables; an AmazonDaxClient raises NotImplementedError for them."""
    return type(client).__module__.split(".", 1)[0] not in ("amazondax",) and hasattr(client, "create_table")
