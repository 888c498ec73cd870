"""Trade store: each order's outcome (unresolved while NULL), and the legacy id of imports.

Revision ID: 0006
Revises: 0005
Create Date: 2026-11-25
"""

from collections.abc import Sequence

import sqlalchemy as sa

from alembic import op

revision: str = "0006"
down_revision: str | None = "0005"
branch_labels: str | Sequence[str] | None = None
depends_on: str | Sequence[str] | None = None

SCHEMA = "readmodel"


def upgrade() -> None:
    op.add_column("trade_orders", sa.Column("outcome", sa.Text(), nullable=True), schema=SCHEMA)
    op.add_column("trades", sa.Column("legacy_id", sa.Text(), nullable=True), schema=SCHEMA)
    op.create_index(
        "ix_trade_orders_unresolved",
        "trade_orders",
        ["trade_id"],
        schema=SCHEMA,
        postgresql_where=sa.text("outcome IS NULL"),
    )


def downgrade() -> None:
    op.drop_index("ix_trade_orders_unresolved", table_name="trade_orders", schema=SCHEMA)
    op.drop_column("trades", "legacy_id", schema=SCHEMA)
    op.drop_column("trade_orders", "outcome", schema=SCHEMA)
