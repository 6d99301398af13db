"""Every ```python block in README.md and docs/*.md runs (per file, in order, one namespace),
and every script in examples/ runs. Docs that drift fail here.

A block whose first line is ``# file: NAME`` (``python`` or ``ini``) is a file of a project the page shows
(a service and its tests): it is written to the page's folder instead, and pytest runs the tests among
those files in a fresh interpreter, on the servers the suite uses. The example service's own tests
(examples/tests) run the same way."""

from __future__ import annotations

import os
import pathlib
import re
import subprocess
import sys

import pytest

ROOT = pathlib.Path(__file__).resolve().parents[2]
BLOCK = re.compile(r"^```python\n(.*?)^```", re.DOTALL | re.MULTILINE)
FILE_BLOCK = re.compile(r"^```(?:python|ini)\n# file: (\S+)\n(.*?)^```", re.DOTALL | re.MULTILINE)
# Pages without a python block have nothing to run (their ```text blocks are illustrations).
DOCS = [p for p in [ROOT / "README.md", *sorted((ROOT / "docs").glob("*.md"))] if BLOCK.search(p.read_text())]
EXAMPLES = sorted((ROOT / "examples").glob("*.py"))


@pytest.mark.parametrize("path", DOCS, ids=lambda p: p.name)
def test_markdown_examples_run(path: pathlib.Path, tmp_path: pathlib.Path, monkeypatch: pytest.MonkeyPatch) -> None:
    blocks = BLOCK.findall(path.read_text())
    monkeypatch.chdir(tmp_path)  # the embedded default writes tierstore.db to the working directory
    namespace: dict[str, object] = {"__name__": f"doc_{path.stem}"}
    module = type(sys)(namespace["__name__"])  # a real module, so forward references resolve
    module.__dict__.update(namespace)
    sys.modules[module.__name__] = module
    files = {name: text for name, text in FILE_BLOCK.findall(path.read_text())}
    try:
        for i, block in enumerate(blocks):
            if block.startswith("# file: "):
                continue
            code = compile(block, f"{path.name}[block {i}]", "exec", dont_inherit=True)
            exec(code, module.__dict__)  # noqa: S102  # running the docs is the point
    finally:
        del sys.modules[module.__name__]
    if files:
        for name, text in files.items():
            (tmp_path / name).write_text(text)
        tests = sorted(n for n in files if n.startswith("test_") and n.endswith(".py"))
        assert tests, f"{path.name} shows files but no tests among them"
        _run_pytest(tmp_path, tests)


def _server_env() -> dict[str, str]:
    """The suite's servers (its defaults included) as the TIERSTORE_* variables the plugin reads."""
    from _servers import DYNAMODB_URL, MEMCACHED_URL, MYSQL_URL, PG_URL, REDIS_CLUSTER_URL, REDIS_URL, require

    require(REDIS_URL, "redis")  # the pages' fault examples run on Redis: in CI it must be there
    return {
        "TIERSTORE_PG_URL": PG_URL, "TIERSTORE_MYSQL_URL": MYSQL_URL, "TIERSTORE_REDIS_URL": REDIS_URL,
        "TIERSTORE_REDIS_CLUSTER_URL": REDIS_CLUSTER_URL, "TIERSTORE_MEMCACHED_URL": MEMCACHED_URL,
        "TIERSTORE_DYNAMODB_URL": DYNAMODB_URL,
    }


def _run_pytest(cwd: pathlib.Path, args: list[str]) -> str:
    env = {**os.environ, **_server_env()}
    env.pop("PYTEST_ADDOPTS", None)
    result = subprocess.run(
        [sys.executable, "-m", "pytest", "-q", "-rs", "-p", "no:cacheprovider", *args],
        cwd=cwd, env=env, capture_output=True, text=True, timeout=300,
    )
    out = result.stdout + result.stderr
    assert result.returncode == 0, out
    assert " passed" in out and "skipped" not in out, out  # every test ran: none skipped for a missing server
    return out


def test_example_service_tests_pass() -> None:
    """examples/tests use the pytest plugin the way a service's tests would (examples/pytest.ini)."""
    out = _run_pytest(ROOT / "examples", [])
    assert "4 passed" in out, out


@pytest.mark.parametrize("path", EXAMPLES, ids=lambda p: p.name)
def test_examples_run(path: pathlib.Path, tmp_path: pathlib.Path) -> None:
    env = {**os.environ, "PYTHONPATH": str(ROOT / "src")}
    result = subprocess.run(
        [sys.executable, str(path)], cwd=tmp_path, env=env, capture_output=True, text=True, timeout=120
    )
    assert result.returncode == 0, result.stdout + result.stderr
