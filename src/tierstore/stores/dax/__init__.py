"""The DAX store."""

from tierstore.stores.dax.store import DaxStore, DaxStoreConfig, ThreadTransport

__all__ = ["DaxStore", "DaxStoreConfig", "ThreadTransport"]
