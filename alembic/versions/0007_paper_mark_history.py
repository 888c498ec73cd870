"""Paper venue: the history of its marks (the price series the volatility regime reads).

Revision ID: 0007
Revises: 0006
Create Date: 2026-11-25
"""

from collections.abc import Sequence

import sqlalchemy as sa

from alembic import op

revision: str = "0007"
down_revision: str | None = "0006"
branch_labels: str | Sequence[str] | None = None
depends_on: str | Sequence[str] | None = None

SCHEMA = "paper"


def upgrade() -> None:
    op.create_table(
        "mark_history",
        sa.Column("id", sa.BigInteger(), primary_key=True, autoincrement=True),
        sa.Column("symbol", sa.Text(), nullable=False),
        sa.Column("price", sa.Numeric(), nullable=False),
        sa.Column("at", sa.DateTime(timezone=True), nullable=False),
        schema=SCHEMA,
    )
    op.create_index(
        "ix_mark_history_symbol_id", "mark_history", ["symbol", "id"], schema=SCHEMA
    )
    # The marks a venue already has are the first points of its history.
    op.execute(
        "INSERT INTO paper.mark_history (symbol, price, at) "
        "SELECT symbol, price, updated_at FROM paper.marks ORDER BY updated_at"
    )


def downgrade() -> None:
    op.drop_index("ix_mark_history_symbol_id", table_name="mark_history", schema=SCHEMA)
    op.drop_table("mark_history", schema=SCHEMA)
