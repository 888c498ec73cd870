"""The event timestamp index, consumer counters and the worker's status.

Revision ID: 0004
Revises: 0003
Create Date: 2026-11-24
"""

from collections.abc import Sequence

import sqlalchemy as sa

from alembic import op

revision: str = "0004"
down_revision: str | None = "0003"
branch_labels: str | Sequence[str] | None = None
depends_on: str | Sequence[str] | None = None

SCHEMA = "readmodel"
TZ = sa.DateTime(timezone=True)


def upgrade() -> None:
    op.add_column(
        "projection_tracking",
        sa.Column("replayed_since_start", sa.BigInteger(), nullable=False, server_default="0"),
        schema=SCHEMA,
    )
    op.add_column("projection_tracking", sa.Column("started_at", TZ, nullable=True), schema=SCHEMA)
    op.create_table(
        "event_index",
        sa.Column("notification_id", sa.BigInteger(), primary_key=True, autoincrement=False),
        sa.Column("recorded_at", TZ, nullable=False),
        sa.Column("topic", sa.Text(), nullable=False),
        sa.Column("originator_id", sa.Uuid(), nullable=False),
        sa.Column("originator_version", sa.BigInteger(), nullable=False),
        sa.Column("actor", sa.Text(), nullable=True),
        sa.Column("correlation_id", sa.Uuid(), nullable=True),
        sa.Column("causation_id", sa.Uuid(), nullable=True),
        schema=SCHEMA,
    )
    op.create_index("ix_event_index_recorded_at", "event_index", ["recorded_at"], schema=SCHEMA)
    op.create_index(
        "ix_event_index_originator", "event_index", ["originator_id", "originator_version"],
        schema=SCHEMA,
    )
    op.create_index("ix_event_index_correlation", "event_index", ["correlation_id"],
                    schema=SCHEMA)
    op.create_table(
        "worker_status",
        sa.Column("name", sa.Text(), primary_key=True),
        sa.Column("started_at", TZ, nullable=False),
        sa.Column("heartbeat_at", TZ, nullable=False),
        sa.Column("outages", sa.Integer(), nullable=False, server_default="0"),
        sa.Column("last_outage_at", TZ, nullable=True),
        sa.Column("last_outage_seconds", sa.Numeric(), nullable=True),
        sa.Column("last_catch_up_events", sa.BigInteger(), nullable=True),
        sa.Column("last_catch_up_seconds", sa.Numeric(), nullable=True),
        schema=SCHEMA,
    )


def downgrade() -> None:
    op.drop_table("worker_status", schema=SCHEMA)
    op.drop_table("event_index", schema=SCHEMA)
    op.drop_column("projection_tracking", "started_at", schema=SCHEMA)
    op.drop_column("projection_tracking", "replayed_since_start", schema=SCHEMA)
