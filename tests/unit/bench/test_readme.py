"""benchmarks/README.md's Python example runs."""

from __future__ import annotations

from typing import Any

import pytest


def test_benchmarks_readme_examples_run(monkeypatch: pytest.MonkeyPatch, tmp_path: Any) -> None:
    import pathlib
    import re
    import threading

    readme = pathlib.Path(__file__).resolve().parents[3] / "benchmarks" / "README.md"
    blocks = re.findall(r"^```python\n(.*?)^```", readme.read_text(), re.DOTALL | re.MULTILINE)
    assert blocks
    monkeypatch.chdir(tmp_path)
    errors: list[BaseException] = []

    def exec_blocks() -> None:  # the example calls asyncio.run(): give it a thread without a running loop
        namespace: dict[str, Any] = {"__name__": "bench_readme"}
        try:
            for i, block in enumerate(blocks):
                exec(compile(block, f"benchmarks/README.md[block {i}]", "exec"), namespace)  # noqa: S102
        except BaseException as exc:
            errors.append(exc)

    worker = threading.Thread(target=exec_blocks)
    worker.start()
    worker.join(120)
    assert not worker.is_alive()
    if errors:
        raise errors[0]
