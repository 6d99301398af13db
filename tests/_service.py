"""The reference service as its image runs it: the Dockerfile's instructions, and a launcher that starts the
Dockerfile's CMD in a folder laid out like the image's WORKDIR (host and port from UVICORN_HOST/UVICORN_PORT)."""

from __future__ import annotations

import json
import os
import pathlib
import re
import shutil
import socket
import subprocess
import sys
import time

import httpx

ROOT = pathlib.Path(__file__).resolve().parents[1]
SERVICE = ROOT / "examples" / "service"
DOCKERFILE = SERVICE / "Dockerfile"
BIN = pathlib.Path(sys.executable).parent


def dockerfile_instructions() -> list[tuple[str, str]]:
    """``(INSTRUCTION, arguments)`` of the Dockerfile, continuation lines joined, comments dropped."""
    out: list[tuple[str, str]] = []
    pending = ""
    for raw in DOCKERFILE.read_text().splitlines():
        line = raw.strip()
        if not line or line.startswith("#"):
            continue
        pending = f"{pending} {line[:-1].strip()}" if line.endswith("\\") else f"{pending} {line}"
        if line.endswith("\\"):
            continue
        word, _, rest = pending.strip().partition(" ")
        out.append((word.upper(), rest.strip()))
        pending = ""
    return out


def image_cmd() -> list[str]:
    (cmd,) = [json.loads(args) for word, args in dockerfile_instructions() if word == "CMD"][-1:]
    return list(cmd)


def image_healthcheck() -> list[str]:
    (args,) = [a for word, a in dockerfile_instructions() if word == "HEALTHCHECK"][-1:]
    return list(json.loads(args[args.index("CMD") + 3 :].strip()))


def image_env() -> dict[str, str]:
    env: dict[str, str] = {}
    for word, args in dockerfile_instructions():
        if word == "ENV":
            env.update(dict(re.findall(r"(\w+)=(\S+)", args)))
    return env


def free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return int(s.getsockname()[1])


class Service:
    """One service process started with the image's CMD (``uvicorn`` resolved in this interpreter's folder)."""

    def __init__(self, tmp: pathlib.Path, env: dict[str, str]) -> None:
        self.port = free_port()
        self.url = f"http://127.0.0.1:{self.port}"
        base = {k: v for k, v in os.environ.items() if not k.startswith(("TIERSTORE_", "UVICORN_"))}
        image = image_env()
        self.env = {
            **base,
            "PATH": f"{BIN}{os.pathsep}{os.environ.get('PATH', '')}",
            "PYTHONUNBUFFERED": "1",
            "UVICORN_HOST": "127.0.0.1",  # the image's 0.0.0.0, narrowed to loopback for tests
            "UVICORN_PORT": str(self.port),
            "TIERSTORE_STORE": f"sqlite+aiosqlite:///{tmp}/service.db",
            "TIERSTORE_CACHE": image["TIERSTORE_CACHE"],
            **env,
        }
        cmd = image_cmd()
        exe = shutil.which(cmd[0], path=str(BIN))
        assert exe is not None, f"{cmd[0]} is not installed next to {sys.executable}"
        self.log = tmp / f"service-{self.port}.log"
        self._log = self.log.open("wb")
        self.proc = subprocess.Popen(
            [exe, *cmd[1:]], cwd=SERVICE, env=self.env, stdout=self._log, stderr=subprocess.STDOUT
        )
        self.client = httpx.Client(base_url=self.url, timeout=10.0)

    def wait_ready(self, deadline: float = 60.0) -> Service:
        """Until ``/healthz`` answers (or the process exits, or the deadline passes)."""
        end = time.monotonic() + deadline
        while time.monotonic() < end:
            if self.proc.poll() is not None:
                raise AssertionError(f"the service exited with {self.proc.returncode}:\n{self.output()}")
            try:
                if self.client.get("/healthz").status_code == 200:
                    return self
            except httpx.TransportError:
                pass
            time.sleep(0.1)
        raise AssertionError(f"the service did not answer within {deadline}s:\n{self.output()}")

    def output(self) -> str:
        self._log.flush()
        return self.log.read_text(errors="replace")[-4000:]

    def stop(self) -> None:
        self.client.close()
        if self.proc.poll() is None:
            self.proc.terminate()
            try:
                self.proc.wait(timeout=30)
            except subprocess.TimeoutExpired:
                self.proc.kill()
                self.proc.wait(timeout=10)
        self._log.close()
