"""Pre-trade controls: the policy view's control and loss-streak columns, and the recent
opening orders the rate and duplicate checks count across processes.

Revision ID: 0013
Revises: 0012
Create Date: 2026-11-30
"""

from collections.abc import Sequence

import sqlalchemy as sa

from alembic import op

revision: str = "0013"
down_revision: str | None = "0012"
branch_labels: str | Sequence[str] | None = None
depends_on: str | Sequence[str] | None = None

SCHEMA = "readmodel"
# The defaults of domain.pretrade.DEFAULT_PRETRADE, for a policy row from before: its
# policy has the defaults (the aggregate's class-level ones) until a change is recorded.
CONTROLS = (
    ("price_collar", sa.Numeric(), "0.05"),
    ("max_order_quantity", sa.Numeric(), "1000000"),
    ("max_order_notional", sa.Numeric(), "100000"),
    ("max_orders_per_second", sa.Integer(), "10"),
    ("duplicate_window_s", sa.Numeric(), "2"),
    ("loss_streak_losses", sa.Integer(), "5"),
    ("loss_streak_window_s", sa.Integer(), "3600"),
    ("loss_streak_cooldown_s", sa.Integer(), "3600"),
)
STOP = (
    ("loss_stop_until", sa.DateTime(timezone=True)),
    ("loss_count_from", sa.DateTime(timezone=True)),
    ("loss_stop_reason", sa.Text()),
)


def upgrade() -> None:
    for name, type_, default in CONTROLS:
        op.add_column(
            "policy_view",
            sa.Column(name, type_, nullable=False, server_default=default),
            schema=SCHEMA,
        )
        op.alter_column("policy_view", name, server_default=None, schema=SCHEMA)
    for name, type_ in STOP:
        op.add_column("policy_view", sa.Column(name, type_, nullable=True), schema=SCHEMA)
    op.create_table(
        "recent_orders",
        sa.Column("id", sa.BigInteger(), primary_key=True, autoincrement=True),
        sa.Column("account", sa.Text(), nullable=False),
        sa.Column("at", sa.DateTime(timezone=True), nullable=False),
        sa.Column("symbol", sa.Text(), nullable=False),
        sa.Column("side", sa.Text(), nullable=False),
        sa.Column("quantity", sa.Numeric(), nullable=False),
        schema=SCHEMA,
    )
    op.create_index(
        "ix_recent_orders_account_at", "recent_orders", ["account", "at"], schema=SCHEMA
    )


def downgrade() -> None:
    op.drop_index("ix_recent_orders_account_at", table_name="recent_orders", schema=SCHEMA)
    op.drop_table("recent_orders", schema=SCHEMA)
    for name, *_ in (*STOP, *CONTROLS):
        op.drop_column("policy_view", name, schema=SCHEMA)
