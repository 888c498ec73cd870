"""A read model or process manager that cannot apply an event says which one, and since when.

Revision ID: 0010
Revises: 0009
Create Date: 2026-11-30
"""

from collections.abc import Sequence

import sqlalchemy as sa

from alembic import op

revision: str = "0010"
down_revision: str | None = "0009"
branch_labels: str | Sequence[str] | None = None
depends_on: str | Sequence[str] | None = None

SCHEMA = "readmodel"
COLUMNS = ("failing_event_id", "failing_topic", "failing_since", "failures")


def upgrade() -> None:
    table = "projection_tracking"
    op.add_column(table, sa.Column("failing_event_id", sa.BigInteger(), nullable=True), schema=SCHEMA)
    op.add_column(table, sa.Column("failing_topic", sa.Text(), nullable=True), schema=SCHEMA)
    op.add_column(
        table, sa.Column("failing_since", sa.DateTime(timezone=True), nullable=True), schema=SCHEMA
    )
    op.add_column(
        table,
        sa.Column("failures", sa.BigInteger(), nullable=False, server_default="0"),
        schema=SCHEMA,
    )


def downgrade() -> None:
    for column in reversed(COLUMNS):
        op.drop_column("projection_tracking", column, schema=SCHEMA)
