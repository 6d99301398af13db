"""``tierstore bench`` flags that need no run: usage errors and --list."""

from __future__ import annotations

import pytest

from tierstore.cli import main


def test_cli_usage_errors(capsys: pytest.CaptureFixture[str]) -> None:
    assert main([]) == 2
    assert main(["bench", "--scenarios", "gets"]) == 2
    assert "unknown scenario" in capsys.readouterr().err
    assert main(["bench", "--duration", "0"]) == 2
    assert main(["bench", "--bogus"]) == 2


def test_cli_list(capsys: pytest.CaptureFixture[str]) -> None:
    assert main(["bench", "--list"]) == 0
    out = capsys.readouterr().out
    assert "get_concurrent_64" in out and "raw:sqlalchemy-core-postgres" in out and "peer:cashews" in out
