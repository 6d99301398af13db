"""SigV4 signatures of DynamoDB requests equal botocore's.

DynamoDB Local does not verify signatures, so the signature is checked against botocore's signer instead: the
same request, time and credentials must give the same canonical request and signature.
"""

from __future__ import annotations

from typing import Any

import msgspec
import pytest

from tierstore.stores.dynamodb.sigv4 import sigv4_headers


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
