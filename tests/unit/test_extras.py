"""Every backend whose client library is missing says which extra installs it: a ``ConfigError`` naming
``pip install 'tierstore[extra]'``, never a bare ``ModuleNotFoundError``.

Each case runs in a fresh interpreter whose import system refuses one client library (as if it were not
installed), through a URL and through the typed config object. Nothing is contacted: the endpoints are
closed ports."""

from __future__ import annotations

import json
import subprocess
import sys
import textwrap

import pytest

from tierstore.config import EXTRA_MODULES

PROBE = textwrap.dedent('''
    import asyncio, importlib.abc, json, sys

    BLOCKED = sys.argv[1]

    class Refuse(importlib.abc.MetaPathFinder):
        def find_spec(self, name, path=None, target=None):
            if name.split(".")[0] == BLOCKED:
                raise ModuleNotFoundError(f"No module named {name!r}", name=name)
            return None

    sys.meta_path.insert(0, Refuse())
    for name in list(sys.modules):
        if name.split(".")[0] == BLOCKED:
            del sys.modules[name]

    import tierstore
    from tierstore.config import store_config, tier_config

    async def attempt(spec, tier):
        try:
            db = tierstore.connect("memory://", [spec]) if tier else tierstore.connect(spec)
            await db.open()
            await db.aclose()
            return ["ok", ""]
        except Exception as exc:
            return [type(exc).__name__, str(exc)]

    async def main():
        url, tier = sys.argv[2], sys.argv[3] == "tier"
        out = {"url": await attempt(url, tier)}
        try:
            config = (tier_config if tier else store_config)(url)
        except Exception as exc:
            out["config"] = [type(exc).__name__, str(exc)]
        else:
            out["config"] = await attempt(config, tier)
        print(json.dumps(out))

    asyncio.run(main())
''')

CASES = [
    ("postgres", "postgresql+asyncpg://u@127.0.0.1:1/db?connect_timeout=1s", "store"),
    ("mysql", "mysql+aiomysql://u@127.0.0.1:1/db?connect_timeout=1s", "store"),
    ("dynamodb", "dynamodb://us-east-1?endpoint_url=http://127.0.0.1:1", "store"),
    ("dax", "dax://127.0.0.1:1?region=us-east-1", "store"),
    ("redis", "redis://127.0.0.1:1/0", "tier"),
    ("memcached", "memcached://127.0.0.1:1", "tier"),
]


def test_every_extra_has_a_case() -> None:
    assert {extra for extra, _, _ in CASES} == set(EXTRA_MODULES)


@pytest.mark.parametrize(
    ("extra", "module", "url", "kind"),
    [(e, m, u, k) for e, u, k in CASES for m in EXTRA_MODULES[e]],
    ids=lambda v: v if isinstance(v, str) and "://" not in v and v not in ("store", "tier") else "",
)
def test_missing_client_library_names_the_extra(extra: str, module: str, url: str, kind: str) -> None:
    result = subprocess.run(
        [sys.executable, "-c", PROBE, module, url, kind], capture_output=True, text=True, timeout=60
    )
    assert result.returncode == 0, result.stderr
    out = json.loads(result.stdout.strip().splitlines()[-1])
    for path in ("url", "config"):
        kind_name, message = out[path]
        assert kind_name == "ConfigError", (path, out)
        assert f"pip install 'tierstore[{extra}]'" in message, (path, out)


def test_the_probe_sees_a_present_library() -> None:
    """Control: with nothing refused, the same probe reaches the backend (and fails on the closed port)."""
    result = subprocess.run(
        [sys.executable, "-c", PROBE, "no_such_module", CASES[2][1], "store"],
        capture_output=True, text=True, timeout=60,
    )
    out = json.loads(result.stdout.strip().splitlines()[-1])
    assert "pip install" not in out["url"][1]
