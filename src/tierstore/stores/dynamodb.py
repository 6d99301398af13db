"""``DynamoStore``: the DynamoDB store of record, on aioboto3 (and, through :mod:`tierstore.stores.dax`, on DAX).

How it talks to DynamoDB. ``open()`` creates one long-lived aioboto3 client (entered on an ``AsyncExitStack``,
closed by ``aclose()``); it resolves the region, the endpoint and the credential chain and serves the control
plane (CreateTable, DescribeTable, UpdateTable, UpdateTimeToLive). The data plane goes through a *transport* — one
``call(operation, params)`` seam with three implementations:

* ``WireTransport`` (the default, ``fast_path=True``): the DynamoDB JSON protocol spoken directly — the request
  encoded by msgspec, signed with SigV4 (the signing key derived once per day and credentials; the credentials
  come from the client's own, refreshable, credential provider), POSTed on one aiohttp session, the response
  CRC32-checked and decoded by msgspec. botocore spends ~0.5-1.1 ms of CPU per call here in parameter
  validation, endpoint-rule resolution, user-agent building, event hooks, header objects and model-driven
  (de)serialisation; none of that is needed when the request is built from a schema and checked against the
  limits first. What is given up, deliberately: botocore's event hooks (this store owns its client; nobody
  registers any), its retries (this store retries itself, below), and per-operation endpoint rules (the
  client's resolved regional endpoint is used for every call).
* ``BotocoreTransport`` (``fast_path=False``): the aioboto3 client itself.
* ``ThreadTransport`` (:mod:`~tierstore.stores.dax`): a blocking client (amazon-dax-client, or a boto3 client in
  tests) run on a thread pool.

Retries: throttling (ProvisionedThroughputExceeded, ThrottlingException, RequestLimitExceeded), requests that
never left (connection refused) and, for idempotent requests only, 5xx replies and lost connections, are retried
with capped full-jitter backoff (:mod:`tierstore.retry`); botocore's own retries are switched off so the two never
multiply. Exhausted throttling raises ``Throttled``; ``UnprocessedKeys``/``UnprocessedItems`` are retried under
the same backoff and end in ``PartialBatchError`` naming the keys or items that remain.

Versions. ``put`` of an entity with a ``Version`` field must store *stored version + 1* and return it:

* with ``expect_version=e`` or ``if_not_exists`` the new version is known (e + 1, or 1): a conditional
  ``PutItem`` (whole-item replace, no reply body);
* unconditionally, the stored version is unknown: ``UpdateItem`` ``SET`` of every attribute, ``ADD`` of 1 to
  the version and ``REMOVE`` of attributes the item no longer has, ``ReturnValues=UPDATED_NEW`` — one atomic
  round trip, no read (a read-then-conditional-put would cost two and could lose races);
* ``put_many`` of versioned entities uses that ``UpdateItem`` per item (concurrently), since ``BatchWriteItem``
  can neither add nor condition: reading versions first and batch-writing would race and could give two
  different values the same version — fatal for write-through caches ordered by version. Unversioned entities
  use ``BatchWriteItem`` in chunks of 25;
* in ``transact``, an unconditional versioned put is *pinned*: its stored version is read (consistently) and
  the write is conditioned on it; if another writer moved it in between, the transaction is re-read and retried
  with a fresh ``ClientRequestToken`` (retries of one commit reuse the token, so a commit whose reply was lost
  applies once).

Coalescing. Concurrent ``get`` calls of one table in the same event-loop tick are sent as one ``BatchGetItem``
(DataLoader style): the first caller yields once (``sleep(0)``), everyone who asks meanwhile joins, and the
first caller sends the batch — or a plain ``GetItem`` when it is alone.
"""

from __future__ import annotations

import asyncio
import contextlib
import hashlib
import hmac
import ipaddress
import logging
import os
import re
import time
import uuid
import zlib
from collections.abc import Sequence
from contextlib import AsyncExitStack
from dataclasses import dataclass, field
from typing import Any, Literal, Protocol, TypeVar
from urllib.parse import unquote, urlsplit

import msgspec

from tierstore.errors import (
    ConditionFailed,
    ConfigError,
    PartialBatchError,
    StoreError,
    Throttled,
    TierstoreError,
    TransactionCanceled,
    Unsupported,
    ValidationError,
)
from tierstore.model.schema import Key, Schema, schema_of
from tierstore.query import Page, Query, decode_cursor, encode_cursor
from tierstore.retry import Backoff
from tierstore.stats import StoreStats
from tierstore.stores import dynamo_limits as limits
from tierstore.stores.base import Delete, Put, WriteOp
from tierstore.stores.dynamo_codec import AV, DynamoCodec, codec_for, key_identity

__all__ = ["BotocoreTransport", "DynamoFault", "DynamoStore", "DynamoStoreConfig", "Transport", "WireTransport"]

log = logging.getLogger("tierstore.dynamodb")
T = TypeVar("T")

_THROTTLE_CODES = frozenset({
    "ProvisionedThroughputExceededException",
    "ThrottlingException",
    "RequestLimitExceeded",
    "TransactionInProgressException",  # the same token is still being applied: ask again later
    "LimitExceededException",  # control plane: too many table operations at once
})
_TRANSIENT_CODES = frozenset({
    "InternalServerError", "InternalFailure", "ServiceUnavailable", "ServiceUnavailableException",
    "ConnectionLost", "CRC32CheckFailed",
})
_CANCEL_CONTENTION = frozenset({
    "TransactionConflict", "ThrottlingError", "ProvisionedThroughputExceeded", "RequestLimitExceeded",
})
_TABLE_NAME = re.compile(r"[A-Za-z0-9_.\-]{3,255}\Z")


# -- the transport seam -----------------------------------------------------------------------------------


class DynamoFault(Exception):
    """A DynamoDB error reply or a transport failure, as transports report it to the store.

    Never leaves this package: the store turns it into a tierstore error. ``sent=False`` means the request
    surely did not reach DynamoDB (safe to retry anything).
    """

    def __init__(
        self, code: str, message: str = "", *, reasons: Sequence[Any] | None = None, sent: bool = True,
        status: int | None = None, cause: BaseException | None = None,
    ) -> None:
        super().__init__(f"{code}: {message}" if message else code)
        self.code = code
        self.message = message
        self.reasons = list(reasons) if reasons is not None else None
        self.sent = sent
        self.status = status
        self.cause = cause


class Transport(Protocol):
    """Sends one data-plane operation (``"GetItem"``, ``"Query"``…) with botocore-shaped params.

    Returns the parsed reply; raises only :class:`DynamoFault`. Binary values may come back as ``bytes`` or as
    base64 text; the codec accepts both.
    """

    async def call(self, operation: str, params: dict[str, Any]) -> dict[str, Any]: ...


def _snake(operation: str) -> str:
    return re.sub(r"(?<!^)(?=[A-Z])", "_", operation).lower()


def fault_from_botocore(exc: BaseException) -> DynamoFault:
    """Translate an exception of botocore, aiobotocore or amazon-dax-client."""
    from botocore import exceptions as bx

    if isinstance(exc, bx.ClientError):
        response: dict[str, Any] = getattr(exc, "response", None) or {}
        error = response.get("Error") or {}
        code = str(error.get("Code") or getattr(exc, "code", None) or "Unknown")  # DAX sets .code only, at times
        reasons = response.get("CancellationReasons") or getattr(exc, "cancellation_reasons", None)
        status = (response.get("ResponseMetadata") or {}).get("HTTPStatusCode")
        if code == "ConnectionException":  # amazon-dax-client: the cluster connection broke
            return DynamoFault("ConnectionLost", str(error.get("Message", "")), cause=exc)
        return DynamoFault(code, str(error.get("Message", "")), reasons=reasons, status=status, cause=exc)
    if isinstance(exc, bx.EndpointConnectionError | bx.ConnectTimeoutError):
        return DynamoFault("ConnectionError", str(exc), sent=False, cause=exc)
    if isinstance(exc, bx.NoCredentialsError | bx.PartialCredentialsError | bx.CredentialRetrievalError):
        return DynamoFault("NoCredentials", str(exc), cause=exc)
    if isinstance(exc, bx.ParamValidationError):
        return DynamoFault("ValidationException", str(exc), cause=exc)
    if isinstance(exc, ConnectionRefusedError):
        return DynamoFault("ConnectionError", str(exc), sent=False, cause=exc)
    return DynamoFault("ConnectionLost", f"{type(exc).__name__}: {exc}", cause=exc)


class BotocoreTransport:
    """The aioboto3 (aiobotocore) client as a transport."""

    def __init__(self, client: Any) -> None:
        self.client = client
        self._methods: dict[str, Any] = {}

    async def call(self, operation: str, params: dict[str, Any]) -> dict[str, Any]:
        method = self._methods.get(operation)
        if method is None:
            method = self._methods[operation] = getattr(self.client, _snake(operation))
        try:
            reply: dict[str, Any] = await method(**params)
        except asyncio.CancelledError:
            raise
        except Exception as exc:
            raise fault_from_botocore(exc) from None
        return reply


def _signing_key(secret: str, day: str, region: str) -> bytes:
    key = hmac.digest(("AWS4" + secret).encode(), day.encode(), "sha256")
    for part in (region, "dynamodb", "aws4_request"):
        key = hmac.digest(key, part.encode(), "sha256")
    return key


def sigv4_headers(
    *, access_key: str, secret_key: str, token: str | None, region: str, host: str, target: str,
    body: bytes, amz_date: str, key_cache: dict[tuple[str, str, str], bytes] | None = None,
) -> dict[str, str]:
    """The headers of a SigV4-signed DynamoDB JSON request (``POST /``)."""
    day = amz_date[:8]
    cache_key = (secret_key, day, region)
    key = key_cache.get(cache_key) if key_cache is not None else None
    if key is None:
        key = _signing_key(secret_key, day, region)
        if key_cache is not None:
            key_cache.clear()
            key_cache[cache_key] = key
    scope = f"{day}/{region}/dynamodb/aws4_request"
    if token:
        signed = "content-type;host;x-amz-date;x-amz-security-token;x-amz-target"
        canonical_headers = (
            f"content-type:application/x-amz-json-1.0\nhost:{host}\nx-amz-date:{amz_date}\n"
            f"x-amz-security-token:{token}\nx-amz-target:{target}\n"
        )
    else:
        signed = "content-type;host;x-amz-date;x-amz-target"
        canonical_headers = (
            f"content-type:application/x-amz-json-1.0\nhost:{host}\nx-amz-date:{amz_date}\nx-amz-target:{target}\n"
        )
    canonical = f"POST\n/\n\n{canonical_headers}\n{signed}\n{hashlib.sha256(body).hexdigest()}"
    to_sign = f"AWS4-HMAC-SHA256\n{amz_date}\n{scope}\n{hashlib.sha256(canonical.encode()).hexdigest()}"
    signature = hmac.new(key, to_sign.encode(), "sha256").hexdigest()
    headers = {
        "Host": host,
        "Content-Type": "application/x-amz-json-1.0",
        "X-Amz-Date": amz_date,
        "X-Amz-Target": target,
        "Accept-Encoding": "identity",
        "Authorization": f"AWS4-HMAC-SHA256 Credential={access_key}/{scope}, SignedHeaders={signed}, "
        f"Signature={signature}",
    }
    if token:
        headers["X-Amz-Security-Token"] = token
    return headers


class WireTransport:
    """DynamoDB's JSON protocol over one aiohttp session, signed with SigV4 (see the module docstring)."""

    def __init__(self, endpoint_url: str, region: str, credentials: Any, http: Any) -> None:
        import aiohttp

        parts = urlsplit(endpoint_url)
        host = parts.hostname or ""
        if ":" in host:
            host = f"[{host}]"
        default_port = 443 if parts.scheme == "https" else 80
        self.host = host if parts.port in (None, default_port) else f"{host}:{parts.port}"
        self.url = f"{parts.scheme}://{parts.netloc.rsplit('@', 1)[-1]}/"
        self.region = region
        self._credentials = credentials
        self._http = http
        self._encode = msgspec.json.Encoder().encode
        self._decode = msgspec.json.Decoder().decode
        self._keys: dict[tuple[str, str, str], bytes] = {}
        self._unsent: tuple[type[BaseException], ...] = (aiohttp.ClientConnectorError,)
        self._lost: tuple[type[BaseException], ...] = (aiohttp.ClientError, asyncio.TimeoutError, OSError)

    async def call(self, operation: str, params: dict[str, Any]) -> dict[str, Any]:
        body = self._encode(params)
        creds = await self._credentials.get_frozen_credentials()
        headers = sigv4_headers(
            access_key=creds.access_key, secret_key=creds.secret_key, token=creds.token, region=self.region,
            host=self.host, target="DynamoDB_20120810." + operation, body=body,
            amz_date=time.strftime("%Y%m%dT%H%M%SZ", time.gmtime()), key_cache=self._keys,
        )
        try:
            async with self._http.post(self.url, data=body, headers=headers) as resp:
                data = await resp.read()
                status = resp.status
                crc = resp.headers.get("x-amz-crc32")
        except self._unsent as exc:
            raise DynamoFault("ConnectionError", str(exc), sent=False, cause=exc) from None
        except self._lost as exc:
            raise DynamoFault("ConnectionLost", f"{type(exc).__name__}: {exc}", cause=exc) from None
        if crc is not None and zlib.crc32(data) != int(crc):
            raise DynamoFault("CRC32CheckFailed", "the reply was damaged in transit", status=status)
        if status == 200:
            reply: dict[str, Any] = self._decode(data)
            return reply
        try:
            err = self._decode(data)
        except msgspec.DecodeError:
            err = {}
        if not isinstance(err, dict):
            err = {}
        code = str(err.get("__type") or f"HTTP{status}").rsplit("#", 1)[-1]
        if status >= 500 and code.startswith("HTTP"):
            code = "ServiceUnavailable"
        message = str(err.get("message") or err.get("Message") or "")
        raise DynamoFault(code, message, reasons=err.get("CancellationReasons"), status=status)


# -- configuration ----------------------------------------------------------------------------------------


def _is_loopback(url: str | None) -> bool:
    if not url:
        return False
    host = urlsplit(url).hostname or ""
    if host == "localhost":
        return True
    try:
        return ipaddress.ip_address(host).is_loopback
    except ValueError:
        return False


def _env_proxy(url: str) -> str | None:
    """The proxy the environment sets for ``url`` (HTTP(S)_PROXY, NO_PROXY), as botocore would use."""
    import urllib.request

    parts = urlsplit(url)
    proxies = urllib.request.getproxies_environment()
    proxy = proxies.get(parts.scheme)
    bypass = urllib.request.proxy_bypass_environment  # type: ignore[attr-defined]  # public, untyped
    if not proxy or bypass(parts.hostname or "", proxies):
        return None
    return proxy


@dataclass(frozen=True, slots=True, kw_only=True)
class DynamoStoreConfig:
    """``dynamodb://REGION?endpoint_url=…&table_prefix=…&billing=on_demand|provisioned&consistent=false``.

    Other parameters: ``read_capacity``/``write_capacity`` (provisioned billing), ``fast_path`` (the raw wire
    transport, default true), ``coalesce`` (batch concurrent gets, default true), ``max_connections``,
    ``connect_timeout``, ``timeout``, ``attempts``, ``backoff_base``, ``backoff_cap``, ``profile``,
    ``schema_timeout``. Credentials come from the AWS chain (environment, profile, instance role…), from
    ``dynamodb://KEY_ID:SECRET@REGION`` or from the keyword arguments; a loopback endpoint without any uses
    dummy ones (DynamoDB Local ignores them).
    """

    region: str | None = None
    endpoint_url: str | None = None
    table_prefix: str = ""
    billing: Literal["on_demand", "provisioned"] = "on_demand"
    read_capacity: int = 5
    write_capacity: int = 5
    consistent: bool = False
    fast_path: bool = True
    coalesce: bool = True
    max_connections: int = 64
    connect_timeout: float = 2.0
    timeout: float = 10.0
    backoff: Backoff = field(default_factory=Backoff)
    write_concurrency: int = 16
    schema_timeout: float = 300.0
    profile: str | None = None
    aws_access_key_id: str | None = None
    aws_secret_access_key: str | None = field(default=None, repr=False)
    aws_session_token: str | None = field(default=None, repr=False)

    def __post_init__(self) -> None:
        if self.billing not in ("on_demand", "provisioned"):
            raise ConfigError(f"billing must be on_demand or provisioned, got {self.billing!r}")
        if self.read_capacity < 1 or self.write_capacity < 1:
            raise ConfigError("read_capacity and write_capacity must be >= 1")
        if self.max_connections < 1 or self.write_concurrency < 1:
            raise ConfigError("max_connections and write_concurrency must be >= 1")
        if self.table_prefix and not re.fullmatch(r"[A-Za-z0-9_.\-]+", self.table_prefix):
            raise ConfigError(f"table_prefix {self.table_prefix!r} may hold only letters, digits, _ . -")

    @classmethod
    def from_url(cls, url: str) -> DynamoStoreConfig:
        from tierstore.config import parse_bool, parse_duration, parse_int, query_params, redact_url

        parts = urlsplit(url)
        if parts.scheme.lower() != "dynamodb":
            raise ConfigError(f"not a dynamodb:// URL: {redact_url(url)!r}")
        p = query_params(url, {
            "endpoint_url", "table_prefix", "billing", "read_capacity", "write_capacity", "consistent",
            "fast_path", "coalesce", "max_connections", "connect_timeout", "timeout", "attempts",
            "backoff_base", "backoff_cap", "profile", "schema_timeout", "write_concurrency",
        })
        kw: dict[str, Any] = {}
        region = parts.hostname
        if region:
            kw["region"] = region
        if parts.username:
            kw["aws_access_key_id"] = unquote(parts.username)
            kw["aws_secret_access_key"] = unquote(parts.password or "")
        for name in ("endpoint_url", "table_prefix", "profile"):
            if name in p:
                kw[name] = p[name]
        if "billing" in p:
            billing = p["billing"].lower()
            kw["billing"] = "on_demand" if billing in ("on_demand", "pay_per_request") else billing
        for name in ("read_capacity", "write_capacity", "max_connections", "write_concurrency"):
            if name in p:
                kw[name] = parse_int(p[name], name)
        for name in ("consistent", "fast_path", "coalesce"):
            if name in p:
                kw[name] = parse_bool(p[name], name)
        for name in ("connect_timeout", "timeout", "schema_timeout"):
            if name in p:
                kw[name] = parse_duration(p[name], name)
        if {"attempts", "backoff_base", "backoff_cap"} & set(p):
            default = Backoff()
            kw["backoff"] = Backoff(
                attempts=parse_int(p["attempts"], "attempts") if "attempts" in p else default.attempts,
                base=parse_duration(p["backoff_base"], "backoff_base") if "backoff_base" in p else default.base,
                cap=parse_duration(p["backoff_cap"], "backoff_cap") if "backoff_cap" in p else default.cap,
            )
        return cls(**kw)

    def build(self) -> DynamoStore:
        return DynamoStore(self)


# -- the store --------------------------------------------------------------------------------------------


class _Table:
    """Per-schema state of one store: the codec, the table name, open get batches, cached expressions."""

    __slots__ = ("batches", "codec", "name", "ready", "schema", "update_exprs")

    def __init__(self, schema: Schema[Any], name: str) -> None:
        self.schema = schema
        self.codec: DynamoCodec[Any] = codec_for(schema)
        self.name = name
        self.ready = False
        self.batches: list[dict[Key, list[asyncio.Future[Any]]] | None] = [None, None]
        self.update_exprs: dict[tuple[str, ...], tuple[str, dict[str, str], tuple[str, ...]]] = {}


class DynamoStore:
    """The DynamoDB store of record. See the module docstring for the design."""

    name = "dynamodb"
    supports_transactions = True

    def __init__(
        self,
        config: DynamoStoreConfig | None = None,
        *,
        transport: Transport | None = None,
        control: Transport | None = None,
    ) -> None:
        """``transport``/``control``: ready transports (tests, DAX); by default ``open()`` builds them."""
        self.config = config or DynamoStoreConfig()
        self.stats = StoreStats()
        self.backoff = self.config.backoff
        self.sleep: Any = asyncio.sleep  # tests replace it to observe backoff delays
        self._data: Transport | None = transport
        self._control: Transport | None = control or transport
        self._stack: AsyncExitStack | None = None
        self._tables: dict[Schema[Any], _Table] = {}
        self._opened = transport is not None
        self._closed = False
        self._consistent = self.config.consistent
        self._coalesce = self.config.coalesce
        self._tasks: set[asyncio.Task[Any]] = set()

    def __repr__(self) -> str:
        from tierstore.config import redact_url

        cfg = self.config
        where = redact_url(cfg.endpoint_url) if cfg.endpoint_url else "aws"
        return f"{type(self).__name__}(region={cfg.region!r}, endpoint={where!r}, table_prefix={cfg.table_prefix!r})"

    # -- lifecycle -----------------------------------------------------------------------------------------

    async def open(self) -> None:
        if self._closed:
            raise StoreError("this store was closed", backend=self.name)
        if self._opened:
            return
        stack = AsyncExitStack()
        try:
            await self._open_transports(stack)
        except BaseException:
            await stack.aclose()
            raise
        self._stack = stack
        self._opened = True

    async def _open_transports(self, stack: AsyncExitStack) -> None:
        import aioboto3
        from botocore import exceptions as bx
        from botocore.config import Config

        cfg = self.config
        region = cfg.region
        if region is None and _is_loopback(cfg.endpoint_url):
            region = "us-east-1"
        try:
            session = aioboto3.Session(
                region_name=region, profile_name=cfg.profile, aws_access_key_id=cfg.aws_access_key_id,
                aws_secret_access_key=cfg.aws_secret_access_key, aws_session_token=cfg.aws_session_token,
            )
            credentials = await session.get_credentials()
            if credentials is None:
                if not _is_loopback(cfg.endpoint_url):
                    raise ConfigError("no AWS credentials found (environment, profile or instance role)")
                session = aioboto3.Session(  # DynamoDB Local accepts any credentials
                    region_name=region, aws_access_key_id="local", aws_secret_access_key="local",  # noqa: S106
                )
                credentials = await session.get_credentials()
            botocore_config = Config(
                retries={"mode": "standard", "total_max_attempts": 1},  # this store retries, not botocore
                connect_timeout=cfg.connect_timeout,
                read_timeout=cfg.timeout,
                max_pool_connections=cfg.max_connections,
            )
            client = await stack.enter_async_context(
                session.client("dynamodb", endpoint_url=cfg.endpoint_url, config=botocore_config)
            )
        except (bx.BotoCoreError, ValueError) as exc:
            raise ConfigError(f"cannot create the DynamoDB client: {exc}", backend=self.name) from exc
        botocore_transport = BotocoreTransport(client)
        if self._control is None:
            self._control = botocore_transport
        if self._data is not None:
            return
        if not cfg.fast_path:
            self._data = botocore_transport
            return
        import aiohttp

        endpoint = client.meta.endpoint_url
        ssl_context: Any = True
        ca_bundle = os.environ.get("AWS_CA_BUNDLE")
        if ca_bundle:  # the CA bundle botocore would use
            import ssl

            ssl_context = ssl.create_default_context(cafile=ca_bundle)
        http = await stack.enter_async_context(
            aiohttp.ClientSession(
                connector=aiohttp.TCPConnector(limit=cfg.max_connections, ssl=ssl_context),
                timeout=aiohttp.ClientTimeout(total=None, connect=cfg.connect_timeout, sock_read=cfg.timeout),
                # HTTPS_PROXY/NO_PROXY are honoured as botocore does, but read once: aiohttp's trust_env
                # would look them (and ~/.netrc) up on a thread for every request.
                proxy=_env_proxy(endpoint),
                cookie_jar=aiohttp.DummyCookieJar(),
                auto_decompress=False,
                skip_auto_headers=("User-Agent",),
                headers={"User-Agent": "tierstore aiohttp"},
            )
        )
        self._data = WireTransport(endpoint, client.meta.region_name, credentials, http)

    async def aclose(self) -> None:
        if self._closed:
            return
        self._closed = True
        for task in list(self._tasks):
            task.cancel()
        stack, self._stack = self._stack, None
        if stack is not None:
            try:
                await stack.aclose()
            except Exception as exc:  # closing must not raise
                log.warning("closing the DynamoDB client failed: %r", exc)

    async def ping(self) -> dict[str, str | None]:
        """``ListTables`` (limit 1) on the control endpoint; ``{endpoint: None or reason}``. It needs only the
        ``dynamodb:ListTables`` permission and reads no item."""
        from tierstore.config import redact_url

        cfg = self.config
        where = redact_url(cfg.endpoint_url) if cfg.endpoint_url else f"dynamodb.{cfg.region or 'default'}"
        try:
            await self.open()
            await self._call("ListTables", {"Limit": 1}, idempotent=True, control=True)
        except Exception as exc:
            return {where: str(exc)}
        return {where: None}

    # -- plumbing ------------------------------------------------------------------------------------------

    def _table(self, schema: Schema[Any]) -> _Table:
        t = self._tables.get(schema)
        if t is None:
            name = self.config.table_prefix + schema.table
            if not _TABLE_NAME.match(name):
                raise ConfigError(
                    f"DynamoDB table name {name!r} must be 3-255 characters of [A-Za-z0-9_.-]; "
                    "lengthen it or set table_prefix", entity=schema.name, backend=self.name,
                )
            t = self._tables[schema] = _Table(schema, name)
        return t

    async def _call(
        self, op: str, params: dict[str, Any], *, idempotent: bool, entity: str | None = None, key: Any = None,
        control: bool = False, passthrough: frozenset[str] = frozenset(),
    ) -> dict[str, Any]:
        """One request, retried under the backoff policy; errors come out as tierstore errors (codes in
        ``passthrough`` as the :class:`DynamoFault` itself, for the caller to interpret)."""
        transport = self._control if control else self._data
        if transport is None:
            raise StoreError("the store is not open; call open() (connect() does)", backend=self.name)
        backoff = self.backoff
        retry = 0
        while True:
            self.stats.round_trips += 1
            try:
                return await transport.call(op, params)
            except DynamoFault as fault:
                code = fault.code
                if code in passthrough:
                    raise
                throttled = code in _THROTTLE_CODES
                again = (
                    throttled
                    or (code == "ConnectionError" and not fault.sent)
                    or (idempotent and (code in _TRANSIENT_CODES or (fault.status or 0) >= 500))
                )
                if again and retry + 1 < backoff.attempts:
                    self.stats.retries += 1
                    await self.sleep(backoff.delay(retry))
                    retry += 1
                    continue
                self.stats.errors += 1
                raise self._error(fault, op, throttled, retry + 1, entity, key) from (fault.cause or fault)

    def _error(
        self, fault: DynamoFault, op: str, throttled: bool, attempts: int, entity: str | None, key: Any
    ) -> TierstoreError:
        code, msg = fault.code, fault.message
        where = {"entity": entity, "key": key, "backend": self.name}
        if code == "ConditionalCheckFailedException":
            return ConditionFailed(f"the condition of {op} did not hold", **where)
        if throttled:
            return Throttled(f"{op} was throttled ({code}) {attempts} times; giving up", **where)
        if code == "ValidationException":
            return ValidationError(f"DynamoDB rejected {op}: {msg}", **where)
        if code == "UnsupportedOperation":
            return Unsupported(f"{op} is not available here: {msg}", **where)
        if code == "ResourceNotFoundException":
            return StoreError(f"{op}: table not found ({msg}); ensure_schema creates it", **where)
        if code in ("ConnectionError", "ConnectionLost"):
            return StoreError(f"{op}: cannot reach DynamoDB ({msg})", **where)
        return StoreError(f"{op} failed: {code}{': ' + msg if msg else ''}", **where)

    def _check_key(self, t: _Table, key: Key, av: dict[str, AV]) -> None:
        codec = t.codec
        limits.check_key_value(av[codec.partition.attr], sort=False, entity=t.schema.name, key=key)
        if codec.sort is not None:
            limits.check_key_value(av[codec.sort.attr], sort=True, entity=t.schema.name, key=key)

    def _key(self, t: _Table, key: Key) -> dict[str, AV]:
        av = t.codec.key(key)
        self._check_key(t, key, av)
        return av

    def _item(self, t: _Table, item: Any) -> tuple[Key, dict[str, AV], int]:
        """Encode and check an item before any I/O: key sizes, numbers, nesting, sets, item size."""
        schema = t.schema
        key = schema.key_of(item)
        av = t.codec.encode(item)
        self._check_key(t, key, av)
        size = limits.check_item(av, entity=schema.name, key=key)
        return key, av, size

    def _spawn(self, coro: Any) -> None:
        task = asyncio.get_running_loop().create_task(coro)
        self._tasks.add(task)
        task.add_done_callback(self._tasks.discard)

    # -- schema --------------------------------------------------------------------------------------------

    async def ensure_schema(self, schema: Schema[Any]) -> None:
        """Create the table and its indexes if missing (on-demand or provisioned), wait until ACTIVE, add GSIs
        declared since, and enable TTL on the entity's TTL field. Idempotent.

        Indexes are GSIs; an ``Index`` with a true ``local`` attribute (same partition key as the table, a sort
        key of its own) becomes an LSI, which DynamoDB creates only together with the table and which, unlike
        a GSI, serves strongly consistent queries.
        """
        t = self._table(schema)
        if t.ready:
            return
        codec = t.codec
        desc = await self._describe(t)
        if desc is None:
            with contextlib.suppress(DynamoFault):  # ResourceInUse: created meanwhile by someone else
                await self._call("CreateTable", self._create_params(t), idempotent=False, control=True,
                                 entity=schema.name, passthrough=frozenset({"ResourceInUseException"}))
            desc = await self._wait_active(t)
        else:
            key_schema = {k["AttributeName"]: k["KeyType"] for k in desc.get("KeySchema", ())}
            want = {codec.partition.attr: "HASH", **({codec.sort.attr: "RANGE"} if codec.sort else {})}
            if key_schema != want:
                raise ConfigError(
                    f"table {t.name} exists with key {key_schema}, but {schema.name} needs {want}",
                    entity=schema.name, backend=self.name,
                )
            if desc.get("TableStatus") != "ACTIVE":
                desc = await self._wait_active(t)
        have = {g["IndexName"] for g in desc.get("GlobalSecondaryIndexes") or ()}
        have_local = {g["IndexName"] for g in desc.get("LocalSecondaryIndexes") or ()}
        missing_local = sorted(codec.local_indexes - have_local)
        if missing_local:
            raise ConfigError(
                f"table {t.name} lacks the local indexes {missing_local}; DynamoDB creates local indexes only "
                "with the table", entity=schema.name, backend=self.name,
            )
        for ix_name in codec.indexes:
            if ix_name not in have and ix_name not in codec.local_indexes:
                await self._call("UpdateTable", {
                    "TableName": t.name,
                    "AttributeDefinitions": self._attribute_definitions(t),
                    "GlobalSecondaryIndexUpdates": [{"Create": self._gsi(t, ix_name)}],
                }, idempotent=False, control=True, entity=schema.name)
                await self._wait_active(t)
        if codec.ttl_attr is not None:
            await self._ensure_ttl(t)
        t.ready = True

    async def _describe(self, t: _Table) -> dict[str, Any] | None:
        try:
            reply = await self._call("DescribeTable", {"TableName": t.name}, idempotent=True, control=True,
                                     passthrough=frozenset({"ResourceNotFoundException"}))
        except DynamoFault:
            return None
        table: dict[str, Any] = reply["Table"]
        return table

    async def _wait_active(self, t: _Table) -> dict[str, Any]:
        deadline = time.monotonic() + self.config.schema_timeout
        pause = 0.02
        while True:
            desc = await self._describe(t)
            if desc is not None and desc.get("TableStatus") == "ACTIVE" and all(
                g.get("IndexStatus") == "ACTIVE" for g in desc.get("GlobalSecondaryIndexes") or ()
            ):
                return desc
            if time.monotonic() > deadline:
                raise StoreError(f"table {t.name} did not become ACTIVE in time", backend=self.name)
            await asyncio.sleep(pause)
            pause = min(pause * 2, 2.0)

    def _attribute_definitions(self, t: _Table) -> list[dict[str, str]]:
        return [{"AttributeName": a, "AttributeType": typ} for a, typ in t.codec.attribute_types.items()]

    def _throughput(self) -> dict[str, int]:
        return {"ReadCapacityUnits": self.config.read_capacity, "WriteCapacityUnits": self.config.write_capacity}

    def _gsi(self, t: _Table, ix_name: str) -> dict[str, Any]:
        p, s = t.codec.indexes[ix_name]
        gsi: dict[str, Any] = {
            "IndexName": ix_name,
            "KeySchema": [{"AttributeName": p.attr, "KeyType": "HASH"}]
            + ([{"AttributeName": s.attr, "KeyType": "RANGE"}] if s else []),
            "Projection": {"ProjectionType": "ALL"},
        }
        if self.config.billing == "provisioned":
            gsi["ProvisionedThroughput"] = self._throughput()
        return gsi

    def _lsi(self, t: _Table, ix_name: str) -> dict[str, Any]:
        p, s = t.codec.indexes[ix_name]
        assert s is not None
        return {
            "IndexName": ix_name,
            "KeySchema": [{"AttributeName": p.attr, "KeyType": "HASH"}, {"AttributeName": s.attr, "KeyType": "RANGE"}],
            "Projection": {"ProjectionType": "ALL"},
        }

    def _create_params(self, t: _Table) -> dict[str, Any]:
        codec = t.codec
        for attr in codec.attribute_types:
            limits.check_name(attr, entity=t.schema.name)
        params: dict[str, Any] = {
            "TableName": t.name,
            "KeySchema": [{"AttributeName": codec.partition.attr, "KeyType": "HASH"}]
            + ([{"AttributeName": codec.sort.attr, "KeyType": "RANGE"}] if codec.sort else []),
            "AttributeDefinitions": self._attribute_definitions(t),
        }
        globals_ = [ix for ix in codec.indexes if ix not in codec.local_indexes]
        if globals_:
            params["GlobalSecondaryIndexes"] = [self._gsi(t, ix) for ix in globals_]
        if codec.local_indexes:
            params["LocalSecondaryIndexes"] = [self._lsi(t, ix) for ix in sorted(codec.local_indexes)]
        if self.config.billing == "provisioned":
            params["BillingMode"] = "PROVISIONED"
            params["ProvisionedThroughput"] = self._throughput()
        else:
            params["BillingMode"] = "PAY_PER_REQUEST"
        return params

    async def _ensure_ttl(self, t: _Table) -> None:
        attr = t.codec.ttl_attr
        reply = await self._call("DescribeTimeToLive", {"TableName": t.name}, idempotent=True, control=True)
        desc = reply.get("TimeToLiveDescription") or {}
        status, current = desc.get("TimeToLiveStatus"), desc.get("AttributeName")
        if status in ("ENABLED", "ENABLING"):
            if current != attr:
                log.warning("table %s expires items by %r, not by %r; TTL left as it is", t.name, current, attr)
            return
        try:
            await self._call("UpdateTimeToLive", {
                "TableName": t.name, "TimeToLiveSpecification": {"Enabled": True, "AttributeName": attr},
            }, idempotent=False, control=True, passthrough=frozenset({"ValidationException"}))
        except DynamoFault as fault:  # "TimeToLive is already enabled" (a race) is fine; anything else is not
            if "already enabled" not in fault.message:
                raise StoreError(f"cannot enable TTL on {t.name}: {fault.message}", backend=self.name) from None

    async def truncate(self, schema: Schema[Any]) -> None:
        t = self._table(schema)
        names = {f"#k{i}": a for i, a in enumerate(t.codec.key_attrs)}
        params: dict[str, Any] = {
            "TableName": t.name, "ProjectionExpression": ", ".join(names), "ExpressionAttributeNames": names,
            "ConsistentRead": True,
        }
        while True:
            reply = await self._call("Scan", params, idempotent=True, entity=schema.name)
            keys = reply.get("Items") or []
            if keys:
                await self._batch_write(t, [{"DeleteRequest": {"Key": k}} for k in keys], keys)
            last = reply.get("LastEvaluatedKey")
            if not last:
                return
            params["ExclusiveStartKey"] = last

    async def scan(self, schema: Schema[T], *, after: Key | None = None, limit: int = 1000) -> list[T]:
        """Up to ``limit`` items of the table after the item with key ``after`` (resharding, exports).

        DynamoDB scans in its own hash order, not key order; resuming from the last key seen works the same.
        """
        t = self._table(schema)
        params: dict[str, Any] = {"TableName": t.name, "ConsistentRead": True}
        if after is not None:
            params["ExclusiveStartKey"] = self._key(t, after)
        out: list[T] = []
        while len(out) < limit:
            params["Limit"] = limit - len(out)
            reply = await self._call("Scan", params, idempotent=True, entity=schema.name)
            out += t.codec.decode_many(reply.get("Items") or [])
            last = reply.get("LastEvaluatedKey")
            if not last:
                break
            params["ExclusiveStartKey"] = last
        return out

    async def restore_many(self, schema: Schema[T], items: Sequence[T]) -> None:
        """Write ``items`` exactly as given, version fields kept (resharding, backups): BatchWriteItem."""
        t = self._table(schema)
        encoded = [self._item(t, it) for it in items]
        limits.check_distinct((k for k, _, _ in encoded), "restore_many", entity=schema.name)
        if not items:
            return
        self.stats.writes += len(items)
        await self._batch_write(t, [{"PutRequest": {"Item": av}} for _, av, _ in encoded], list(items))

    # -- reads ---------------------------------------------------------------------------------------------

    async def get(self, schema: Schema[T], key: Key, *, consistent: bool = False) -> T | None:
        t = self._tables.get(schema) or self._table(schema)
        consistent = consistent or self._consistent
        av = self._key(t, key)  # a bad key fails its own caller here, never a whole batch
        self.stats.reads += 1
        if not self._coalesce:
            return await self._get_item(t, key, av, consistent)  # type: ignore[no-any-return]
        slot = 1 if consistent else 0
        batch = t.batches[slot]
        if batch is not None:
            fut: asyncio.Future[Any] = asyncio.get_running_loop().create_future()
            batch.setdefault(key, []).append(fut)
            return await fut  # type: ignore[no-any-return]
        # First get of this tick: let every other task that is ready run, and gather their gets.
        batch = t.batches[slot] = {}
        try:
            await asyncio.sleep(0)
        except BaseException:
            t.batches[slot] = None
            if batch:
                self._spawn(self._serve(t, batch, consistent))
            raise
        t.batches[slot] = None
        if not batch:
            return await self._get_item(t, key, av, consistent)  # type: ignore[no-any-return]
        keys = list(dict.fromkeys([key, *batch]))
        try:
            found = await self._batch_get(t, keys, consistent)
        except asyncio.CancelledError:
            self._spawn(self._serve(t, batch, consistent))  # the others still want their items
            raise
        except BaseException as exc:
            for futs in batch.values():
                for f in futs:
                    if not f.done():
                        f.set_exception(exc)
            raise
        for k, futs in batch.items():
            value = found.get(k)
            for f in futs:
                if not f.done():
                    f.set_result(value)
        return found.get(key)

    async def _serve(self, t: _Table, batch: dict[Key, list[asyncio.Future[Any]]], consistent: bool) -> None:
        try:
            found = await self._batch_get(t, list(batch), consistent)
        except BaseException as exc:
            for futs in batch.values():
                for f in futs:
                    if not f.done():
                        f.set_exception(exc)
            return
        for k, futs in batch.items():
            for f in futs:
                if not f.done():
                    f.set_result(found.get(k))

    async def _get_item(self, t: _Table, key: Key, av: dict[str, AV], consistent: bool) -> Any:
        params: dict[str, Any] = {"TableName": t.name, "Key": av}
        if consistent:
            params["ConsistentRead"] = True
        reply = await self._call("GetItem", params, idempotent=True, entity=t.schema.name, key=key)
        raw = reply.get("Item")
        return None if raw is None else t.codec.decode(raw)

    async def get_many(
        self, schema: Schema[T], keys: Sequence[Key], *, consistent: bool = False
    ) -> list[T | None]:
        t = self._table(schema)
        self.stats.reads += len(keys)
        if not keys:
            return []
        found = await self._batch_get(t, list(dict.fromkeys(keys)), consistent or self._consistent)
        return [found.get(k) for k in keys]

    async def _batch_get(self, t: _Table, keys: list[Key], consistent: bool) -> dict[Key, Any]:
        """Items by key (absent keys missing), in chunks of 100 sent concurrently."""
        step = limits.MAX_BATCH_GET
        chunks = [keys[i : i + step] for i in range(0, len(keys), step)]
        if len(chunks) == 1:
            raws = await self._batch_get_chunk(t, chunks[0], consistent)
        else:
            results = await asyncio.gather(
                *(self._batch_get_chunk(t, c, consistent) for c in chunks), return_exceptions=True
            )
            raws = []
            for r in results:
                if isinstance(r, BaseException):
                    raise r
                raws += r
        decode, key_of = t.codec.decode, t.schema.key_of
        found: dict[Key, Any] = {}
        for raw in raws:
            item = decode(raw)
            found[key_of(item)] = item
        return found

    async def _batch_get_chunk(
        self, t: _Table, keys: list[Key], consistent: bool, projection: dict[str, str] | None = None
    ) -> list[dict[str, AV]]:
        request: dict[str, Any] = {"Keys": [self._key(t, k) for k in keys]}
        if consistent:
            request["ConsistentRead"] = True
        if projection:
            request["ProjectionExpression"] = ", ".join(projection)
            request["ExpressionAttributeNames"] = projection
        out: list[dict[str, AV]] = []
        retry = 0
        while True:
            reply = await self._call("BatchGetItem", {"RequestItems": {t.name: request}}, idempotent=True,
                                     entity=t.schema.name)
            out += (reply.get("Responses") or {}).get(t.name) or ()
            left = ((reply.get("UnprocessedKeys") or {}).get(t.name) or {}).get("Keys")
            if not left:
                return out
            if retry + 1 >= self.backoff.attempts:
                by_identity = {key_identity(t.codec.key(k)): k for k in keys}
                remaining = [by_identity.get(key_identity(a), a) for a in left]
                self.stats.errors += 1
                raise PartialBatchError(
                    f"BatchGetItem left {len(left)} of {len(keys)} keys unread after {retry + 1} attempts",
                    remaining=remaining, entity=t.schema.name, backend=self.name,
                )
            self.stats.retries += 1
            await self.sleep(self.backoff.delay(retry))
            retry += 1
            request = {**request, "Keys": left}

    async def query(self, schema: Schema[T], query: Query) -> Page[T]:
        t = self._table(schema)
        codec = t.codec
        self.stats.queries += 1
        if query.index is not None and query.index not in codec.indexes:
            raise ValidationError(f"{schema.name} has no index {query.index!r}", entity=schema.name)
        local = query.index is None or query.index in codec.local_indexes
        if query.consistent and not local:
            raise Unsupported(
                "DynamoDB global secondary indexes serve only eventually consistent reads",
                entity=schema.name, backend=self.name,
            )
        p_layout, s_layout = codec.index_layouts(query.index)
        partition = p_layout.value(query.partition)
        limits.check_key_value(partition, sort=False, entity=schema.name, key=query.partition)
        names = {"#p": p_layout.attr}
        values: dict[str, AV] = {":p": partition}
        expression = "#p = :p"
        if query.sort is not None:
            if s_layout is None:
                raise ValidationError(f"{schema.name} has no sort key to filter on", entity=schema.name)
            cond = s_layout.condition(query.sort, "#s", ":s")
            if cond is False:
                return Page([], None)
            if cond is not True:
                fragment, avs = cond
                for av in avs:
                    limits.check_key_value(av, sort=True, entity=schema.name, key=query.sort.values)
                expression += " AND " + fragment
                names["#s"] = s_layout.attr
                values.update({f":s{i}": av for i, av in enumerate(avs)})
        params: dict[str, Any] = {
            "TableName": t.name, "KeyConditionExpression": expression, "ExpressionAttributeNames": names,
            "ExpressionAttributeValues": values,
        }
        if query.reverse:
            params["ScanIndexForward"] = False
        if query.index is not None:
            params["IndexName"] = query.index
        if local and (query.consistent or self._consistent):
            params["ConsistentRead"] = True
        if query.cursor is not None:
            params["ExclusiveStartKey"] = self._decode_cursor(t, query)
        limit = query.limit
        raws: list[dict[str, AV]] = []
        while True:
            if limit is not None:
                # One more than asked: if it comes, there is a next page; if not, this is the last page.
                params["Limit"] = limit + 1 - len(raws)
            reply = await self._call("Query", params, idempotent=True, entity=schema.name)
            raws += reply.get("Items") or ()
            last = reply.get("LastEvaluatedKey")
            if limit is None:
                cursor = self._encode_cursor(t, query, last) if last else None
                return Page(codec.decode_many(raws), cursor)
            if len(raws) > limit or not last:
                break
            params["ExclusiveStartKey"] = last  # DynamoDB stopped at 1 MB: read on until the page is full
        if len(raws) > limit:
            raws = raws[:limit]
            return Page(codec.decode_many(raws), self._encode_cursor(t, query, raws[-1]))
        return Page(codec.decode_many(raws), None)

    def _encode_cursor(self, t: _Table, query: Query, last: dict[str, AV]) -> str:
        position: list[Any] = []
        for attr in t.codec.cursor_attrs(query.index):
            ((tag, v),) = last[attr].items()
            if tag == "B" and not isinstance(v, bytes):
                v = key_identity({attr: {tag: v}})[0][2]
            position += [attr, tag, v]
        return encode_cursor(query, position)

    def _decode_cursor(self, t: _Table, query: Query) -> dict[str, AV]:
        assert query.cursor is not None
        position = decode_cursor(query, query.cursor)
        attrs = t.codec.cursor_attrs(query.index)
        types = t.codec.attribute_types
        if len(position) != 3 * len(attrs):
            raise ValidationError("malformed cursor", entity=t.schema.name)
        out: dict[str, AV] = {}
        for i, attr in enumerate(attrs):
            name, tag, v = position[3 * i : 3 * i + 3]
            if name != attr or tag != types[attr] or not isinstance(v, bytes if tag == "B" else str):
                raise ValidationError("malformed cursor", entity=t.schema.name)
            out[attr] = {tag: v}
        return out

    # -- writes --------------------------------------------------------------------------------------------

    async def put(
        self, schema: Schema[T], item: T, *, if_not_exists: bool = False, expect_version: int | None = None
    ) -> T:
        t = self._table(schema)
        codec = t.codec
        key, av, _ = self._item(t, item)
        vattr = codec.version_attr
        self.stats.writes += 1
        names: dict[str, str] = {}
        values: dict[str, AV] = {}
        conditions = []
        if if_not_exists:
            names["#k"] = codec.partition.attr
            conditions.append("attribute_not_exists(#k)")
        if expect_version is not None:
            if vattr is None:
                raise ValidationError(f"{schema.name} has no version field", entity=schema.name)
            names["#v"] = vattr
            values[":e"] = {"N": str(expect_version)}
            conditions.append("#v = :e")
        if vattr is not None and not conditions:
            stored: T = await self._update_put(t, item, key, av)
            return stored
        new_version = None
        if vattr is not None:
            new_version = 1 if if_not_exists else expect_version + 1  # type: ignore[operator]
            av[vattr] = {"N": str(new_version)}
        params: dict[str, Any] = {"TableName": t.name, "Item": av}
        if conditions:
            params["ConditionExpression"] = " AND ".join(conditions)
            params["ExpressionAttributeNames"] = names
            if values:
                params["ExpressionAttributeValues"] = values
        await self._call("PutItem", params, idempotent=not conditions, entity=schema.name, key=key)
        if new_version is None:
            return item
        return msgspec.structs.replace(item, **{schema.version: new_version})  # type: ignore[arg-type,type-var]

    def _update_expression(self, t: _Table, attrs: tuple[str, ...]) -> tuple[str, dict[str, str], tuple[str, ...]]:
        cached = t.update_exprs.get(attrs)
        if cached is not None:
            return cached
        codec = t.codec
        vattr = codec.version_attr
        assert vattr is not None
        names = {"#v": vattr}
        sets = []
        for i, a in enumerate(attrs):
            names[f"#a{i}"] = a
            sets.append(f"#a{i} = :a{i}")
        present = set(attrs) | set(codec.key_attrs) | {vattr}
        gone = [a for a in codec.attrs if a not in present]
        gone += [lay.attr for lay in codec.synthetic if lay.attr not in present]
        removes = []
        for i, a in enumerate(gone):
            names[f"#r{i}"] = a
            removes.append(f"#r{i}")
        expression = ("SET " + ", ".join(sets) + " " if sets else "") + "ADD #v :one"
        if removes:
            expression += " REMOVE " + ", ".join(removes)
        limits.check_expression(expression, "the UpdateExpression of a put", entity=t.schema.name)
        if len(t.update_exprs) < 64:
            t.update_exprs[attrs] = (expression, names, attrs)
        return expression, names, attrs

    async def _update_put(self, t: _Table, item: Any, key: Key, av: dict[str, AV]) -> Any:
        """Unconditional put of a versioned item: SET everything, ADD 1 to the version, in one round trip."""
        codec = t.codec
        skip = set(codec.key_attrs)
        skip.add(codec.version_attr)  # type: ignore[arg-type]
        attrs = tuple(a for a in av if a not in skip)
        expression, names, _ = self._update_expression(t, attrs)
        values = {f":a{i}": av[a] for i, a in enumerate(attrs)}
        values[":one"] = {"N": "1"}
        reply = await self._call("UpdateItem", {
            "TableName": t.name, "Key": codec.key_of_av(av), "UpdateExpression": expression,
            "ExpressionAttributeNames": names, "ExpressionAttributeValues": values, "ReturnValues": "UPDATED_NEW",
        }, idempotent=False, entity=t.schema.name, key=key)
        version = int(reply["Attributes"][codec.version_attr]["N"])
        return msgspec.structs.replace(item, **{t.schema.version: version})  # type: ignore[arg-type]

    async def put_many(self, schema: Schema[T], items: Sequence[T]) -> list[T]:
        t = self._table(schema)
        encoded = [self._item(t, it) for it in items]
        limits.check_distinct((k for k, _, _ in encoded), "put_many", entity=schema.name)
        if not items:
            return []
        self.stats.writes += len(items)
        if t.codec.version_attr is None:
            await self._batch_write(t, [{"PutRequest": {"Item": av}} for _, av, _ in encoded], list(items))
            return list(items)
        gate = asyncio.Semaphore(self.config.write_concurrency)

        async def one(item: T, key: Key, av: dict[str, AV]) -> T:
            async with gate:
                return await self._update_put(t, item, key, av)  # type: ignore[no-any-return]

        results = await asyncio.gather(
            *(one(it, k, av) for it, (k, av, _) in zip(items, encoded, strict=True)), return_exceptions=True
        )
        failed = [(it, r) for it, r in zip(items, results, strict=True) if isinstance(r, BaseException)]
        if failed:
            first = failed[0][1]
            if not isinstance(first, Exception) or len(failed) == len(items):
                raise first
            raise PartialBatchError(
                f"{len(failed)} of {len(items)} puts failed: {first}", remaining=[it for it, _ in failed],
                entity=schema.name, backend=self.name,
            ) from first
        return results  # type: ignore[return-value]

    async def delete(self, schema: Schema[Any], key: Key, *, expect_version: int | None = None) -> bool:
        t = self._table(schema)
        params: dict[str, Any] = {"TableName": t.name, "Key": self._key(t, key), "ReturnValues": "ALL_OLD"}
        if expect_version is not None:
            if t.codec.version_attr is None:
                raise ValidationError(f"{schema.name} has no version field", entity=schema.name)
            params["ConditionExpression"] = "#v = :e"
            params["ExpressionAttributeNames"] = {"#v": t.codec.version_attr}
            params["ExpressionAttributeValues"] = {":e": {"N": str(expect_version)}}
        self.stats.writes += 1
        reply = await self._call("DeleteItem", params, idempotent=expect_version is None, entity=schema.name, key=key)
        return bool(reply.get("Attributes"))

    async def delete_many(self, schema: Schema[Any], keys: Sequence[Key]) -> None:
        t = self._table(schema)
        requests = [{"DeleteRequest": {"Key": self._key(t, k)}} for k in keys]
        limits.check_distinct(keys, "delete_many", entity=schema.name)
        if not keys:
            return
        self.stats.writes += len(keys)
        await self._batch_write(t, requests, list(keys))

    async def _batch_write(self, t: _Table, requests: list[dict[str, Any]], labels: list[Any]) -> None:
        """BatchWriteItem in chunks of 25 (sent concurrently); ``labels`` name each request in errors."""
        step = limits.MAX_BATCH_WRITE
        chunks = [(requests[i : i + step], labels[i : i + step]) for i in range(0, len(requests), step)]
        results = await asyncio.gather(
            *(self._batch_write_chunk(t, reqs, labs) for reqs, labs in chunks), return_exceptions=True
        )
        remaining: list[Any] = []
        errors: list[BaseException] = []
        for (_, labs), r in zip(chunks, results, strict=True):
            if isinstance(r, PartialBatchError):
                remaining += r.remaining
                errors.append(r)
            elif isinstance(r, BaseException):
                if not isinstance(r, Exception):
                    raise r
                remaining += labs
                errors.append(r)
        if not errors:
            return
        if len(chunks) == 1:
            raise errors[0]
        raise PartialBatchError(
            f"BatchWriteItem left {len(remaining)} of {len(requests)} writes undone: {errors[0]}",
            remaining=remaining, entity=t.schema.name, backend=self.name,
        ) from errors[0]

    async def _batch_write_chunk(self, t: _Table, requests: list[dict[str, Any]], labels: list[Any]) -> None:
        # No size check here: 25 items of at most 400 KB stay below BatchWriteItem's 16 MB.
        pending = requests
        retry = 0
        while True:
            reply = await self._call("BatchWriteItem", {"RequestItems": {t.name: pending}}, idempotent=True,
                                     entity=t.schema.name)
            left = (reply.get("UnprocessedItems") or {}).get(t.name)
            if not left:
                return
            if retry + 1 >= self.backoff.attempts:
                codec = t.codec
                by_identity = {
                    key_identity(codec.key_of_av(r["PutRequest"]["Item"] if "PutRequest" in r
                                                 else r["DeleteRequest"]["Key"])): lab
                    for r, lab in zip(requests, labels, strict=True)
                }
                remaining = [
                    by_identity.get(key_identity(codec.key_of_av(
                        r["PutRequest"]["Item"] if "PutRequest" in r else r["DeleteRequest"]["Key"])), r)
                    for r in left
                ]
                self.stats.errors += 1
                raise PartialBatchError(
                    f"BatchWriteItem left {len(left)} of {len(requests)} writes undone after {retry + 1} attempts",
                    remaining=remaining, entity=t.schema.name, backend=self.name,
                )
            self.stats.retries += 1
            await self.sleep(self.backoff.delay(retry))
            retry += 1
            pending = left

    # -- transactions --------------------------------------------------------------------------------------

    async def transact(self, ops: Sequence[WriteOp]) -> list[Any]:
        """TransactWriteItems (≤ 100 actions, ≤ 4 MB, one action per item) with a ClientRequestToken."""
        if not ops:
            return []
        limits.check_batch_size(len(ops), limits.MAX_TRANSACT_ITEMS, "a transaction")
        plan: list[tuple[WriteOp, _Table, Key, dict[str, AV] | None]] = []
        sizes = []
        for op in ops:
            if isinstance(op, Put):
                t = self._table(schema_of(type(op.item)))
                key, av, size = self._item(t, op.item)
                if op.expect_version is not None and t.codec.version_attr is None:
                    raise ValidationError(f"{t.schema.name} has no version field", entity=t.schema.name)
                plan.append((op, t, key, av))
                sizes.append(size)
            elif isinstance(op, Delete):
                t = self._table(schema_of(op.entity))
                key = op.key
                t.schema.check_key(key)
                if op.expect_version is not None and t.codec.version_attr is None:
                    raise ValidationError(f"{t.schema.name} has no version field", entity=t.schema.name)
                plan.append((op, t, key, self._key(t, key)))
            else:
                raise ValidationError(f"transact takes Put and Delete, got {type(op).__name__}")
        limits.check_distinct(((t.name, key) for _, t, key, _ in plan), "a transaction")
        limits.total_size(sizes, limits.MAX_TRANSACT_BYTES, "a transaction")
        pinned = [
            isinstance(op, Put) and op.expect_version is None and not op.if_not_exists
            and t.codec.version_attr is not None
            for op, t, _, _ in plan
        ]
        retry = 0
        while True:
            versions = await self._read_versions([p for p, pin in zip(plan, pinned, strict=True) if pin])
            actions: list[dict[str, Any]] = []
            results: list[Any] = []
            for (op, t, key, attrs), pin in zip(plan, pinned, strict=True):
                action, result = self._action(op, t, key, attrs, pin, versions.get((t.name, key)))
                actions.append(action)
                results.append(result)
            token = str(uuid.uuid4())  # one per attempt: a retry of *this* request reuses it (inside _call)
            try:
                await self._call("TransactWriteItems", {"TransactItems": actions, "ClientRequestToken": token},
                                 idempotent=True, passthrough=frozenset({"TransactionCanceledException"}))
            except DynamoFault as fault:
                reasons, contention = self._cancel_reasons(fault, pinned)
                if any(r is not None for r in reasons) or not contention:
                    self.stats.errors += 1
                    raise TransactionCanceled(
                        "transaction canceled", reasons=reasons, backend=self.name
                    ) from (fault.cause or fault)
                if retry + 1 >= self.backoff.attempts:
                    self.stats.errors += 1
                    raise Throttled(
                        f"the transaction kept conflicting with other writers ({retry + 1} attempts)",
                        backend=self.name,
                    ) from (fault.cause or fault)
                self.stats.retries += 1
                await self.sleep(self.backoff.delay(retry))
                retry += 1
                continue
            self.stats.writes += len(ops)
            return results

    def _action(
        self, op: WriteOp, t: _Table, key: Key, av: dict[str, AV] | None, pin: bool, stored: int | None
    ) -> tuple[dict[str, Any], Any]:
        codec = t.codec
        vattr = codec.version_attr
        names: dict[str, str] = {}
        values: dict[str, AV] = {}
        conditions: list[str] = []
        assert av is not None
        if isinstance(op, Delete):
            body: dict[str, Any] = {"TableName": t.name, "Key": av}
            kind, result = "Delete", None
            if op.expect_version is not None:
                names["#v"] = vattr  # type: ignore[assignment]
                values[":e"] = {"N": str(op.expect_version)}
                conditions.append("#v = :e")
        else:
            item = dict(av)
            new_version: int | None = None
            if op.if_not_exists:
                names["#k"] = codec.partition.attr
                conditions.append("attribute_not_exists(#k)")
                new_version = 1
            if op.expect_version is not None:
                names["#v"] = vattr  # type: ignore[assignment]
                values[":e"] = {"N": str(op.expect_version)}
                conditions.append("#v = :e")
                new_version = op.expect_version + 1
            if pin:
                names["#v"] = vattr  # type: ignore[assignment]
                if stored is None:
                    conditions.append("attribute_not_exists(#v)")
                    new_version = 1
                else:
                    values[":e"] = {"N": str(stored)}
                    conditions.append("#v = :e")
                    new_version = stored + 1
            result = op.item
            if vattr is not None and new_version is not None:
                item[vattr] = {"N": str(new_version)}
                result = msgspec.structs.replace(op.item, **{t.schema.version: new_version})  # type: ignore[arg-type]
            body = {"TableName": t.name, "Item": item}
            kind = "Put"
        if conditions:
            body["ConditionExpression"] = " AND ".join(conditions)
            body["ExpressionAttributeNames"] = names
            if values:
                body["ExpressionAttributeValues"] = values
        return {kind: body}, result

    async def _read_versions(
        self, plan: list[tuple[WriteOp, _Table, Key, dict[str, AV] | None]]
    ) -> dict[tuple[str, Key], int]:
        """Stored versions (consistent reads) of the pinned puts' items; absent items are left out."""
        by_table: dict[str, tuple[_Table, list[Key]]] = {}
        for _, t, key, _ in plan:
            by_table.setdefault(t.name, (t, []))[1].append(key)
        out: dict[tuple[str, Key], int] = {}
        for t, keys in by_table.values():
            codec = t.codec
            names = {f"#k{i}": a for i, a in enumerate(codec.key_attrs)}
            names["#v"] = codec.version_attr  # type: ignore[assignment]
            raws = await self._batch_get_chunk(t, keys, True, projection=names)
            by_identity = {key_identity(codec.key(k)): k for k in keys}
            for raw in raws:
                k = by_identity.get(key_identity(codec.key_of_av(raw)))
                v = raw.get(codec.version_attr)  # type: ignore[arg-type]
                if k is not None and v is not None and "N" in v:
                    out[(t.name, k)] = int(v["N"])
        return out

    @staticmethod
    def _cancel_reasons(fault: DynamoFault, pinned: list[bool]) -> tuple[list[str | None], bool]:
        """Per-action reasons the caller should see, and whether a retry may succeed (contention only)."""
        raw = fault.reasons
        if not raw or len(raw) != len(pinned):
            return [fault.message or "canceled"] * len(pinned), False
        reasons: list[str | None] = []
        contention = False
        for r, pin in zip(raw, pinned, strict=True):
            if isinstance(r, dict):
                code, message = str(r.get("Code") or "None"), str(r.get("Message") or "")
            else:
                code, message = str(r or "None"), ""
            if code in ("None", "NONE"):
                reasons.append(None)
            elif (code == "ConditionalCheckFailed" and pin) or code in _CANCEL_CONTENTION:
                contention = True
                reasons.append(None)
            else:
                reasons.append(f"{code}: {message}" if message else code)
        return reasons, contention
