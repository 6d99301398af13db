"""The reference service (examples/service) over real HTTP: started exactly as its image starts it — the
Dockerfile's CMD, run in a folder laid out like the image's WORKDIR, host and port from UVICORN_HOST/UVICORN_PORT —
on SQLite + memory and on PostgreSQL + memory + Redis; every endpoint, the error mapping, health and readiness
(a tier that is down, a store that goes away, the strict option), L1 coherence across two service processes,
an entity round-tripping as body and response with its OpenAPI schema, and the Dockerfile's HEALTHCHECK.
"""

from __future__ import annotations

import asyncio
import json
import pathlib
import re
import shutil
import subprocess
import sys
import threading
import time
import uuid
from collections.abc import Iterator
from typing import Any

import pytest

from tierstore.testing.proxy import FaultProxy

from _servers import PG_URL, REDIS_URL, endpoints, require
from _service import BIN, Service, dockerfile_instructions, free_port, image_cmd, image_healthcheck


@pytest.fixture
def start(tmp_path: pathlib.Path) -> Iterator[Any]:
    started: list[Service] = []

    def _start(env: dict[str, str] | None = None, *, wait: bool = True) -> Service:
        svc = Service(tmp_path, env or {})
        started.append(svc)
        return svc.wait_ready() if wait else svc

    yield _start
    for svc in started:
        svc.stop()


def _prefix() -> str:
    return f"s{uuid.uuid4().hex[:10]}"


def _pg_env() -> dict[str, str]:
    require(PG_URL, "postgres")
    require(REDIS_URL, "redis")
    # A generous deadline: a loaded CI machine must not turn a slow Redis reply into a fail-open miss.
    return {
        "TIERSTORE_STORE": PG_URL,
        "TIERSTORE_CACHE": f"memory:// {REDIS_URL}?prefix={_prefix()}&timeout=1s&connect_timeout=1s",
        "TIERSTORE_STRICT": "1",
    }


CONFIGS = [
    pytest.param("sqlite", id="sqlite-memory"),
    pytest.param("postgres", id="postgres-memory-redis", marks=[pytest.mark.postgres, pytest.mark.redis]),
]


def _env_for(config: str) -> dict[str, str]:
    return _pg_env() if config == "postgres" else {}


# -- every endpoint ------------------------------------------------------------------------------------------


@pytest.mark.parametrize("config", CONFIGS)
def test_every_endpoint(config: str, start: Any) -> None:
    svc = start(_env_for(config))
    c = svc.client
    cid = f"c{uuid.uuid4().hex[:8]}"

    # customers: create, conflict, read, missing
    created = c.post("/api/customers", json={"id": cid, "name": "Ann", "email": "ann@example.com"})
    assert created.status_code == 201, created.text
    assert created.json() == {"id": cid, "name": "Ann", "email": "ann@example.com", "version": 1}
    dup = c.post("/api/customers", json={"id": cid, "name": "Ann"})
    assert dup.status_code == 409 and dup.json()["error"] == "ConditionFailed"
    assert c.get(f"/api/customers/{cid}").json()["version"] == 1
    missing = c.get("/api/customers/nobody-here")
    assert missing.status_code == 404 and missing.json()["error"] == "NotFound"

    # optimistic locking: the version read is the version expected
    updated = c.put(f"/api/customers/{cid}",
                    json={"id": cid, "name": "Ann B", "email": "ann@example.com", "version": 1})
    assert updated.status_code == 200 and updated.json()["version"] == 2
    stale = c.put(f"/api/customers/{cid}", json={"id": cid, "name": "Stale", "version": 1})
    assert stale.status_code == 409 and stale.json()["error"] == "ConditionFailed"
    assert c.get(f"/api/customers/{cid}").json()["name"] == "Ann B"
    mismatch = c.put(f"/api/customers/{cid}", json={"id": "other", "name": "X", "version": 2})
    assert mismatch.status_code == 422 and mismatch.json()["error"] == "ValidationError"

    # orders: create, cursor paging, the customer joined, one-to-many, upsert
    for i in range(5):
        res = c.post(f"/api/customers/{cid}/orders", json={"customer_id": cid, "order_id": f"o{i}", "total_cents": i})
        assert res.status_code == 201, res.text
    wrong = c.post(f"/api/customers/{cid}/orders", json={"customer_id": "x", "order_id": "o9", "total_cents": 1})
    assert wrong.status_code == 422
    seen: list[str] = []
    cursor = None
    pages = 0
    while True:
        params: dict[str, Any] = {"limit": 2, **({"cursor": cursor} if cursor else {})}
        page = c.get(f"/api/customers/{cid}/orders", params=params).json()
        seen += [o["order_id"] for o in page["items"]]
        pages += 1
        cursor = page["cursor"]
        if cursor is None:
            break
    assert seen == [f"o{i}" for i in range(5)] and pages == 3
    bad_cursor = c.get(f"/api/customers/{cid}/orders", params={"cursor": "not-a-cursor"})
    assert bad_cursor.status_code == 422 and bad_cursor.json()["error"] == "ValidationError"
    order = c.get(f"/api/orders/{cid}/o3")
    assert order.status_code == 200
    assert order.json()["customer"] == {"id": cid, "name": "Ann B", "email": "ann@example.com", "version": 2}
    assert "__rel" not in order.text
    assert c.get(f"/api/orders/{cid}/nope").status_code == 404
    profile = c.get(f"/api/customers/{cid}/profile").json()
    assert [o["order_id"] for o in profile["orders"]] == [f"o{i}" for i in range(5)]
    replaced = c.put(f"/api/orders/{cid}/o3", json={"customer_id": cid, "order_id": "o3", "total_cents": 7,
                                                    "status": "paid"})
    assert replaced.status_code == 200 and replaced.json()["version"] == 2
    assert c.get(f"/api/orders/{cid}/o3").json()["status"] == "paid"  # the write invalidated the cached order

    # operations
    assert c.get("/healthz").json() == {"status": "alive"}
    ready = c.get("/readyz")
    assert ready.status_code == 200 and ready.json()["status"] == "ok", ready.text
    metrics = c.get("/metrics")
    assert metrics.status_code == 200 and "tierstore_store_reads{" in metrics.text
    stats = c.get("/stats").json()
    assert stats["store"]["writes"] >= 7 and "memory" in stats["tiers"]
    page = c.get("/")
    assert page.status_code == 200 and "text/html" in page.headers["content-type"]
    assert "/api/customers/" in page.text and "fetch(" in page.text


def test_bad_input_gets_bounded_422s(start: Any) -> None:
    c = start().client
    long_id = "k" * 300
    res = c.get(f"/api/customers/{long_id}")
    assert res.status_code == 422 and long_id not in res.text and "kkkkkkkkkk" not in res.text
    res = c.post("/api/customers", json={"id": long_id, "name": "x"})
    assert res.status_code == 422 and long_id not in res.text
    res = c.post("/api/customers", json={"id": "c1", "name": 5})
    assert res.status_code == 422 and "$.name" in res.json()["detail"]
    res = c.post("/api/customers", content=b"{not json" + b"x" * 10_000)
    assert res.status_code == 422 and len(res.text) < 500
    res = c.post("/api/customers", content=b"")
    assert res.status_code == 422
    res = c.post("/api/customers", content=b"[" * (2 << 20))
    assert res.status_code == 422 and "bytes" in res.json()["detail"]
    res = c.get("/api/customers/c1/orders", params={"limit": "x" * 3000})
    assert res.status_code == 422 and "xxxxxxxx" not in res.text


# -- the entity as body and response, and its schema --------------------------------------------------------


def test_entity_round_trips_and_openapi_describes_it(start: Any) -> None:
    c = start().client
    body = {"id": "rt1", "name": "Round Trip", "email": "rt@example.com", "version": 0}
    res = c.post("/api/customers", json=body)
    assert res.status_code == 201
    assert res.json() == {**body, "version": 1}
    assert c.get("/api/customers/rt1").json() == res.json()

    doc = c.get("/openapi.json").json()
    schemas = doc["components"]["schemas"]
    op = doc["paths"]["/api/customers"]["post"]
    assert op["requestBody"]["required"] is True
    assert op["requestBody"]["content"]["application/json"]["schema"] == {"$ref": "#/components/schemas/Customer"}
    assert op["responses"]["201"]["content"]["application/json"]["schema"] == {"$ref": "#/components/schemas/Customer"}
    customer = schemas["Customer"]
    assert customer["type"] == "object" and set(customer["required"]) == {"id", "name"}
    assert customer["properties"]["name"] == {"type": "string", "minLength": 1, "maxLength": 200}
    assert customer["properties"]["version"] == {"type": "integer", "default": 0}
    assert customer["properties"]["orders"]["readOnly"] is True
    assert set(body) <= set(customer["properties"])  # every field of the body is described
    order = schemas["Order"]
    assert order["properties"]["customer"]["anyOf"][0] == {"$ref": "#/components/schemas/Customer"}
    assert order["properties"]["total_cents"]["minimum"] == 0
    page_ref = doc["paths"]["/api/customers/{customer_id}/orders"]["get"]["responses"]["200"]["content"][
        "application/json"]["schema"]["$ref"]
    page = schemas[page_ref.rsplit("/", 1)[1]]
    assert page["properties"]["items"]["items"] == {"$ref": "#/components/schemas/Order"}
    assert page["properties"]["cursor"]["anyOf"] == [{"type": "string"}, {"type": "null"}]
    # every $ref in the document resolves
    refs = set(re.findall(r'"\$ref": "#/components/schemas/([^"]+)"', json.dumps(doc)))
    assert refs <= set(schemas), refs - set(schemas)


# -- health, readiness, strict -----------------------------------------------------------------------------


@pytest.mark.redis
def test_a_cache_tier_that_is_down_degrades_readiness_and_requests_still_work(start: Any) -> None:
    dead = free_port()
    svc = start({"TIERSTORE_CACHE": f"memory:// redis://127.0.0.1:{dead}/0?prefix={_prefix()}"})
    ready = svc.client.get("/readyz")
    assert ready.status_code == 200, ready.text
    body = ready.json()
    assert body["status"] == "degraded"
    redis = body["tiers"][1]
    assert redis["name"] == "redis" and redis["reachable"] is False and f"127.0.0.1:{dead}" in redis["error"]
    assert body["tiers"][0]["coherence"] == "disconnected"
    assert svc.client.post("/api/customers", json={"id": "d1", "name": "Down"}).status_code == 201
    assert svc.client.get("/api/customers/d1").json()["name"] == "Down"  # tiers fail open


@pytest.mark.redis
def test_strict_start_refuses_to_serve_when_a_tier_is_unreachable(start: Any) -> None:
    dead = free_port()
    svc = start({"TIERSTORE_CACHE": f"memory:// redis://127.0.0.1:{dead}/0?prefix=x", "TIERSTORE_STRICT": "1"},
                wait=False)
    svc.proc.wait(timeout=60)
    assert svc.proc.returncode != 0
    out = svc.output()
    assert "TierError" in out and f"127.0.0.1:{dead}" in out and "strict start-up" in out


class _ThreadedProxy:
    """A FaultProxy on its own event loop in a thread, so a synchronous test can cut a server under a
    service process."""

    def __init__(self, host: str, port: int) -> None:
        self.loop = asyncio.new_event_loop()
        self.thread = threading.Thread(target=self.loop.run_forever, daemon=True)
        self.thread.start()
        self.proxy = self._run(self._open(host, port))

    async def _open(self, host: str, port: int) -> FaultProxy:
        proxy = FaultProxy(host, port)
        await proxy.start()
        return proxy

    def _run(self, coro: Any) -> Any:
        return asyncio.run_coroutine_threadsafe(coro, self.loop).result(timeout=30)

    def down(self) -> None:
        self.loop.call_soon_threadsafe(self.proxy.drop)
        self._run(self.proxy.cut())

    def up(self) -> None:
        self.loop.call_soon_threadsafe(self.proxy.reset)

    def close(self) -> None:
        self._run(self.proxy.aclose())
        self.loop.call_soon_threadsafe(self.loop.stop)
        self.thread.join(timeout=10)
        self.loop.close()


@pytest.mark.postgres
def test_a_store_that_goes_away_makes_readiness_and_requests_503_and_recovers(start: Any) -> None:
    require(PG_URL, "postgres")
    (host, port), = endpoints(PG_URL)
    proxy = _ThreadedProxy(host, port)
    try:
        url = re.sub(r"@[^/]+/", f"@127.0.0.1:{proxy.proxy.port}/", PG_URL, count=1)
        svc = start({"TIERSTORE_STORE": url, "TIERSTORE_CACHE": "none"})
        c = svc.client
        assert c.post("/api/customers", json={"id": f"p{uuid.uuid4().hex[:6]}", "name": "P"}).status_code == 201
        proxy.down()
        ready = c.get("/readyz")
        assert ready.status_code == 503 and ready.json()["status"] == "down"
        res = c.get("/api/customers/anyone")
        assert res.status_code == 503 and res.json() == {"error": "StoreError",
                                                         "detail": "postgres is unavailable; try again"}
        assert res.headers["retry-after"] == "1"
        assert c.get("/healthz").status_code == 200  # liveness does not depend on the store
        proxy.up()
        end = time.monotonic() + 30
        while c.get("/readyz").status_code != 200:
            assert time.monotonic() < end, "readiness did not come back"
            time.sleep(0.1)
        assert c.get("/api/customers/anyone").status_code == 404
    finally:
        proxy.close()


@pytest.mark.postgres
@pytest.mark.redis
def test_two_service_processes_stay_coherent_through_redis(start: Any) -> None:
    env = _pg_env()
    a, b = start(env), start(env)
    cid = f"x{uuid.uuid4().hex[:8]}"
    assert a.client.post("/api/customers", json={"id": cid, "name": "v1"}).status_code == 201
    for _ in range(3):  # b's in-process tier now holds the customer
        assert b.client.get(f"/api/customers/{cid}").json()["name"] == "v1"
    assert a.client.put(f"/api/customers/{cid}", json={"id": cid, "name": "v2", "version": 1}).status_code == 200
    end = time.monotonic() + 10  # the invalidation reaches b through the channel, asynchronously
    while b.client.get(f"/api/customers/{cid}").json()["name"] != "v2":
        assert time.monotonic() < end, "process b kept serving the old value"
        time.sleep(0.05)
    stats = b.client.get("/stats").json()
    assert stats["tiers"]["memory"]["coherence_evictions"] >= 1


# -- the image's own commands --------------------------------------------------------------------------------


def test_dockerfile_is_multi_stage_non_root_pinned_with_a_healthcheck() -> None:
    instructions = dockerfile_instructions()
    froms = [args for word, args in instructions if word == "FROM"]
    assert len(froms) >= 2, "multi-stage"
    base = [args.split("=", 1)[1] for word, args in instructions if word == "ARG" and args.startswith("PYTHON_IMAGE=")]
    assert base and re.fullmatch(r"python:\d+\.\d+\.\d+-slim-\w+(@sha256:[0-9a-f]{64})?", base[0]), base
    users = [args for word, args in instructions if word == "USER"]
    assert users and not users[-1].startswith(("root", "0")), "runs as non-root"
    assert image_cmd()[0] == "uvicorn" and image_healthcheck()[0] == "python"


def test_healthcheck_command_passes_on_a_live_service_and_fails_on_a_dead_one(start: Any) -> None:
    svc = start()
    check = image_healthcheck()
    exe = shutil.which(check[0], path=str(BIN)) or sys.executable
    ok = subprocess.run([exe, *check[1:]], env=svc.env, capture_output=True, timeout=30)
    assert ok.returncode == 0, ok.stderr
    dead = {**svc.env, "UVICORN_PORT": str(free_port())}
    bad = subprocess.run([exe, *check[1:]], env=dead, capture_output=True, timeout=30)
    assert bad.returncode != 0
