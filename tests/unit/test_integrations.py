"""The web-framework integrations in process: encoding, schemas, the error mapping, EntityRoute's edge cases,
and plain Starlette without FastAPI. (The reference service is tested over real HTTP in tests/service.)"""

from __future__ import annotations

import re
import subprocess
import sys
from typing import Annotated, Any

import msgspec
import pytest
from fastapi import APIRouter, Depends, FastAPI, Response
from starlette.applications import Starlette
from starlette.requests import Request
from starlette.routing import Route
from starlette.testclient import TestClient

import tierstore
from tierstore import (
    CircuitOpen,
    ConditionFailed,
    ConfigError,
    Entity,
    Many,
    NotFound,
    NotLoaded,
    Page,
    PartialBatchError,
    PartitionKey,
    Ref,
    Repository,
    SortKey,
    StoreError,
    Throttled,
    TierError,
    TransactionCanceled,
    Unsupported,
    ValidationError,
    Version,
)
from tierstore.integrations import encoding
from tierstore.integrations import starlette as ts
from tierstore.integrations.fastapi import EntityRoute, SessionDep, install, lifespan, repository


class Author(Entity, table="int_authors"):
    id: PartitionKey[str]
    name: str
    avatar: bytes = b""
    version: Version = 0
    posts = Many["Post"]("Post", "author_id")


class Post(Entity, table="int_posts"):
    author_id: PartitionKey[str]
    post_id: SortKey[str]
    title: str
    author = Ref(Author, "author_id")


def test_core_and_framework_free_modules_import_without_any_web_framework() -> None:
    code = (
        "import sys\n"
        "for name in ('fastapi', 'starlette', 'pydantic', 'uvicorn'):\n"
        "    sys.modules[name] = None  # importing them now fails\n"
        "import tierstore, tierstore.integrations, tierstore.integrations.encoding, tierstore.integrations.metrics\n"
        "import tierstore.health, tierstore.querycache\n"
        "try:\n"
        "    import tierstore.integrations.starlette\n"
        "except ImportError:\n"
        "    print('starlette-needed')\n"
    )
    out = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, timeout=60)
    assert out.returncode == 0, out.stderr
    assert out.stdout.strip() == "starlette-needed"


def test_the_starlette_integration_does_not_need_fastapi() -> None:
    code = (
        "import sys\nsys.modules['fastapi'] = None\nsys.modules['pydantic'] = None\n"
        "import tierstore.integrations.starlette\nprint('ok')\n"
    )
    out = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, timeout=60)
    assert out.returncode == 0 and out.stdout.strip() == "ok", out.stderr


# -- encoding ----------------------------------------------------------------------------------------------


def test_loaded_relations_are_nested_under_their_names_and_nothing_internal_leaks() -> None:
    ann = Author("a1", "Ann", b"\x00\x01")
    post = Post("a1", "p1", "Hello")
    Post.author.set(post, ann)
    Author.posts.set(ann, [post])  # a cycle: ann -> posts -> post -> author -> ann
    data = msgspec.json.decode(encoding.encode(post))
    assert data["author"]["name"] == "Ann"
    assert data["author"]["posts"][0]["post_id"] == "p1"
    assert "author" not in data["author"]["posts"][0]  # the cycle ends with the fields only
    assert "__rel" not in encoding.encode(post).decode()
    assert data["author"]["avatar"] == "AAE="  # bytes as base64, as msgspec encodes them
    page = Page([post], "next")
    assert msgspec.json.decode(encoding.encode(page))["items"][0]["author"]["id"] == "a1"
    unloaded = Post("a1", "p2", "Plain")
    assert encoding.encode([unloaded]) == msgspec.json.encode([unloaded])  # the fast path is plain msgspec
    assert msgspec.json.decode(encoding.encode({"n": 1, "posts": [post]}))["posts"][0]["author"]["id"] == "a1"


def test_json_schema_adds_read_only_relations_and_their_targets() -> None:
    (schema,), components = encoding.json_schema([Page[Post]])
    assert schema == {"$ref": "#/components/schemas/Page_Post_"}
    author = components["Post"]["properties"]["author"]
    assert author["readOnly"] is True and {"$ref": "#/components/schemas/Author"} in author["anyOf"]
    assert components["Author"]["properties"]["posts"]["items"] == {"$ref": "#/components/schemas/Post"}
    assert "author" not in components["Post"]["required"]


def test_decode_errors_are_bounded_validation_errors() -> None:
    with pytest.raises(ValidationError, match=r"\$\.title"):
        encoding.decode(b'{"author_id": "a", "post_id": "p", "title": ' + b"1" * 5000 + b"}", Post)
    with pytest.raises(ValidationError, match="not valid JSON") as info:
        encoding.decode(b"{" + b"x" * 5000, Post)
    assert len(str(info.value)) < 400


# -- the error mapping, through FastAPI -----------------------------------------------------------------------

ERRORS: list[tuple[Exception, int]] = [
    (ValidationError("bad input"), 422),
    (NotFound("no such thing", key="k"), 404),
    (ConditionFailed("version mismatch"), 409),
    (TransactionCanceled("canceled", reasons=[None, "ConditionalCheckFailed"]), 409),
    (Throttled("slow down", backend="dynamodb"), 429),  # a stub: no local DynamoDB throttles
    (StoreError("connection refused by 10.0.0.5:5432", backend="postgres"), 503),
    (PartialBatchError("half done", backend="dynamodb"), 503),
    (TierError("down", backend="redis"), 503),
    (CircuitOpen("open", backend="redis"), 503),
    (Unsupported("no transactions"), 501),
    (ConfigError("misconfigured"), 500),
    (NotLoaded("relation not loaded"), 500),
]


def _app_raising(exc: Exception) -> FastAPI:
    app = FastAPI()
    install(app)

    @app.get("/boom")
    async def boom() -> Post:
        raise exc

    return app


@pytest.mark.parametrize(("exc", "status"), ERRORS, ids=[type(e).__name__ for e, _ in ERRORS])
def test_every_error_maps_to_its_status_with_a_bounded_body(exc: Exception, status: int) -> None:
    with TestClient(_app_raising(exc)) as client:
        res = client.get("/boom")
    assert res.status_code == status
    body = res.json()
    assert body["error"] == type(exc).__name__
    if status >= 500:
        assert "10.0.0.5" not in body["detail"]  # server-side details stay in the log
    else:
        assert str(exc)[:20] in body["detail"]
    if status in (429, 503):
        assert res.headers["retry-after"] == "1"
    if isinstance(exc, TransactionCanceled):
        assert body["reasons"] == [None, "ConditionalCheckFailed"]


def test_a_huge_key_in_an_error_is_not_echoed() -> None:
    key = "k" * 300
    with TestClient(_app_raising(NotFound("no such customer", entity="Customer", key=key))) as client:
        res = client.get("/boom")
    assert res.status_code == 404 and key not in res.text and len(res.text) < 400


def test_fastapi_parameter_errors_do_not_echo_the_input() -> None:
    app = FastAPI()
    install(app)

    @app.get("/n")
    async def n(count: int) -> dict[str, int]:
        return {"count": count}

    with TestClient(app) as client:
        res = client.get("/n", params={"count": "x" * 5000})
    assert res.status_code == 422
    assert "xxxxx" not in res.text and len(res.text) < 1000


# -- EntityRoute ---------------------------------------------------------------------------------------------


Authors = Annotated[Repository[Author], Depends(repository(Author))]


def _blog_app() -> FastAPI:
    db = tierstore.connect("memory://", ["memory://"])
    app = FastAPI(lifespan=lifespan(db))
    install(app)

    @app.put("/authors/{author_id}")
    async def put_author(author_id: str, author: Author, repo: Authors, response: Response) -> Author:
        response.headers["X-Author"] = author_id
        stored = await repo.put(author)
        if stored.version == 1:
            response.status_code = 201
        return stored

    @app.delete("/authors/{author_id}", status_code=204)
    async def delete_author(author_id: str, repo: Authors) -> None:
        await repo.delete(author_id)

    @app.post("/posts", status_code=201)
    def create_posts(posts: list[Post]) -> list[Post]:  # a sync endpoint and a list body
        return posts

    router = APIRouter(prefix="/v2", route_class=EntityRoute)

    @router.get("/authors/{author_id}")
    async def get_author(author_id: str, session: SessionDep) -> Author | None:
        author = await session.get(Author, author_id)
        if author is not None:
            await session.load([author], Author.posts)
        return author

    app.include_router(router)

    @app.get("/plain")
    async def plain() -> dict[str, Any]:
        return {"ok": True}  # not entity-shaped: FastAPI's own handling

    return app


def test_entity_route_round_trip_status_headers_sync_lists_and_routers() -> None:
    with TestClient(_blog_app()) as client:
        res = client.put("/authors/a1", json={"id": "a1", "name": "Ann"})
        assert res.status_code == 201 and res.headers["x-author"] == "a1"
        assert res.json() == {"id": "a1", "name": "Ann", "avatar": "", "version": 1}
        res = client.put("/authors/a1", json={"id": "a1", "name": "Ann B", "version": 1})
        assert res.status_code == 200 and res.json()["version"] == 2
        stale = client.put("/authors/a1", json={"id": "a1", "name": "Ann C", "version": 1})
        assert stale.status_code == 409  # versions are checked by default: a stale write is a conflict
        res = client.post("/posts", json=[{"author_id": "a1", "post_id": "p1", "title": "T"}])
        assert res.status_code == 201 and res.json() == [{"author_id": "a1", "post_id": "p1", "title": "T"}]
        res = client.get("/v2/authors/a1")
        assert res.status_code == 200 and res.json()["posts"] == []
        assert client.get("/v2/authors/nobody").json() is None
        assert client.delete("/authors/a1").status_code == 204
        assert client.get("/plain").json() == {"ok": True}
        bad = client.put("/authors/a1", json={"id": "a1"})
        assert bad.status_code == 422 and bad.json()["error"] == "ValidationError" and "name" in bad.json()["detail"]
        assert client.put("/authors/a1", content=b"").status_code == 422
        assert client.put("/authors/a1", content=b"{" * (ts.MAX_BODY + 1)).status_code == 422
        doc = client.get("/openapi.json").json()
    put = doc["paths"]["/authors/{author_id}"]["put"]
    assert put["requestBody"]["content"]["application/json"]["schema"] == {"$ref": "#/components/schemas/Author"}
    assert put["responses"]["200"]["content"]["application/json"]["schema"] == {"$ref": "#/components/schemas/Author"}
    posts_schema = doc["paths"]["/posts"]["post"]["requestBody"]["content"]["application/json"]["schema"]
    assert posts_schema == {"type": "array", "items": {"$ref": "#/components/schemas/Post"}}
    assert "/v2/authors/{author_id}" in doc["paths"]
    assert doc["components"]["schemas"]["Author"]["properties"]["posts"]["readOnly"] is True


def test_two_entity_bodies_on_one_route_are_refused_at_declaration() -> None:
    app = FastAPI()
    install(app)
    with pytest.raises(TypeError, match="one entity body"):

        @app.post("/two")
        async def two(a: Author, b: Post) -> None:
            return None


# -- plain Starlette ---------------------------------------------------------------------------------------


async def _create(request: Request) -> ts.EntityResponse:
    author = await ts.read_entity(request, Author)
    stored = await ts.repository(request, Author).put(author, if_not_exists=True)
    return ts.EntityResponse(stored, status_code=201)


async def _profile(request: Request) -> ts.EntityResponse:
    session = ts.session(request)
    author = await session.get(Author, request.path_params["author_id"])
    if author is None:
        raise NotFound("no such author", entity="Author", key=request.path_params["author_id"])
    assert ts.session(request) is session  # one session per request
    await session.load([author], Author.posts)
    return ts.EntityResponse(author)


def test_plain_starlette_app_with_every_helper(tmp_path: Any) -> None:
    app = Starlette(
        routes=[
            Route("/authors", _create, methods=["POST"]),
            Route("/authors/{author_id}", _profile),
            Route("/healthz", ts.liveness),
            Route("/readyz", ts.readiness),
            Route("/metrics", ts.metrics),
        ],
        lifespan=ts.lifespan(lambda: tierstore.connect(f"sqlite+aiosqlite:///{tmp_path}/s.db", ["memory://"]),
                             create_tables=[Author, Post]),
    )
    ts.install_error_handlers(app)
    with TestClient(app) as client:
        assert client.post("/authors", json={"id": "a1", "name": "Ann"}).status_code == 201
        dup = client.post("/authors", json={"id": "a1", "name": "Ann"})
        assert dup.status_code == 409 and dup.json()["error"] == "ConditionFailed"
        assert client.get("/authors/a1").json()["posts"] == []
        assert client.get("/authors/zz").status_code == 404
        assert client.get("/healthz").json() == {"status": "alive"}
        ready = client.get("/readyz")
        assert ready.status_code == 200 and ready.json()["status"] == "ok"
        metrics = client.get("/metrics").text
        assert re.search(r'^tierstore_store_writes\{backend="sqlite"\} [1-9]', metrics, re.MULTILINE)
        assert 'tierstore_tier_hits{tier="memory"}' in metrics
