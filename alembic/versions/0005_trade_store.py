"""The open-trade store: trades and their orders, a read model of the Trade aggregates.

Revision ID: 0005
Revises: 0004
Create Date: 2026-11-24
"""

from collections.abc import Sequence

import sqlalchemy as sa

from alembic import op

revision: str = "0005"
down_revision: str | None = "0004"
branch_labels: str | Sequence[str] | None = None
depends_on: str | Sequence[str] | None = None

SCHEMA = "readmodel"
TZ = sa.DateTime(timezone=True)


def upgrade() -> None:
    op.create_table(
        "trades",
        sa.Column("trade_id", sa.Uuid(), primary_key=True),
        sa.Column("symbol", sa.Text(), nullable=False),
        sa.Column("side", sa.Text(), nullable=False),
        sa.Column("status", sa.Text(), nullable=False),
        sa.Column("intended_quantity", sa.Numeric(), nullable=False),
        sa.Column("leverage", sa.Numeric(), nullable=False),
        sa.Column("entry_quantity", sa.Numeric(), nullable=False),
        sa.Column("entry_cost", sa.Numeric(), nullable=False),
        sa.Column("exit_quantity", sa.Numeric(), nullable=False),
        sa.Column("fees", sa.Numeric(), nullable=False),
        sa.Column("stop_loss", sa.Numeric(), nullable=True),
        sa.Column("take_profit", sa.Numeric(), nullable=True),
        sa.Column("source", sa.Text(), nullable=False),
        sa.Column("opened_at", TZ, nullable=False),
        sa.Column("closed_at", TZ, nullable=True),
        sa.Column("close_reason", sa.Text(), nullable=True),
        sa.Column("realized_pnl", sa.Numeric(), nullable=True),
        sa.Column("version", sa.Integer(), nullable=False),
        schema=SCHEMA,
    )
    op.create_index("ix_trades_symbol_opened", "trades", ["symbol", "opened_at"], schema=SCHEMA)
    op.create_index("ix_trades_status", "trades", ["status"], schema=SCHEMA)
    op.create_table(
        "trade_orders",
        sa.Column("client_order_id", sa.Text(), primary_key=True),
        sa.Column("trade_id", sa.Uuid(), nullable=False),
        sa.Column("side", sa.Text(), nullable=False),
        sa.Column("quantity", sa.Numeric(), nullable=False),
        sa.Column("filled", sa.Numeric(), nullable=False),
        sa.Column("reduce_only", sa.Boolean(), nullable=False),
        schema=SCHEMA,
    )
    op.create_index("ix_trade_orders_trade", "trade_orders", ["trade_id"], schema=SCHEMA)


def downgrade() -> None:
    op.drop_table("trade_orders", schema=SCHEMA)
    op.drop_table("trades", schema=SCHEMA)
