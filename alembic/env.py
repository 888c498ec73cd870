"""Alembic environment: tradecore passes an open connection; the alembic CLI passes a URL."""

from __future__ import annotations

import os

from sqlalchemy import create_engine
from sqlalchemy.engine import Connection

from adapters.migrations import grant_app_role, refuse_planted_code
from adapters.paper.tables import PAPER_SCHEMA
from adapters.paper.tables import metadata as paper_metadata
from alembic import context
from projections.tables import READ_MODEL_SCHEMA, metadata

config = context.config


def include_name(name: str | None, type_: str, parent_names: object) -> bool:
    # Autogenerate compares only the read-model schema: the event store's DDL mirrors the
    # eventsourcing library's and is checked against the library itself by a test.
    if type_ == "schema":
        return name in (READ_MODEL_SCHEMA, PAPER_SCHEMA)
    return True


def run(connection: Connection) -> None:
    context.configure(
        connection=connection,
        target_metadata=[metadata, paper_metadata],
        include_schemas=True,
        include_name=include_name,
        version_table_schema="public",
        transaction_per_migration=False,
    )
    with context.begin_transaction():
        refuse_planted_code(connection)
        context.run_migrations()
        # Every upgrade ends with the app role's rights as the code needs them, including
        # on tables a migration just created.
        grant_app_role(connection)


connection = config.attributes.get("connection")
if connection is not None:
    run(connection)
else:
    url = config.get_main_option("sqlalchemy.url") or os.environ["TRADECORE_DATABASE_URL"]
    engine = create_engine(url.replace("postgresql://", "postgresql+psycopg://", 1))
    with engine.begin() as conn:
        run(conn)
