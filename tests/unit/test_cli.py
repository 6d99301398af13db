"""The ``tierstore`` command outside ``bench``: ``version``, and ``reshard`` delegating to its module."""

from __future__ import annotations

import sys
import types

import pytest

import tierstore
from tierstore.cli import main


def test_cli_version(capsys: pytest.CaptureFixture[str]) -> None:
    assert main(["version"]) == 0
    assert capsys.readouterr().out.strip() == f"tierstore {tierstore.__version__}"


def test_cli_reshard_delegates(monkeypatch: pytest.MonkeyPatch) -> None:
    seen: list[list[str]] = []

    def fake_main(argv: list[str]) -> int:
        seen.append(argv)
        return 7

    fake = types.ModuleType("tierstore.reshard")
    fake.main = fake_main  # type: ignore[attr-defined]
    monkeypatch.setitem(sys.modules, "tierstore.reshard", fake)
    monkeypatch.setattr(tierstore, "reshard", fake, raising=False)
    assert main(["reshard", "--plan", "x"]) == 7
    assert seen == [["--plan", "x"]]


def test_cli_reshard_missing(monkeypatch: pytest.MonkeyPatch, capsys: pytest.CaptureFixture[str]) -> None:
    monkeypatch.setitem(sys.modules, "tierstore.reshard", None)
    monkeypatch.delattr(tierstore, "reshard", raising=False)
    assert main(["reshard"]) == 2
    assert "tierstore reshard is not available" in capsys.readouterr().err


def test_cli_dash_dash_version(capsys: pytest.CaptureFixture[str]) -> None:
    assert main(["--version"]) == 0
    assert capsys.readouterr().out.strip() == f"tierstore {tierstore.__version__}"
