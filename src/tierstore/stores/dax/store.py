"""``DaxStore``: DynamoDB through a DAX cluster (``dax://host:8111`` or ``daxs://host``), on amazon-dax-client.

amazon-dax-client is blocking, so every call runs on a small thread pool (``ThreadTransport``), off the event
loop. Its client mirrors botocore's DynamoDB client for the data-plane operations (GetItem, PutItem,
UpdateItem, DeleteItem, BatchGetItem, BatchWriteItem, Query, Scan, TransactWriteItems, TransactGetItems) and
raises botocore ``ClientError`` subclasses, so everything above the transport — requests, the codec, limits,
retries, coalescing, versions, transactions — is :class:`~tierstore.stores.dynamodb.DynamoStore`'s. That is also
why the adapter can be tested without a cluster: hand ``DaxStore(client=...)`` a boto3 DynamoDB client pointed at
DynamoDB Local.

DAX has no control plane: tables are created and described through a regular (aioboto3) DynamoDB client for
the same region (``control_endpoint_url`` to override), or through ``control_client=``.

DAX's own caches: its item cache serves eventually consistent GetItem/BatchGetItem and is written through by
writes that go through DAX; its query cache serves Query/Scan by the full request and is *never* invalidated by
writes (TTL only). ``consistent=True`` reads pass through to DynamoDB. For a query cache that writes do
invalidate, see :class:`tierstore.policies.dax.DaxStylePolicy`.
"""

from __future__ import annotations

import asyncio
import functools
from concurrent.futures import ThreadPoolExecutor
from contextlib import AsyncExitStack
from dataclasses import dataclass, field
from typing import Any, Literal
from urllib.parse import unquote, urlsplit

from tierstore.errors import ConfigError
from tierstore.retry import Backoff
from tierstore.stores.dynamodb import DynamoStore, DynamoStoreConfig
from tierstore.stores.dynamodb.transport import DynamoFault, fault_from_botocore, method_name

__all__ = ["DaxStore", "DaxStoreConfig", "ThreadTransport"]


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


@dataclass(frozen=True, slots=True, kw_only=True)
class DaxStoreConfig:
    """``dax://cluster.abc123.dax-clusters.us-east-1.amazonaws.com:8111?region=us-east-1&table_prefix=…``.

    ``daxs://`` for clusters with encryption in transit. Other parameters as for ``dynamodb://`` (``billing``,
    ``read_capacity``, ``write_capacity``, ``consistent``, ``coalesce``, ``timeout``, ``connect_timeout``,
    ``attempts``, ``profile``, ``schema_timeout``), plus ``threads`` (the thread pool, default 8) and
    ``control_endpoint_url`` (the DynamoDB endpoint used for table management).
    """

    endpoint: str
    region: str | None = None
    table_prefix: str = ""
    billing: Literal["on_demand", "provisioned"] = "on_demand"
    read_capacity: int = 5
    write_capacity: int = 5
    consistent: bool = False
    coalesce: bool = True
    threads: int = 8
    connect_timeout: float = 2.0
    timeout: float = 10.0
    backoff: Backoff = field(default_factory=Backoff)
    schema_timeout: float = 300.0
    control_endpoint_url: str | None = None
    profile: str | None = None
    aws_access_key_id: str | None = None
    aws_secret_access_key: str | None = field(default=None, repr=False)
    aws_session_token: str | None = field(default=None, repr=False)

    def __post_init__(self) -> None:
        scheme = self.endpoint.split("://", 1)[0].lower() if "://" in self.endpoint else ""
        if scheme not in ("dax", "daxs"):
            raise ConfigError(f"a DAX endpoint starts with dax:// or daxs://, got {self.endpoint!r}")
        if self.threads < 1:
            raise ConfigError("threads must be >= 1")

    @classmethod
    def from_url(cls, url: str) -> DaxStoreConfig:
        from tierstore.config import parse_bool, parse_duration, parse_int, query_params

        parts = urlsplit(url)
        p = query_params(url, {
            "region", "table_prefix", "billing", "read_capacity", "write_capacity", "consistent", "coalesce",
            "threads", "connect_timeout", "timeout", "attempts", "profile", "schema_timeout",
            "control_endpoint_url",
        })
        host = parts.netloc.rsplit("@", 1)[-1]
        kw: dict[str, Any] = {"endpoint": f"{parts.scheme.lower()}://{host}"}
        if parts.username:
            kw["aws_access_key_id"] = unquote(parts.username)
            kw["aws_secret_access_key"] = unquote(parts.password or "")
        for name in ("region", "table_prefix", "profile", "control_endpoint_url"):
            if name in p:
                kw[name] = p[name]
        if "billing" in p:
            billing = p["billing"].lower()
            kw["billing"] = "on_demand" if billing in ("on_demand", "pay_per_request") else billing
        for name in ("read_capacity", "write_capacity", "threads"):
            if name in p:
                kw[name] = parse_int(p[name], name)
        for name in ("consistent", "coalesce"):
            if name in p:
                kw[name] = parse_bool(p[name], name)
        for name in ("connect_timeout", "timeout", "schema_timeout"):
            if name in p:
                kw[name] = parse_duration(p[name], name)
        if "attempts" in p:
            kw["backoff"] = Backoff(attempts=parse_int(p["attempts"], "attempts"))
        if "region" not in kw:
            # dax://name.abc123.dax-clusters.REGION.amazonaws.com
            labels = host.split(":")[0].split(".")
            if "dax-clusters" in labels and labels.index("dax-clusters") + 1 < len(labels):
                kw["region"] = labels[labels.index("dax-clusters") + 1]
        return cls(**kw)

    def dynamo_config(self) -> DynamoStoreConfig:
        """The config of the DynamoDB side (control plane, limits, retries)."""
        return DynamoStoreConfig(
            region=self.region, endpoint_url=self.control_endpoint_url, table_prefix=self.table_prefix,
            billing=self.billing, read_capacity=self.read_capacity, write_capacity=self.write_capacity,
            consistent=self.consistent, fast_path=False, coalesce=self.coalesce,
            connect_timeout=self.connect_timeout, timeout=self.timeout, backoff=self.backoff,
            schema_timeout=self.schema_timeout, profile=self.profile, aws_access_key_id=self.aws_access_key_id,
            aws_secret_access_key=self.aws_secret_access_key, aws_session_token=self.aws_session_token,
        )

    def build(self) -> DaxStore:
        return DaxStore(self)


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
