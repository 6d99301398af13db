"""The SQL store of record on SQLite, PostgreSQL and MariaDB/MySQL: ``SqlStore``, ``SqlStoreConfig`` and
``metadata_for``.

SQLAlchemy 2 Core generates the tables (:func:`metadata_for`, usable as Alembic's ``target_metadata``),
compiles every statement once per table and dialect, and pools the connections; the statements run on the
driver connection (asyncpg, aiomysql, sqlite3) to skip SQLAlchemy's per-call cost.

- :mod:`~tierstore.stores.sql.config`: ``SqlStoreConfig``, the URL and its parameters.
- :mod:`~tierstore.stores.sql.tables`: column kinds, tables and indexes, ``metadata_for``.
- :mod:`~tierstore.stores.sql.rows`: entity ↔ column values, the SQL limits, the row decoder.
- :mod:`~tierstore.stores.sql.statements`: ``Plan``, the statements of one table compiled for one dialect.
- :mod:`~tierstore.stores.sql.operations`: writes as generators of statements, and key batching.
- :mod:`~tierstore.stores.sql.store`: ``SqlStore``.
- :mod:`~tierstore.stores.sql.drivers`: statement execution, one driver per database client.
"""

from tierstore.stores.sql.config import SqlStoreConfig
from tierstore.stores.sql.store import SqlStore
from tierstore.stores.sql.tables import KEY_LENGTH, metadata_for, table_for

__all__ = ["KEY_LENGTH", "SqlStore", "SqlStoreConfig", "metadata_for", "table_for"]
