"""``tierstore reshard`` as a new user runs it: the console script, from the folder that holds the service's
module (no PYTHONPATH), a dry run that writes nothing — not even the new shard's SQLite file."""

from __future__ import annotations

import asyncio
import os
import subprocess
import sys
import textwrap
from pathlib import Path

import pytest

import tierstore

SERVICE = textwrap.dedent('''
    from tierstore import Entity, PartitionKey, SortKey

    class Note(Entity, table="notes"):
        user: PartitionKey[str]
        n: SortKey[int]
        text: str
''')


def _cli(cwd: Path, *args: str) -> subprocess.CompletedProcess[str]:
    env = {k: v for k, v in os.environ.items() if k != "PYTHONPATH"}
    script = Path(sys.executable).parent / "tierstore"
    return subprocess.run([str(script), *args], cwd=cwd, env=env, capture_output=True, text=True, timeout=120)


@pytest.mark.sqlite
def test_dry_run_imports_from_cwd_and_writes_nothing(tmp_path: Path) -> None:
    (tmp_path / "notes_service.py").write_text(SERVICE)
    sys.path.insert(0, str(tmp_path))
    try:
        from notes_service import Note  # type: ignore[import-not-found]

        async def seed() -> None:
            async with tierstore.connect(f"sqlite+aiosqlite:///{tmp_path}/a.db", []) as db:
                await db.repository(Note).put_many([Note(f"u{i}", 1, "x") for i in range(40)])

        asyncio.run(seed())
    finally:
        sys.path.remove(str(tmp_path))
        sys.modules.pop("notes_service", None)
    before = sorted(p.name for p in tmp_path.iterdir())
    result = _cli(
        tmp_path, "reshard", "--from", "a=0-1023", "--to-shards", "a,b",
        "--store", "a=sqlite+aiosqlite:///a.db", "--store", "b=sqlite+aiosqlite:///b.db",
        "--entity", "notes_service:Note", "--batch-size", "16", "--quiet",
    )
    assert result.returncode == 0, result.stdout + result.stderr
    assert "dry run" in result.stdout and "would move" in result.stdout
    assert not (tmp_path / "b.db").exists()
    assert not (tmp_path / ".tierstore-reshard.json").exists()
    after = sorted(p.name for p in tmp_path.iterdir() if p.name != "__pycache__")
    assert after == [n for n in before if n != "__pycache__"]


@pytest.mark.sqlite
def test_dry_run_of_a_source_without_its_file_creates_none(tmp_path: Path) -> None:
    (tmp_path / "notes_service.py").write_text(SERVICE)
    result = _cli(
        tmp_path, "reshard", "--from", "a=0-1023", "--to-shards", "a,b",
        "--store", "a=sqlite+aiosqlite:///a.db", "--store", "b=sqlite+aiosqlite:///b.db",
        "--entity", "notes_service:Note", "--quiet",
    )
    assert result.returncode == 0, result.stdout + result.stderr
    assert not (tmp_path / "a.db").exists() and not (tmp_path / "b.db").exists()


def test_batch_size_and_entity_have_help(tmp_path: Path) -> None:
    result = _cli(tmp_path, "reshard", "--help")
    assert result.returncode == 0
    text = " ".join(result.stdout.split())
    assert "--batch-size N items read, written or deleted per store request" in text
    assert "imported from the working directory" in text
