"""Every ```python block in README.md and docs/*.md runs (per file, in order, one namespace),
and every script in examples/ runs. Docs that drift fail here."""

from __future__ import annotations

import os
import pathlib
import re
import subprocess
import sys

import pytest

ROOT = pathlib.Path(__file__).resolve().parents[2]
BLOCK = re.compile(r"^```python\n(.*?)^```", re.DOTALL | re.MULTILINE)
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
    try:
        for i, block in enumerate(blocks):
            code = compile(block, f"{path.name}[block {i}]", "exec", dont_inherit=True)
            exec(code, module.__dict__)  # noqa: S102  # running the docs is the point
    finally:
        del sys.modules[module.__name__]


@pytest.mark.parametrize("path", EXAMPLES, ids=lambda p: p.name)
def test_examples_run(path: pathlib.Path, tmp_path: pathlib.Path) -> None:
    env = {**os.environ, "PYTHONPATH": str(ROOT / "src")}
    result = subprocess.run(
        [sys.executable, str(path)], cwd=tmp_path, env=env, capture_output=True, text=True, timeout=120
    )
    assert result.returncode == 0, result.stdout + result.stderr
