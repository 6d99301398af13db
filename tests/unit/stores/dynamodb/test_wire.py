"""The wire transport's own pieces: SigV4 signatures equal botocore's, proxies from the environment, CRC32.

DynamoDB Local does not verify signatures, so the signature is checked against botocore's signer instead: the
same request, time and credentials must give the same canonical request and signature.
"""

from __future__ import annotations

import zlib
from typing import Any

import msgspec
import pytest

from tierstore.stores.dynamodb.sigv4 import sigv4_headers
from tierstore.stores.dynamodb.transport import DynamoFault
from tierstore.stores.dynamodb.wire import WireTransport, _env_proxy

pytestmark = pytest.mark.dynamodb


def botocore_signature(url: str, body: bytes, target: str, amz_date: str, token: str | None) -> tuple[str, str]:
    from botocore.auth import SigV4Auth
    from botocore.awsrequest import AWSRequest
    from botocore.credentials import Credentials

    request = AWSRequest(method="POST", url=url, data=body,
                         headers={"Content-Type": "application/x-amz-json-1.0", "X-Amz-Target": target})
    request.context["timestamp"] = amz_date
    auth = SigV4Auth(Credentials("AKIDEXAMPLE", "wJalrXUtnFEMI/K7MDENG+bPxRfiCYEXAMPLEKEY", token), "dynamodb",
                     "eu-west-1")
    auth._modify_request_before_signing(request)
    canonical = auth.canonical_request(request)
    signature = auth.signature(auth.string_to_sign(request, canonical), request)
    return signature, auth.signed_headers(auth.headers_to_sign(request))


@pytest.mark.parametrize("token", [None, "FwoGZXIvYXdzEXAMPLETOKEN//+="])
@pytest.mark.parametrize(
    ("url", "host"),
    [("https://dynamodb.eu-west-1.amazonaws.com/", "dynamodb.eu-west-1.amazonaws.com"),
     ("http://127.0.0.1:8000/", "127.0.0.1:8000")],
)
def test_signature_matches_botocore(token: str | None, url: str, host: str) -> None:
    body = msgspec.json.encode({"TableName": "t", "Key": {"id": {"S": "é/+ ="}}})
    target, amz_date = "DynamoDB_20120810.GetItem", "20261127T120000Z"
    cache: dict[tuple[str, str, str], bytes] = {}
    for _ in range(2):  # the second time with the cached signing key
        headers = sigv4_headers(
            access_key="AKIDEXAMPLE", secret_key="wJalrXUtnFEMI/K7MDENG+bPxRfiCYEXAMPLEKEY", token=token,
            region="eu-west-1", host=host, target=target, body=body, amz_date=amz_date, key_cache=cache,
        )
        expected, signed = botocore_signature(url, body, target, amz_date, token)
        auth = headers["Authorization"]
        assert auth.startswith("AWS4-HMAC-SHA256 Credential=AKIDEXAMPLE/20261127/eu-west-1/dynamodb/aws4_request, ")
        assert f"SignedHeaders={signed}," in auth
        assert auth.endswith(f"Signature={expected}")
        assert headers.get("X-Amz-Security-Token") == token
    assert len(cache) == 1


def test_signing_key_changes_with_the_day() -> None:
    cache: dict[tuple[str, str, str], bytes] = {}
    kw: dict[str, Any] = dict(access_key="a", secret_key="s", token=None, region="r", host="h", target="t", body=b"{}")
    one = sigv4_headers(amz_date="20261127T235959Z", key_cache=cache, **kw)["Authorization"]
    two = sigv4_headers(amz_date="20261128T000000Z", key_cache=cache, **kw)["Authorization"]
    assert one.split("Signature=")[1] != two.split("Signature=")[1]
    assert list(cache) == [("s", "20261128", "r")]  # one key kept: the current day's


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
