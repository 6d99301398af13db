"""The first thing a new user does: a fresh virtual environment, ``pip install`` of this project, and the
README quickstart run as a script — twice, in the same folder, so the second run finds the first run's
SQLite file (``tierstore.db``) and must pass all the same. Also checks the installed metadata a package
index shows (license, project URLs, Python versions) and the console script."""

from __future__ import annotations

import os
import pathlib
import re
import subprocess
import sys

ROOT = pathlib.Path(__file__).resolve().parents[2]


def _quickstart() -> str:
    readme = (ROOT / "README.md").read_text()
    section = readme.split("## Quickstart", 1)[1]
    match = re.search(r"^```python\n(.*?)^```", section, re.DOTALL | re.MULTILINE)
    assert match is not None, "README has no quickstart block"
    return match.group(1)


def _run(*args: str | pathlib.Path, cwd: pathlib.Path) -> subprocess.CompletedProcess[str]:
    env = {k: v for k, v in os.environ.items() if k not in ("PYTHONPATH", "VIRTUAL_ENV", "PYTHONHOME")}
    return subprocess.run([str(a) for a in args], cwd=cwd, env=env, capture_output=True, text=True, timeout=600)


def test_fresh_venv_install_and_quickstart_twice(tmp_path: pathlib.Path) -> None:
    venv = tmp_path / "venv"
    made = _run(sys.executable, "-m", "venv", venv, cwd=tmp_path)
    assert made.returncode == 0, made.stderr
    python = venv / "bin" / "python"
    installed = _run(python, "-m", "pip", "install", "-qq", "--disable-pip-version-check", ROOT, cwd=tmp_path)
    assert installed.returncode == 0, installed.stdout + installed.stderr

    work = tmp_path / "service"
    work.mkdir()
    (work / "quickstart.py").write_text(_quickstart())
    for run in (1, 2):
        result = _run(python, "quickstart.py", cwd=work)
        assert result.returncode == 0, f"run {run}:\n{result.stdout}{result.stderr}"
    assert (work / "tierstore.db").exists()  # the second run really read the first run's file

    meta = _run(python, "-c", "import importlib.metadata as m; print(m.metadata('tierstore').as_string())", cwd=work)
    text = meta.stdout
    assert "License-Expression: Apache-2.0" in text and "License-File: LICENSE" in text, text
    assert "Project-URL: Repository," in text and "Programming Language :: Python :: 3.13" in text, text
    version = _run(venv / "bin" / "tierstore", "--version", cwd=work)
    assert version.returncode == 0 and version.stdout.startswith("tierstore "), version.stdout + version.stderr
