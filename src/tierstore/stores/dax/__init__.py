"""The DAX store (``dax://``, ``daxs://``): the DynamoDB store with a DAX cluster as its data plane.

* :mod:`~tierstore.stores.dax.config` — ``DaxStoreConfig``, from keywords or a URL.
* :mod:`~tierstore.stores.dax.transport` — ``ThreadTransport``: a blocking client on a thread pool.
* :mod:`~tierstore.stores.dax.store` — ``DaxStore``: opening the DAX client; the rest is ``DynamoStore``'s.
"""

from tierstore.stores.dax.config import DaxStoreConfig
from tierstore.stores.dax.store import DaxStore
from tierstore.stores.dax.transport import ThreadTransport

__all__ = ["DaxStore", "DaxStoreConfig", "ThreadTransport"]
