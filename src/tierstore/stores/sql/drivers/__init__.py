"""Statement execution for the SQL store: one small driver per database client.

SQLAlchemy is the schema, DDL, dialect and pooling layer; statements are compiled by it once per table
(:mod:`tierstore.stores.sql.statements`) and executed by a driver on the client's own connection, which skips
SQLAlchemy's per-call work (about half the cost of a primary-key read on PostgreSQL and MariaDB).

- :mod:`~tierstore.stores.sql.drivers.base`: the driver interface, the steps of an operation, error wrapping.
- :mod:`~tierstore.stores.sql.drivers.pool`: held pooled connections and the retry/abort rules the network
  drivers share.
- :mod:`~tierstore.stores.sql.drivers.postgres` (asyncpg), :mod:`~tierstore.stores.sql.drivers.mysql`
  (aiomysql), :mod:`~tierstore.stores.sql.drivers.sqlite` (stdlib ``sqlite3``).
"""
