"""The floors and peers: the same work as a tierstore system, written directly on each client library.

One module per client family — :mod:`~tierstore.bench.floors.sql_core` (SQLAlchemy Core),
:mod:`~tierstore.bench.floors.sql_postgres` (asyncpg), :mod:`~tierstore.bench.floors.sql_mysql` (aiomysql),
:mod:`~tierstore.bench.floors.sql_sqlite` (sqlite3, aiosqlite), :mod:`~tierstore.bench.floors.cache` (dicts,
Redis, Memcached, and the aiocache and cashews peers), :mod:`~tierstore.bench.floors.dynamodb` (aioboto3) —
with what the SQL floors share in :mod:`~tierstore.bench.floors.sql`, the hand-written join base in
:mod:`~tierstore.bench.floors.join`, and their registration in :mod:`~tierstore.bench.floors.systems`.
Importing this package imports none of them.
"""
