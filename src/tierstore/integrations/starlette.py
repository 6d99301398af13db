"""Starlette integration (extra ``tierstore[starlette]``): lifespan, request helpers, responses, errors, health.

Works with plain Starlette; :mod:`tierstore.integrations.fastapi` builds on it. The pieces:

* :func:`lifespan` — opens the database when the app starts (with ``strict=True`` in ``connect()``, a backend
  that does not answer stops the start) and closes it on shutdown; the database is in the lifespan state
  (``request.state.tierstore``) and on ``app.state.tierstore``.
* :func:`database`, :func:`repository`, :func:`session` — what a request handler needs; the session is one per
  request (an identity map, see :class:`~tierstore.Session`).
* :class:`EntityResponse` — JSON by msgspec, entities with their loaded relations nested under the relation's
  name (:mod:`tierstore.integrations.encoding`); :func:`read_entity` decodes a request body into an entity.
* :func:`install_error_handlers` — one call maps every tierstore error to an HTTP status (:data:`STATUS`) with a
  bounded body ``{"error": "<type>", "detail": "<text>"}``; server-side failures say only which backend failed.
* :func:`liveness`, :func:`readiness`, :func:`metrics` — endpoints for ``/healthz``, ``/readyz`` and ``/metrics``.
"""

from __future__ import annotations

import logging
from collections.abc import AsyncIterator, Awaitable, Callable, Iterable
from contextlib import AbstractAsyncContextManager, asynccontextmanager
from typing import Any, TypeVar

from starlette.requests import Request
from starlette.responses import JSONResponse, PlainTextResponse, Response

from tierstore.db import Database
from tierstore.errors import (
    BackendError,
    ConditionFailed,
    ConfigError,
    NotFound,
    NotLoaded,
    Throttled,
    TierstoreError,
    TransactionCanceled,
    Unsupported,
    ValidationError,
    bounded,
)
from tierstore.integrations.encoding import decode, encode
from tierstore.integrations.metrics import prometheus_text
from tierstore.model.entity import Entity
from tierstore.repository import Repository
from tierstore.session import Session

__all__ = [
    "MAX_BODY",
    "STATUS",
    "EntityResponse",
    "database",
    "error_response",
    "install_error_handlers",
    "lifespan",
    "liveness",
    "metrics",
    "read_entity",
    "readiness",
    "repository",
    "session",
    "status_for",
]

log = logging.getLogger("tierstore.http")
T = TypeVar("T", bound=Entity)

STATE_KEY = "tierstore"
MAX_BODY = 1 << 20
"""Bytes of a request body :func:`read_entity` reads before refusing it (a ``ValidationError``, 422)."""
MAX_DETAIL = 300
"""Characters of an error's text sent to the client."""

STATUS: tuple[tuple[type[TierstoreError], int], ...] = (
    (ValidationError, 422),
    (NotFound, 404),
    (ConditionFailed, 409),  # TransactionCanceled too
    (Throttled, 429),
    (BackendError, 503),  # StoreError, TierError, CircuitOpen, PartialBatchError
    (Unsupported, 501),
    (ConfigError, 500),
    (NotLoaded, 500),
    (TierstoreError, 500),
)
"""Error class -> HTTP status, first match wins."""


# -- lifespan and request helpers -----------------------------------------------------------------------------


def lifespan(
    db: Database | Callable[[], Database], *, create_tables: Iterable[type[Entity]] = ()
) -> Callable[[Any], AbstractAsyncContextManager[dict[str, Any]]]:
    """A lifespan for ``Starlette(lifespan=...)``/``FastAPI(lifespan=...)``: opens ``db`` (or the database
    ``db()`` returns, called at start-up so configuration is read then), creates the tables of
    ``create_tables`` if asked (a deployment that manages its schema elsewhere passes none), and closes it on
    shutdown."""
    tables = tuple(create_tables)

    @asynccontextmanager
    async def _lifespan(app: Any) -> AsyncIterator[dict[str, Any]]:
        database_ = db if isinstance(db, Database) else db()
        async with database_:
            if tables:
                await database_.create_tables(*tables)
            app.state.tierstore = database_
            try:
                yield {STATE_KEY: database_}
            finally:
                app.state.tierstore = None

    return _lifespan


def database(request: Request) -> Database:
    """The request's database (from the lifespan state, else ``app.state``)."""
    db = getattr(request.state, STATE_KEY, None) or getattr(request.app.state, STATE_KEY, None)
    if not isinstance(db, Database):
        raise ConfigError("no tierstore database on this app: pass lifespan=tierstore.integrations.starlette."
                          "lifespan(...) (or set app.state.tierstore)")
    return db


def repository(request: Request, entity: type[T]) -> Repository[T]:
    return database(request).repository(entity)


def session(request: Request) -> Session:
    """The request's session (created on first use, one per request)."""
    s = getattr(request.state, "tierstore_session", None)
    if not isinstance(s, Session):
        s = database(request).session()
        request.state.tierstore_session = s
    return s


async def read_body(request: Request, limit: int = MAX_BODY) -> bytes:
    """The request body, refusing more than ``limit`` bytes (a ``ValidationError``) without reading on."""
    declared = request.headers.get("content-length")
    if declared is not None and declared.isdigit() and int(declared) > limit:
        raise ValidationError(f"request body over {limit} bytes")
    chunks: list[bytes] = []
    size = 0
    async for chunk in request.stream():
        size += len(chunk)
        if size > limit:
            raise ValidationError(f"request body over {limit} bytes")
        chunks.append(chunk)
    body = b"".join(chunks)
    if not body:
        raise ValidationError("a JSON request body is required")
    return body


async def read_entity(request: Request, tp: type[T] | Any, *, limit: int = MAX_BODY) -> Any:
    """The request body decoded as ``tp`` (an entity class, ``list[Entity]``…); bad input is a 422."""
    return decode(await read_body(request, limit), tp)


class EntityResponse(JSONResponse):
    """JSON of entities, pages, lists and plain data, encoded by msgspec; loaded relations are nested under
    the relation's name. (A ``JSONResponse``, so frameworks document its body as JSON.)"""

    media_type = "application/json"

    def render(self, content: Any) -> bytes:
        return encode(content)


# -- errors ---------------------------------------------------------------------------------------------------


def status_for(exc: BaseException) -> int:
    for cls, status in STATUS:
        if isinstance(exc, cls):
            return status
    return 500


def error_response(exc: TierstoreError) -> Response:
    """The response for ``exc``: its status, and a body that never echoes unbounded input or backend internals.

    Client errors (4xx) carry the error's text (bounded: see :mod:`tierstore.errors`); server-side ones say only
    which kind of backend failed — the full error goes to the ``tierstore.http`` log.
    """
    status = status_for(exc)
    kind = type(exc).__name__
    headers: dict[str, str] = {}
    if status >= 500:
        if isinstance(exc, BackendError):
            detail = f"{exc.backend or 'a backend'} is unavailable; try again"
            headers["Retry-After"] = "1"
        else:
            detail = "internal error"
        log.warning("%s -> %d: %s", kind, status, exc)
    else:
        detail = bounded(str(exc), MAX_DETAIL)
        if status == 429:
            headers["Retry-After"] = "1"
    body: dict[str, Any] = {"error": kind, "detail": detail}
    if isinstance(exc, TransactionCanceled) and exc.reasons:
        body["reasons"] = [None if r is None else bounded(str(r), 80) for r in exc.reasons[:100]]
    return JSONResponse(body, status_code=status, headers=headers)


async def _handle(request: Request, exc: Exception) -> Response:
    assert isinstance(exc, TierstoreError)
    return error_response(exc)


def install_error_handlers(app: Any) -> None:
    """Map every :class:`~tierstore.TierstoreError` raised by a handler to its status (:data:`STATUS`)."""
    app.add_exception_handler(TierstoreError, _handle)


# -- health and metrics ---------------------------------------------------------------------------------------


async def liveness(request: Request) -> Response:
    """``/healthz``: the process serves requests. Probes nothing: a backend outage must not restart tasks."""
    return JSONResponse({"status": "alive"})


def readiness_endpoint(within: float = 2.0) -> Callable[[Request], Awaitable[Response]]:
    """A ``/readyz`` endpoint probing with deadline ``within`` seconds (see :func:`readiness`)."""

    async def ready(request: Request) -> Response:
        health = await database(request).health(within=within)
        return JSONResponse(health.as_dict(), status_code=200 if health.ready else 503)

    return ready


readiness = readiness_endpoint()
"""``/readyz``: 200 while the store answers (``status`` is ``ok`` or ``degraded``: a tier is down, a breaker is
open, the L1 channel is down), 503 when it does not; the body is :meth:`Health.as_dict`."""


async def metrics(request: Request) -> Response:
    """``/metrics``: ``db.stats()`` in the Prometheus text format."""
    return PlainTextResponse(prometheus_text(database(request).stats()), media_type="text/plain; version=0.0.4")
