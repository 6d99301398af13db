"""The SQL store of record (SQLite, PostgreSQL, MariaDB/MySQL)."""

from tierstore.stores.sql.store import KEY_LENGTH, SqlStore, SqlStoreConfig, metadata_for, table_for

__all__ = ["KEY_LENGTH", "SqlStore", "SqlStoreConfig", "metadata_for", "table_for"]
