"""Alembic environment for tables described by tierstore entities (see docs/migrations.md).

- ``target_metadata`` is ``metadata_for(*ENTITIES, dialect=connection.dialect)``: plain SQLAlchemy types of
  the database being migrated (MariaDB told apart from MySQL), so the revisions autogenerate writes need
  only ``sqlalchemy`` and ``alembic`` to run, never tierstore.
- Only the entities' tables are compared: other tables in the database are not Alembic's to drop here.
- Columns and indexes found only in the database are left alone: they belong to whoever made them.
- Logging is left to the caller (no ``fileConfig``), so running migrations from tests or a service keeps
  its loggers.
"""

from __future__ import annotations

import asyncio
import os
from typing import Any

import sqlalchemy as sa
from alembic import context
from models import ENTITIES  # your service's entities
from sqlalchemy.ext.asyncio import create_async_engine

from tierstore.stores.sql import metadata_for

config = context.config
URL = os.environ.get("TIERSTORE_MIGRATIONS_URL") or config.get_main_option("sqlalchemy.url") or ""
VERSION_TABLE = config.get_main_option("version_table") or "alembic_version"


def _options(metadata: sa.MetaData) -> dict[str, Any]:
    def include_name(name: str | None, type_: str, parent_names: Any) -> bool:
        return type_ != "table" or name in metadata.tables

    def include_object(obj: Any, name: str | None, type_: str, reflected: bool, compare_to: Any) -> bool:
        # In the database but not in the entities (a column, an index, a foreign key…): not tierstore's, never
        # dropped.
        return not (reflected and compare_to is None)

    return {
        "target_metadata": metadata,
        "include_name": include_name,
        "include_object": include_object,
        "compare_type": True,
        "version_table": VERSION_TABLE,
    }


def run_migrations_offline() -> None:
    """``alembic upgrade --sql``: the SQL of the migrations, for the dialect the URL names."""
    url = sa.make_url(URL)
    context.configure(url=url, literal_binds=True, **_options(metadata_for(*ENTITIES, dialect=url.get_backend_name())))
    with context.begin_transaction():
        context.run_migrations()


def _run(connection: sa.Connection) -> None:
    context.configure(connection=connection, **_options(metadata_for(*ENTITIES, dialect=connection.dialect)))
    with context.begin_transaction():
        context.run_migrations()


async def run_migrations_online() -> None:
    engine = create_async_engine(URL, poolclass=sa.pool.NullPool)
    try:
        async with engine.connect() as connection:
            await connection.run_sync(_run)
    finally:
        await engine.dispose()


if context.is_offline_mode():
    run_migrations_offline()
else:
    asyncio.run(run_migrations_online())
