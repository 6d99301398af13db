"""AWS Signature Version 4 for DynamoDB's JSON requests (``POST /``), as the wire transport sends them.

The general algorithm: https://docs.aws.amazon.com/IAM/latest/UserGuide/reference_sigv-create-signed-request.html
— this is the one shape DynamoDB needs: no path, no query string, four signed headers (five with a session token),
and the signing key — four chained HMACs — derived once per day, secret and region and kept in the caller's
cache. The tests compare every signature with botocore's signer, since DynamoDB Local does not check them.
"""

from __future__ import annotations

import hashlib
import hmac

__all__ = ["sigv4_headers"]


def _signing_key(secret: str, day: str, region: str) -> bytes:
    key = hmac.digest(("AWS4" + secret).encode(), day.encode(), "sha256")
    for part in (region, "dynamodb", "aws4_request"):
        key = hmac.digest(key, part.encode(), "sha256")
    return key


def sigv4_headers(
    *, access_key: str, secret_key: str, token: str | None, region: str, host: str, target: str,
    body: bytes, amz_date: str, key_cache: dict[tuple[str, str, str], bytes] | None = None,
) -> dict[str, str]:
    """The headers of a SigV4-signed DynamoDB JSON request (``POST /``)."""
    day = amz_date[:8]
    cache_key = (secret_key, day, region)
    key = key_cache.get(cache_key) if key_cache is not None else None
    if key is None:
        key = _signing_key(secret_key, day, region)
        if key_cache is not None:
            key_cache.clear()
            key_cache[cache_key] = key
    scope = f"{day}/{region}/dynamodb/aws4_request"
    if token:
        signed = "content-type;host;x-amz-date;x-amz-security-token;x-amz-target"
        canonical_headers = (
            f"content-type:application/x-amz-json-1.0\nhost:{host}\nx-amz-date:{amz_date}\n"
            f"x-amz-security-token:{token}\nx-amz-target:{target}\n"
        )
    else:
        signed = "content-type;host;x-amz-date;x-amz-target"
        canonical_headers = (
            f"content-type:application/x-amz-json-1.0\nhost:{host}\nx-amz-date:{amz_date}\nx-amz-target:{target}\n"
        )
    canonical = f"POST\n/\n\n{canonical_headers}\n{signed}\n{hashlib.sha256(body).hexdigest()}"
    to_sign = f"AWS4-HMAC-SHA256\n{amz_date}\n{scope}\n{hashlib.sha256(canonical.encode()).hexdigest()}"
    signature = hmac.new(key, to_sign.encode(), "sha256").hexdigest()
    headers = {
        "Host": host,
        "Content-Type": "application/x-amz-json-1.0",
        "X-Amz-Date": amz_date,
        "X-Amz-Target": target,
        "Accept-Encoding": "identity",
        "Authorization": f"AWS4-HMAC-SHA256 Credential={access_key}/{scope}, SignedHeaders={signed}, "
        f"Signature={signature}",
    }
    if token:
        headers["X-Amz-Security-Token"] = token
    return headers
