"""The public API's types, as a user's type checker sees them (assert_type under mypy --strict)."""

from __future__ import annotations

import pathlib
import subprocess
import sys

import pytest

HERE = pathlib.Path(__file__).parent


def test_public_types_check_under_mypy_strict() -> None:
    mypy = pytest.importorskip("mypy.api")
    out, err, status = mypy.run(
        ["--strict", "--no-incremental", "--config-file", "/dev/null", str(HERE / "check_public_types.py")]
    )
    assert status == 0, out + err


def test_a_wrong_type_is_caught() -> None:
    """Control: mypy really checks that file (a deliberate mismatch must fail)."""
    mypy = pytest.importorskip("mypy.api")
    good = 'assert_type(await customers.get("c1"), Customer | None)'
    src = (HERE / "check_public_types.py").read_text()
    assert good in src
    src = src.replace(good, 'assert_type(await customers.get("c1"), Customer)')
    bad = HERE / "_bad_types_tmp.py"
    bad.write_text(src)
    try:
        _, _, status = mypy.run(["--strict", "--no-incremental", "--config-file", "/dev/null", str(bad)])
    finally:
        bad.unlink()
    assert status != 0


def test_the_checked_file_runs() -> None:
    subprocess.run([sys.executable, str(HERE / "check_public_types.py")], check=True)
