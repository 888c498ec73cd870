"""The paper venue's own tables, and the flatten results on the emergency view.

Revision ID: 0003
Revises: 0002
Create Date: 2026-11-24
"""

from collections.abc import Sequence

import sqlalchemy as sa

from alembic import op

revision: str = "0003"
down_revision: str | None = "0002"
branch_labels: str | Sequence[str] | None = None
depends_on: str | Sequence[str] | None = None

PAPER = "paper"
TZ = sa.DateTime(timezone=True)


def upgrade() -> None:
    op.add_column("emergency_view", sa.Column("flat", sa.Boolean(), nullable=True),
                  schema="readmodel")
    op.add_column("emergency_view", sa.Column("positions_closed", sa.Integer(), nullable=True),
                  schema="readmodel")
    op.add_column("emergency_view", sa.Column("orders_canceled", sa.Integer(), nullable=True),
                  schema="readmodel")
    op.add_column("emergency_view", sa.Column("time_to_flat_ms", sa.Integer(), nullable=True),
                  schema="readmodel")
    op.add_column("emergency_view", sa.Column("flatten_attempts", sa.Integer(), nullable=True),
                  schema="readmodel")
    op.add_column("emergency_view", sa.Column("forced_reset", sa.Boolean(), nullable=True),
                  schema="readmodel")

    op.execute(f"CREATE SCHEMA IF NOT EXISTS {PAPER}")
    op.create_table(
        "account",
        sa.Column("id", sa.Text(), primary_key=True),
        sa.Column("currency", sa.Text(), nullable=False),
        sa.Column("wallet", sa.Numeric(), nullable=False),
        sa.Column("position_mode", sa.Text(), nullable=False),
        sa.Column("leverage", sa.Numeric(), nullable=False),
        sa.Column("taker_fee", sa.Numeric(), nullable=False),
        sa.Column("slippage", sa.Numeric(), nullable=False),
        sa.Column("updated_at", TZ, nullable=False),
        schema=PAPER,
    )
    op.create_table(
        "marks",
        sa.Column("symbol", sa.Text(), primary_key=True),
        sa.Column("price", sa.Numeric(), nullable=False),
        sa.Column("updated_at", TZ, nullable=False),
        schema=PAPER,
    )
    op.create_table(
        "positions",
        sa.Column("symbol", sa.Text(), primary_key=True),
        sa.Column("side", sa.Text(), primary_key=True),
        sa.Column("quantity", sa.Numeric(), nullable=False),
        sa.Column("entry_price", sa.Numeric(), nullable=False),
        sa.Column("updated_at", TZ, nullable=False),
        schema=PAPER,
    )
    op.create_table(
        "orders",
        sa.Column("id", sa.BigInteger(), primary_key=True, autoincrement=True),
        sa.Column("client_order_id", sa.Text(), nullable=False, unique=True),
        sa.Column("symbol", sa.Text(), nullable=False),
        sa.Column("side", sa.Text(), nullable=False),
        sa.Column("type", sa.Text(), nullable=False),
        sa.Column("quantity", sa.Numeric(), nullable=False),
        sa.Column("filled", sa.Numeric(), nullable=False),
        sa.Column("price", sa.Numeric(), nullable=True),
        sa.Column("stop_price", sa.Numeric(), nullable=True),
        sa.Column("average_price", sa.Numeric(), nullable=True),
        sa.Column("status", sa.Text(), nullable=False),
        sa.Column("reduce_only", sa.Boolean(), nullable=False),
        sa.Column("position_side", sa.Text(), nullable=True),
        sa.Column("created_at", TZ, nullable=False),
        sa.Column("updated_at", TZ, nullable=False),
        schema=PAPER,
    )
    op.create_table(
        "fills",
        sa.Column("id", sa.BigInteger(), primary_key=True, autoincrement=True),
        sa.Column("order_id", sa.BigInteger(), sa.ForeignKey(f"{PAPER}.orders.id"),
                  nullable=False),
        sa.Column("symbol", sa.Text(), nullable=False),
        sa.Column("side", sa.Text(), nullable=False),
        sa.Column("quantity", sa.Numeric(), nullable=False),
        sa.Column("price", sa.Numeric(), nullable=False),
        sa.Column("fee", sa.Numeric(), nullable=False),
        sa.Column("realized_pnl", sa.Numeric(), nullable=False),
        sa.Column("created_at", TZ, nullable=False),
        schema=PAPER,
    )
    op.create_table(
        "requests",
        sa.Column("id", sa.BigInteger(), primary_key=True, autoincrement=True),
        sa.Column("client_order_id", sa.Text(), nullable=False),
        sa.Column("symbol", sa.Text(), nullable=False),
        sa.Column("side", sa.Text(), nullable=False),
        sa.Column("quantity", sa.Numeric(), nullable=False),
        sa.Column("reduce_only", sa.Boolean(), nullable=False),
        sa.Column("outcome", sa.Text(), nullable=False),
        sa.Column("received_at", TZ, nullable=False),
        schema=PAPER,
    )
    op.create_table(
        "faults",
        sa.Column("id", sa.Text(), primary_key=True),
        sa.Column("error_rate", sa.Numeric(), nullable=False),
        sa.Column("timeout_rate", sa.Numeric(), nullable=False),
        sa.Column("partial_fill_rate", sa.Numeric(), nullable=False),
        sa.Column("rate_limit_rate", sa.Numeric(), nullable=False),
        sa.Column("reject_rate", sa.Numeric(), nullable=False),
        sa.Column("seed", sa.BigInteger(), nullable=False),
        sa.Column("draws", sa.BigInteger(), nullable=False),
        sa.Column("updated_at", TZ, nullable=False),
        schema=PAPER,
    )


def downgrade() -> None:
    for table in ("faults", "requests", "fills", "orders", "positions", "marks", "account"):
        op.drop_table(table, schema=PAPER)
    for column in ("forced_reset", "flatten_attempts", "time_to_flat_ms", "orders_canceled",
                   "positions_closed", "flat"):
        op.drop_column("emergency_view", column, schema="readmodel")
