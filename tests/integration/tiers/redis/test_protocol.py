"""Connections to one server (tiers/redis/protocol.py): ACL users and passwords (never logged), TLS with a CA of
the test's own (and refused without it). Each test starts its own redis-server.
"""

from __future__ import annotations

import logging
import subprocess
from pathlib import Path

import pytest

from tierstore.backends import Lease

from _tiers import OwnRedis, redis_tier

pytestmark = pytest.mark.redis


async def test_acl_user_and_password(caplog: pytest.LogCaptureFixture) -> None:
    server = OwnRedis("--user", "default", "off", "--user", "svc", "on", ">s3cr3t-pw", "~*", "&*", "+@all")
    try:
        good = await redis_tier(f"redis://svc:s3cr3t-pw@127.0.0.1:{server.port}/0")
        (lease,) = await good.get_many(["{t:1}:a"])
        assert isinstance(lease, Lease)
        await good.fill_many([("{t:1}:a", b"v", lease)], 60)
        assert await good.get_many(["{t:1}:a"]) == [b"v"]
        await good.aclose()

        caplog.set_level(logging.DEBUG, logger="tierstore")
        bad = await redis_tier(f"redis://svc:wrong-pw-123@127.0.0.1:{server.port}/0")
        (miss,) = await bad.get_many(["{t:1}:a"])  # authentication fails: a miss, never an exception
        assert isinstance(miss, Lease) and miss.token is None  # ... and one that will not be filled
        await bad.invalidate_many(["{t:1}:a"])  # kept for replay, never raised
        assert bad.stats.errors >= 1
        assert "wrong-pw-123" not in caplog.text and "wrong-pw-123" not in repr(bad)
        await bad.aclose()
    finally:
        server.stop()


@pytest.fixture(scope="module")
def tls_dir(tmp_path_factory: pytest.TempPathFactory) -> Path:
    d = tmp_path_factory.mktemp("tls")

    def run(*args: str) -> None:
        subprocess.run(["openssl", *args], cwd=d, check=True, capture_output=True)

    run("req", "-x509", "-newkey", "rsa:2048", "-nodes", "-days", "2", "-subj", "/CN=tierstore-test-ca",
        "-keyout", "ca.key", "-out", "ca.crt")
    run("req", "-newkey", "rsa:2048", "-nodes", "-subj", "/CN=127.0.0.1", "-keyout", "server.key",
        "-out", "server.csr")
    (d / "ext.cnf").write_text("subjectAltName=IP:127.0.0.1\n")
    run("x509", "-req", "-in", "server.csr", "-CA", "ca.crt", "-CAkey", "ca.key", "-CAcreateserial",
        "-days", "2", "-out", "server.crt", "-extfile", "ext.cnf")
    return d


async def test_tls(tls_dir: Path) -> None:
    server = OwnRedis(tls_dir=tls_dir)
    try:
        # A generous deadline: a TLS handshake on a loaded 2-core machine can pass the 100 ms default.
        tier = await redis_tier(f"rediss://127.0.0.1:{server.port}/0", tls_ca=str(tls_dir / "ca.crt"),
                                timeout="2s", connect_timeout="2s")
        (lease,) = await tier.get_many(["{t:1}:a"])
        assert isinstance(lease, Lease) and lease.token is not None
        await tier.fill_many([("{t:1}:a", b"v", lease)], 60)
        assert await tier.get_many(["{t:1}:a"]) == [b"v"]
        await tier.aclose()

        untrusted = await redis_tier(f"rediss://127.0.0.1:{server.port}/0")  # server cert not in the system CAs
        (miss,) = await untrusted.get_many(["{t:1}:a"])
        assert isinstance(miss, Lease) and miss.token is None and untrusted.stats.errors == 1
        await untrusted.aclose()
    finally:
        server.stop()
