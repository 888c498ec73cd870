"""Paper venue: each symbol's leverage, set through the port and used for its margin.

Revision ID: 0014
Revises: 0013
Create Date: 2026-11-30
"""

from collections.abc import Sequence

import sqlalchemy as sa

from alembic import op

revision: str = "0014"
down_revision: str | None = "0013"
branch_labels: str | Sequence[str] | None = None
depends_on: str | Sequence[str] | None = None

SCHEMA = "paper"


def upgrade() -> None:
    op.create_table(
        "leverage",
        sa.Column("symbol", sa.Text(), primary_key=True),
        sa.Column("leverage", sa.Numeric(), nullable=False),
        sa.Column("updated_at", sa.DateTime(timezone=True), nullable=False),
        schema=SCHEMA,
    )


def downgrade() -> None:
    op.drop_table("leverage", schema=SCHEMA)
