"""The transport seam of the DynamoDB store: one ``call(operation, params)`` that carries a data-plane request.

Everything above a transport — building requests from a schema, the codec, the limits, retries, coalescing,
versions, transactions — is the store's, and a transport reports a failure only as a :class:`DynamoFault`, so the
same store runs on any client that can send a botocore-shaped request:

* :class:`~tierstore.stores.dynamodb.wire.WireTransport` (the default, ``fast_path=True``): DynamoDB's JSON
  protocol spoken directly over aiohttp.
* :class:`BotocoreTransport` (``fast_path=False``, and always for the control plane): the aioboto3 client.
* :class:`~tierstore.stores.dax.transport.ThreadTransport`: a blocking client (amazon-dax-client, or a boto3
  client in tests) run on a thread pool.

:func:`open_client` creates the one long-lived aioboto3 client a store needs: it resolves the region, the
endpoint and the credential chain, and switches botocore's own retries off (one attempt) because the store
retries itself and the two would multiply.
"""

from __future__ import annotations

import asyncio
import ipaddress
import re
from collections.abc import Sequence
from contextlib import AsyncExitStack
from typing import TYPE_CHECKING, Any, Protocol
from urllib.parse import urlsplit

from tierstore.errors import ConfigError

if TYPE_CHECKING:
    from tierstore.stores.dynamodb.config import DynamoStoreConfig

__all__ = ["BotocoreTransport", "DynamoFault", "Transport", "fault_from_botocore", "method_name", "open_client"]


class DynamoFault(Exception):
    """A DynamoDB error reply or a transport failure, as transports report it to the store.

    Never leaves this package: the store turns it into a tierstore error. ``sent=False`` means the request
    surely did not reach DynamoDB (safe to retry anything).
    """

    def __init__(
        self, code: str, message: str = "", *, reasons: Sequence[Any] | None = None, sent: bool = True,
        status: int | None = None, cause: BaseException | None = None, item: dict[str, Any] | None = None,
    ) -> None:
        super().__init__(f"{code}: {message}" if message else code)
        self.item = item  # the current item, when a failed condition asked for it (ALL_OLD)
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


def method_name(operation: str) -> str:
    """The botocore client method of an operation: ``GetItem`` -> ``get_item``."""
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
        return DynamoFault(
            code, str(error.get("Message", "")), reasons=reasons, status=status, cause=exc, item=response.get("Item")
        )
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
            method = self._methods[operation] = getattr(self.client, method_name(operation))
        try:
            reply: dict[str, Any] = await method(**params)
        except asyncio.CancelledError:
            raise
        except Exception as exc:
            raise fault_from_botocore(exc) from None
        return reply


def is_loopback(url: str | None) -> bool:
    if not url:
        return False
    host = urlsplit(url).hostname or ""
    if host == "localhost":
        return True
    try:
        return ipaddress.ip_address(host).is_loopback
    except ValueError:
        return False


async def open_client(stack: AsyncExitStack, cfg: DynamoStoreConfig, backend: str) -> tuple[Any, Any]:
    """The aioboto3 DynamoDB client of ``cfg`` (entered on ``stack``) and its credentials.

    A loopback endpoint with no credentials anywhere gets dummy ones: DynamoDB Local accepts any.
    """
    import aioboto3
    from botocore import exceptions as bx
    from botocore.config import Config

    region = cfg.region
    if region is None and is_loopback(cfg.endpoint_url):
        region = "us-east-1"
    try:
        session = aioboto3.Session(
            region_name=region, profile_name=cfg.profile, aws_access_key_id=cfg.aws_access_key_id,
            aws_secret_access_key=cfg.aws_secret_access_key, aws_session_token=cfg.aws_session_token,
        )
        credentials = await session.get_credentials()
        if credentials is None:
            if not is_loopback(cfg.endpoint_url):
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
        raise ConfigError(f"cannot create the DynamoDB client: {exc}", backend=backend) from exc
    return client, credentials
