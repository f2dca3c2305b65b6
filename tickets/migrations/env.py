"""Alembic environment for the store's schema.

``Store.open`` runs the migrations on its own connection (``config.attributes
["connection"]``).  Without one, ``sqlalchemy.url`` is used: online through an async
engine, offline (``--sql``) as a script for a DBA.
"""

from __future__ import annotations

import asyncio

from alembic import context
from sqlalchemy.engine import Connection
from sqlalchemy.ext.asyncio import create_async_engine

import elvwatch.tickets.notify_log  # the notifiers' outbox table (0003), on Base too
import elvwatch.tickets.poller_marks  # the pollers' marks (0006), on Base too
import elvwatch.tickets.schema  # the ticket tables, on Base too
import elvwatch.tickets.site_leases  # noqa: F401  (the sites' leases, 0006; all register on Base)
from elvwatch.tickets.store import Base

config = context.config
target_metadata = Base.metadata


def _configure(connection: Connection) -> None:
    context.configure(
        connection=connection,
        target_metadata=target_metadata,
        # SQLite cannot ALTER most things; batch mode rebuilds the table instead.
        render_as_batch=connection.dialect.name == "sqlite",
    )
    with context.begin_transaction():
        context.run_migrations()


async def _run_with_url(url: str) -> None:
    engine = create_async_engine(url)
    try:
        async with engine.begin() as conn:
            await conn.run_sync(_configure)
    finally:
        await engine.dispose()


def run() -> None:
    connection = config.attributes.get("connection")
    url = config.get_main_option("sqlalchemy.url")
    if connection is not None:
        _configure(connection)
    elif context.is_offline_mode():
        context.configure(url=url, target_metadata=target_metadata, literal_binds=True)
        with context.begin_transaction():
            context.run_migrations()
    elif url:
        asyncio.run(_run_with_url(url))
    else:
        raise RuntimeError("no connection and no sqlalchemy.url: use tickets.store.Store.open")


run()
