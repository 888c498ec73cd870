"""A time to flat in milliseconds fits 64 bits: an emergency that took more than 24.8 days to
reach flat (a latch left on over a long venue outage, or a clock step) overflowed the 32-bit
column and wedged the policy view and the dashboard on a valid event.

Revision ID: 0012
Revises: 0011
Create Date: 2026-11-30
"""

from collections.abc import Sequence

import sqlalchemy as sa

from alembic import op

revision: str = "0012"
down_revision: str | None = "0011"
branch_labels: str | Sequence[str] | None = None
depends_on: str | Sequence[str] | None = None

SCHEMA = "readmodel"
TABLES = ("emergency_view", "incidents")


def upgrade() -> None:
    for table in TABLES:
        op.alter_column(
            table,
            "time_to_flat_ms",
            type_=sa.BigInteger(),
            existing_type=sa.Integer(),
            existing_nullable=True,
            schema=SCHEMA,
        )


def downgrade() -> None:
    for table in TABLES:
        op.alter_column(
            table,
            "time_to_flat_ms",
            type_=sa.Integer(),
            existing_type=sa.BigInteger(),
            existing_nullable=True,
            schema=SCHEMA,
        )
