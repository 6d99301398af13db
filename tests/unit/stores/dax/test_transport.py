"""ThreadTransport: what a blocking DAX client raises becomes the fault botocore's would, and the store retries and
translates it — with stand-in clients, so no cluster (and no server) is needed."""

from __future__ import annotations

from typing import Any

import pytest

import tierstore
import tierstore.backends
from tierstore import StoreError, Throttled, Unsupported
from tierstore.retry import Backoff
from tierstore.stores.dax import DaxStore, DaxStoreConfig
from tierstore.stores.dynamodb.transport import fault_from_botocore

from _models import Customer


def test_amazon_dax_client_errors_map_like_botocore_ones() -> None:
    from amazondax.DaxError import DaxClientError, DaxErrorCode, DaxServiceError

    condition = DaxServiceError("PutItem", "condition failed", (4, 37, 38, 39, 43), "req", None, 400)
    assert fault_from_botocore(condition).code == "ConditionalCheckFailedException"
    throttled = DaxClientError("slow down", DaxErrorCode.ProvisionedThroughputExceeded)
    assert fault_from_botocore(throttled).code == "ProvisionedThroughputExceededException"
    canceled = DaxServiceError("TransactWriteItems", "canceled", (4, 37, 38, 39, 58), "req", None, 400,
                               cancellation_reasons=[{"Code": "None"}, {"Code": "ConditionalCheckFailed"}])
    fault = fault_from_botocore(canceled)
    assert fault.code == "TransactionCanceledException" and fault.reasons and len(fault.reasons) == 2
    broken = DaxServiceError.from_no_more_data_exception("GetItem", EOFError())
    assert fault_from_botocore(broken).code == "ConnectionLost"


class FailingDax:
    """Stands in for AmazonDaxClient: raises its exceptions from a worker thread."""

    def __init__(self, exc: BaseException) -> None:
        self.exc = exc
        self.calls = 0

    def get_item(self, **kwargs: Any) -> Any:
        self.calls += 1
        raise self.exc

    def create_table(self, **kwargs: Any) -> Any:
        raise NotImplementedError("Table operations are not supported on DAX.")


async def test_dax_faults_through_the_store() -> None:
    from amazondax.DaxError import DaxClientError, DaxErrorCode

    c = tierstore.backends.schema_of(Customer)
    cfg = DaxStoreConfig(endpoint="dax://x", backoff=Backoff(attempts=3, base=0.001, cap=0.002))
    throttling = FailingDax(DaxClientError("slow down", DaxErrorCode.Throttling))
    store = DaxStore(cfg, client=throttling, control_client=throttling)
    await store.open()
    try:
        with pytest.raises(Throttled):
            await store.get(c, ("x",))
        assert throttling.calls == 3
        with pytest.raises(Unsupported):  # DAX has no table operations
            await store.ensure_schema(c)
    finally:
        await store.aclose()
    store = DaxStore(cfg, client=FailingDax(OSError("connection reset")))
    await store.open()
    try:
        with pytest.raises(StoreError) as info:
            await store.get(c, ("x",))
        assert not isinstance(info.value, Unsupported) and isinstance(info.value.__cause__, OSError)
    finally:
        await store.aclose()
