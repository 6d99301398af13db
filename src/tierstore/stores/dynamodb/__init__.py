"""The DynamoDB store of record (``dynamodb://``), on aioboto3 — and, through :mod:`tierstore.stores.dax`, on DAX.

One job per file:

* :mod:`~tierstore.stores.dynamodb.config` — ``DynamoStoreConfig``, from keywords or a URL.
* :mod:`~tierstore.stores.dynamodb.transport` — the transport seam (``Transport``, ``DynamoFault``), the aioboto3
  client as a transport, and opening that client.
* :mod:`~tierstore.stores.dynamodb.wire` — the default data-plane transport: DynamoDB's JSON protocol over aiohttp.
* :mod:`~tierstore.stores.dynamodb.sigv4` — the SigV4 signature of those requests.
* :mod:`~tierstore.stores.dynamodb.codec` — msgspec Structs <-> AttributeValue maps, and composite key layouts.
* :mod:`~tierstore.stores.dynamodb.limits` — DynamoDB's limits, checked before a request is sent.
* :mod:`~tierstore.stores.dynamodb.errors` — which faults are retried, and the tierstore error of each.
* :mod:`~tierstore.stores.dynamodb.base` — lifecycle, per-table state and the retrying request loop.
* :mod:`~tierstore.stores.dynamodb.tables` — the control plane: tables, indexes, TTL.
* :mod:`~tierstore.stores.dynamodb.batch` — BatchGetItem/BatchWriteItem in chunks, with unprocessed-key retries.
* :mod:`~tierstore.stores.dynamodb.transactions` — ``transact`` on TransactWriteItems.
* :mod:`~tierstore.stores.dynamodb.store` — ``DynamoStore``: reads, queries, writes, versions, coalescing.
"""

from tierstore.stores.dynamodb.config import DynamoStoreConfig
from tierstore.stores.dynamodb.store import DynamoStore
from tierstore.stores.dynamodb.transport import BotocoreTransport, DynamoFault, Transport
from tierstore.stores.dynamodb.wire import WireTransport

__all__ = ["BotocoreTransport", "DynamoFault", "DynamoStore", "DynamoStoreConfig", "Transport", "WireTransport"]
