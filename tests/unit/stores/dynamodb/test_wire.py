"""The wire transport's own pieces: proxies from the environment, requests as sent, CRC32-checked replies, error
replies parsed into faults — on a stand-in HTTP session, so no server is needed."""

from __future__ import annotations

import zlib
from typing import Any

import msgspec
import pytest

from tierstore.stores.dynamodb.transport import DynamoFault
from tierstore.stores.dynamodb.wire import WireTransport, _env_proxy


def test_proxy_from_environment(monkeypatch: pytest.MonkeyPatch) -> None:
    for name in ("HTTP_PROXY", "HTTPS_PROXY", "NO_PROXY", "http_proxy", "https_proxy", "no_proxy", "ALL_PROXY",
                 "all_proxy"):
        monkeypatch.delenv(name, raising=False)
    assert _env_proxy("https://dynamodb.us-east-1.amazonaws.com") is None
    monkeypatch.setenv("HTTPS_PROXY", "http://proxy:3128")
    assert _env_proxy("https://dynamodb.us-east-1.amazonaws.com") == "http://proxy:3128"
    assert _env_proxy("http://127.0.0.1:8000") is None
    monkeypatch.setenv("NO_PROXY", "amazonaws.com")
    assert _env_proxy("https://dynamodb.us-east-1.amazonaws.com") is None


class FakeResponse:
    def __init__(self, status: int, body: bytes, crc: int | None) -> None:
        self.status = status
        self._body = body
        self.headers = {} if crc is None else {"x-amz-crc32": str(crc)}

    async def __aenter__(self) -> FakeResponse:
        return self

    async def __aexit__(self, *exc: object) -> None:
        return None

    async def read(self) -> bytes:
        return self._body


class FakeHttp:
    def __init__(self, response: FakeResponse) -> None:
        self.response = response
        self.sent: list[dict[str, Any]] = []

    def post(self, url: str, *, data: bytes, headers: dict[str, str]) -> FakeResponse:
        self.sent.append({"url": url, "data": data, "headers": headers})
        return self.response


class Creds:
    async def get_frozen_credentials(self) -> Any:
        from botocore.credentials import ReadOnlyCredentials

        return ReadOnlyCredentials("a", "s", None)


def transport(response: FakeResponse) -> tuple[WireTransport, FakeHttp]:
    http = FakeHttp(response)
    return WireTransport("https://dynamodb.eu-west-1.amazonaws.com", "eu-west-1", Creds(), http), http


async def test_replies_are_crc_checked_and_errors_parsed() -> None:
    ok = b'{"Item": {"id": {"S": "x"}, "b": {"B": "AQ=="}}}'
    t, http = transport(FakeResponse(200, ok, zlib.crc32(ok)))
    assert await t.call("GetItem", {"TableName": "t", "Key": {"id": {"S": "x"}, "b": {"B": b"\x01"}}}) == {
        "Item": {"id": {"S": "x"}, "b": {"B": "AQ=="}}
    }
    sent = http.sent[0]
    assert sent["url"] == "https://dynamodb.eu-west-1.amazonaws.com/"
    assert msgspec.json.decode(sent["data"])["Key"]["b"] == {"B": "AQ=="}  # bytes travel as base64
    assert sent["headers"]["Host"] == "dynamodb.eu-west-1.amazonaws.com"
    assert sent["headers"]["X-Amz-Target"] == "DynamoDB_20120810.GetItem"
    t, _ = transport(FakeResponse(200, ok, zlib.crc32(ok) ^ 1))
    with pytest.raises(DynamoFault) as info:
        await t.call("GetItem", {})
    assert info.value.code == "CRC32CheckFailed"
    err = b'{"__type": "com.amazonaws.dynamodb.v20120810#TransactionCanceledException", "Message": "no", ' \
          b'"CancellationReasons": [{"Code": "None"}, {"Code": "ConditionalCheckFailed", "Message": "x"}]}'
    t, _ = transport(FakeResponse(400, err, None))
    with pytest.raises(DynamoFault) as info:
        await t.call("TransactWriteItems", {})
    assert info.value.code == "TransactionCanceledException" and info.value.message == "no"
    assert info.value.reasons == [{"Code": "None"}, {"Code": "ConditionalCheckFailed", "Message": "x"}]
    t, _ = transport(FakeResponse(503, b"<html>busy</html>", None))
    with pytest.raises(DynamoFault) as info:
        await t.call("GetItem", {})
    assert info.value.code == "ServiceUnavailable" and info.value.status == 503
