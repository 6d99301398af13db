"""``tierstore reshard`` on SQLite files: a dry run, then the real move, and the exit codes of bad usage."""

from __future__ import annotations

import asyncio
import json
import os
from pathlib import Path

import pytest

from tierstore.reshard import main

from _reshard import NEW, OLD, assert_exactly_once, load, open_stores, open_stores_no_truncate, shard_urls


@pytest.mark.sqlite
async def test_cli_dry_run_then_execute(tmp_path: Path, capsys: pytest.CaptureFixture[str]) -> None:
    stores = await open_stores("sqlite", tmp_path)
    expected = await load(stores, OLD, tenants=10, per=3)
    for s in stores.values():
        await s.aclose()
    args = [
        "--from", str(OLD), "--to-shards", "a,b,c",
        *(f"--store={s}={u}" for s, u in shard_urls("sqlite", tmp_path).items()),
        "--entity", "_reshard:Item", "--checkpoint", str(tmp_path / "cp.json"), "--batch-size", "7",
    ]
    assert await _run_main(args) == 0
    out = capsys.readouterr().out
    assert "would move" in out and "dry run" in out
    assert await _run_main([*args, "--execute", "--json", "--quiet"]) == 0
    report = json.loads(capsys.readouterr().out.split("\n", 1)[1])
    assert report["ok"] and report["tables"][0]["after"] == len(expected)
    stores = await open_stores_no_truncate(tmp_path)
    try:
        await assert_exactly_once(stores, NEW, expected)
    finally:
        for s in stores.values():
            await s.aclose()
    assert await _run_main(["--from", "a=0-3", "--to", "a=0-1", "--entity", "_reshard:Item"]) == 2
    assert "cannot plan" in capsys.readouterr().err


async def _run_main(argv: list[str]) -> int:
    # main() runs its own event loop (it is the CLI's entry point): give it a thread of its own.
    return await asyncio.to_thread(main, argv)


def test_cli_rejects_bad_usage(capsys: pytest.CaptureFixture[str]) -> None:
    assert main(["--from", "a=0-1", "--to", "a=0-1", "--entity", "nope"]) == 2
    assert "MODULE:CLASS" in capsys.readouterr().err
    assert main(["--from", "a=0-1", "--to", "a=0-1", "--entity", "_reshard:Item", "--store", "x"]) == 2
    with pytest.raises(SystemExit):
        main(["--bogus"])
    assert os.environ.get("TIERSTORE_NEVER_SET") is None
