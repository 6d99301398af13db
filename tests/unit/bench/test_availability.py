"""Whether a system can run (tierstore.bench.availability): endpoints of a URL, and each kind of skip reason."""

from __future__ import annotations

import socket
from typing import Any

import pytest

from tierstore.bench.api import Driver, RunContext, SystemSpec
from tierstore.bench.availability import Reachability, endpoints, unavailable
from tierstore.bench.builtin import default_registry
from tierstore.bench.data import Dataset
from tierstore.bench.runner import Settings


def _ctx(tmp_path: Any, **kw: Any) -> RunContext:
    return RunContext(settings=Settings(**kw), data=Dataset(partitions=2), env={}, workdir=str(tmp_path))


def _closed_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return int(s.getsockname()[1])


def test_endpoints() -> None:
    assert endpoints("memcached://a:1,b:2") == [("a", 1), ("b", 2)]
    assert endpoints("postgresql+asyncpg://u:secret@h:5432/db") == [("h", 5432)]
    assert endpoints("dynamodb://us-east-1?endpoint_url=http://127.0.0.1:8000") == [("127.0.0.1", 8000)]
    with pytest.raises(ValueError) as err:
        endpoints("redis://u:secret@host/0")
    assert "secret" not in str(err.value)


async def test_skip_reason_for_missing_module(tmp_path: Any) -> None:
    spec = SystemSpec(name="raw:x", make=lambda ctx: Driver(), modules=("no_such_module_tsbench",))
    reason = await unavailable(spec, _ctx(tmp_path), Reachability())
    assert reason == "module no_such_module_tsbench is not installed"


async def test_skip_reason_for_unreachable_server(tmp_path: Any) -> None:
    port = _closed_port()
    spec = SystemSpec(name="raw:x", make=lambda ctx: Driver(), servers=(f"redis://u:pw@127.0.0.1:{port}/0",))
    reason = await unavailable(spec, _ctx(tmp_path), Reachability(timeout=0.5))
    assert reason is not None and f"127.0.0.1:{port} is unreachable" in reason and "pw" not in reason


async def test_skip_reason_for_missing_backend_module(tmp_path: Any, monkeypatch: pytest.MonkeyPatch) -> None:
    from tierstore import config

    monkeypatch.setitem(config.STORE_SCHEMES, "memory", ("tierstore.stores.not_written_yet", "X", "future"))
    spec = default_registry({}).systems["tierstore:memory"]
    reason = await unavailable(spec, _ctx(tmp_path), Reachability())
    assert reason is not None and "missing" in reason and "tierstore[future]" in reason


async def test_probe_exception_is_a_reason(tmp_path: Any) -> None:
    def probe(ctx: RunContext) -> str | None:
        raise RuntimeError("boom\nsecond line")

    spec = SystemSpec(name="raw:x", make=lambda ctx: Driver(), probe=probe)
    assert await unavailable(spec, _ctx(tmp_path), Reachability()) == "RuntimeError: boom"
