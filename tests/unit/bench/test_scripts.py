"""The scripts that stay next to the harness in benchmarks/ still import and parse their flags (they use
internal modules, which move; a script that no longer imports fails here, not on the next person to run it)."""

from __future__ import annotations

import os
import pathlib
import subprocess
import sys

import pytest

ROOT = pathlib.Path(__file__).resolve().parents[3]
SCRIPTS = sorted((ROOT / "benchmarks").glob("*.py"))


def test_the_kept_scripts() -> None:
    assert [p.name for p in SCRIPTS] == ["dynamo_micro.py", "join_micro.py"]  # see benchmarks/README.md


@pytest.mark.parametrize("path", SCRIPTS, ids=lambda p: p.name)
def test_script_help(path: pathlib.Path, tmp_path: pathlib.Path) -> None:
    env = {**os.environ, "PYTHONPATH": str(ROOT / "src")}
    result = subprocess.run(
        [sys.executable, str(path), "--help"], cwd=tmp_path, env=env, capture_output=True, text=True, timeout=60
    )
    assert result.returncode == 0, result.stdout + result.stderr
    assert "usage:" in result.stdout
