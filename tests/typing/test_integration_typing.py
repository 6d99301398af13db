"""The operations hooks and the FastAPI integration type-check under mypy --strict as a user writes them."""

from __future__ import annotations

import pathlib
import subprocess
import sys

import mypy.api

HERE = pathlib.Path(__file__).parent
FILE = HERE / "check_integration_types.py"


def _mypy(path: pathlib.Path) -> tuple[str, int]:
    out, err, status = mypy.api.run(["--strict", "--no-incremental", "--config-file", "/dev/null", str(path)])
    return out + err, status


def test_integration_types_check_under_mypy_strict() -> None:
    out, status = _mypy(FILE)
    assert status == 0, out


def test_a_wrong_health_type_is_caught(tmp_path: pathlib.Path) -> None:
    good = "assert_type(health.ready, bool)"
    src = FILE.read_text()
    assert good in src
    bad = HERE / "_bad_integration_types_tmp.py"
    bad.write_text(src.replace(good, "assert_type(health.ready, str)"))
    try:
        _, status = _mypy(bad)
    finally:
        bad.unlink()
    assert status != 0


def test_the_checked_file_runs() -> None:
    subprocess.run([sys.executable, str(FILE)], check=True, timeout=120)
