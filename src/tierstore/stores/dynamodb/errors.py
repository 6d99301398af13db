"""What a :class:`~tierstore.stores.dynamodb.transport.DynamoFault` means to the store: which codes are worth
another attempt, and which tierstore error the caller sees when the attempts end.

The codes are DynamoDB's, as its error handling guide lists them:
https://docs.aws.amazon.com/amazondynamodb/latest/developerguide/Programming.Errors.html
— plus the transports' own: ``ConnectionError`` (the request never left), ``ConnectionLost`` (it may have been
applied) and ``CRC32CheckFailed`` (the reply was damaged).
"""

from __future__ import annotations

from typing import Any

from tierstore.errors import ConditionFailed, StoreError, Throttled, TierstoreError, Unsupported, ValidationError
from tierstore.stores.dynamodb.transport import DynamoFault

__all__ = ["THROTTLE_CODES", "TRANSIENT_CODES", "store_error"]

THROTTLE_CODES = frozenset({  # retried whatever the request
    "ProvisionedThroughputExceededException",
    "ThrottlingException",
    "RequestLimitExceeded",
    "TransactionInProgressException",  # the same token is still being applied: ask again later
    "LimitExceededException",  # control plane: too many table operations at once
})
TRANSIENT_CODES = frozenset({  # retried when the request is idempotent
    "InternalServerError", "InternalFailure", "ServiceUnavailable", "ServiceUnavailableException",
    "ConnectionLost", "CRC32CheckFailed",
})


def store_error(
    fault: DynamoFault, op: str, throttled: bool, attempts: int, entity: str | None, key: Any, backend: str
) -> TierstoreError:
    """The tierstore error for ``fault``, the last failure of ``op`` after ``attempts`` attempts."""
    code, msg = fault.code, fault.message
    where = {"entity": entity, "key": key, "backend": backend}
    if code == "ConditionalCheckFailedException":
        return ConditionFailed(f"the condition of {op} did not hold", **where)
    if throttled:
        return Throttled(f"{op} was throttled ({code}) {attempts} times; giving up", **where)
    if code == "ValidationException":
        return ValidationError(f"DynamoDB rejected {op}: {msg}", **where)
    if code == "UnsupportedOperation":
        return Unsupported(f"{op} is not available here: {msg}", **where)
    if code == "ResourceNotFoundException":
        return StoreError(f"{op}: table not found ({msg}); ensure_schema creates it", **where)
    if code in ("ConnectionError", "ConnectionLost"):
        return StoreError(f"{op}: cannot reach DynamoDB ({msg})", **where)
    return StoreError(f"{op} failed: {code}{': ' + msg if msg else ''}", **where)
