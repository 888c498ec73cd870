"""Read models: projection tracking, the policy view and the emergency view.

Revision ID: 0002
Revises: 0001
Create Date: 2026-11-24
"""

from collections.abc import Sequence

import sqlalchemy as sa

from alembic import op

revision: str = "0002"
down_revision: str | None = "0001"
branch_labels: str | Sequence[str] | None = None
depends_on: str | Sequence[str] | None = None

SCHEMA = "readmodel"
TZ = sa.DateTime(timezone=True)


def upgrade() -> None:
    op.execute(f"CREATE SCHEMA IF NOT EXISTS {SCHEMA}")
    op.create_table(
        "projection_tracking",
        sa.Column("name", sa.Text(), primary_key=True),
        sa.Column("position", sa.BigInteger(), nullable=False),
        sa.Column("updated_at", TZ, nullable=False),
        sa.Column("last_error", sa.Text(), nullable=True),
        schema=SCHEMA,
    )
    op.create_table(
        "policy_view",
        sa.Column("policy_id", sa.Uuid(), primary_key=True),
        sa.Column("emergency_mode", sa.Boolean(), nullable=False),
        sa.Column("allow_new_trades", sa.Boolean(), nullable=False),
        sa.Column("emergency_reason", sa.Text(), nullable=True),
        sa.Column("emergency_activated_at", TZ, nullable=True),
        sa.Column("max_leverage", sa.Numeric(), nullable=False),
        sa.Column("max_position_notional", sa.Numeric(), nullable=False),
        sa.Column("drawdown_soft_threshold", sa.Numeric(), nullable=False),
        sa.Column("drawdown_hard_threshold", sa.Numeric(), nullable=False),
        sa.Column("version", sa.Integer(), nullable=False),
        sa.Column("updated_by", sa.Text(), nullable=False),
        sa.Column("updated_at", TZ, nullable=False),
        schema=SCHEMA,
    )
    op.create_table(
        "emergency_view",
        sa.Column("emergency_id", sa.Uuid(), primary_key=True),
        sa.Column("active", sa.Boolean(), nullable=False),
        sa.Column("activation_number", sa.Integer(), nullable=False),
        sa.Column("reason", sa.Text(), nullable=True),
        sa.Column("source", sa.Text(), nullable=True),
        sa.Column("activated_at", TZ, nullable=True),
        sa.Column("activated_by", sa.Text(), nullable=True),
        sa.Column("reset_at", TZ, nullable=True),
        sa.Column("reset_by", sa.Text(), nullable=True),
        sa.Column("reset_reason", sa.Text(), nullable=True),
        sa.Column("version", sa.Integer(), nullable=False),
        schema=SCHEMA,
    )


def downgrade() -> None:
    for table in ("emergency_view", "policy_view", "projection_tracking"):
        op.drop_table(table, schema=SCHEMA)
