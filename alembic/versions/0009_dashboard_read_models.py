"""The dashboards' read models: risk view, equity history, incidents, model promotions.

Revision ID: 0009
Revises: 0008
Create Date: 2026-11-25
"""

from collections.abc import Sequence

import sqlalchemy as sa

from alembic import op

revision: str = "0009"
down_revision: str | None = "0008"
branch_labels: str | Sequence[str] | None = None
depends_on: str | Sequence[str] | None = None

SCHEMA = "readmodel"


def upgrade() -> None:
    ts = sa.DateTime(timezone=True)
    op.create_table(
        "risk_view",
        sa.Column("account_id", sa.Uuid(), primary_key=True),
        sa.Column("account", sa.Text(), nullable=True),
        sa.Column("equity", sa.Numeric(), nullable=True),
        sa.Column("peak", sa.Numeric(), nullable=False),
        sa.Column("drawdown", sa.Numeric(), nullable=False),
        sa.Column("state", sa.Text(), nullable=False),
        sa.Column("pending", sa.Boolean(), nullable=False),
        sa.Column("rejected_readings", sa.BigInteger(), nullable=False),
        sa.Column("last_reading_at", ts, nullable=True),
        sa.Column("last_accepted_at", ts, nullable=True),
        sa.Column("updated_at", ts, nullable=False),
        schema=SCHEMA,
    )
    op.create_table(
        "equity_history",
        sa.Column("position", sa.BigInteger(), primary_key=True, autoincrement=False),
        sa.Column("account_id", sa.Uuid(), nullable=False),
        sa.Column("at", ts, nullable=False),
        sa.Column("equity", sa.Numeric(), nullable=False),
        sa.Column("peak", sa.Numeric(), nullable=False),
        sa.Column("drawdown", sa.Numeric(), nullable=False),
        schema=SCHEMA,
    )
    op.create_index(
        "ix_equity_history_account_at", "equity_history", ["account_id", "at"], schema=SCHEMA
    )
    op.create_table(
        "incidents",
        sa.Column("activation_number", sa.Integer(), primary_key=True, autoincrement=False),
        sa.Column("incident_id", sa.Uuid(), nullable=False, unique=True),
        sa.Column("source", sa.Text(), nullable=False),
        sa.Column("reason", sa.Text(), nullable=False),
        sa.Column("activated_by", sa.Text(), nullable=False),
        sa.Column("activated_at", ts, nullable=False),
        sa.Column("flat", sa.Boolean(), nullable=True),
        sa.Column("flat_at", ts, nullable=True),
        sa.Column("time_to_flat_ms", sa.Integer(), nullable=True),
        sa.Column("positions_closed", sa.Integer(), nullable=True),
        sa.Column("orders_canceled", sa.Integer(), nullable=True),
        sa.Column("reset_at", ts, nullable=True),
        sa.Column("reset_by", sa.Text(), nullable=True),
        sa.Column("reset_reason", sa.Text(), nullable=True),
        schema=SCHEMA,
    )
    op.create_table(
        "model_promotions",
        sa.Column("model", sa.Text(), primary_key=True),
        sa.Column("version", sa.Integer(), nullable=False),
        sa.Column("changed_at", ts, nullable=False),
        sa.Column("actor", sa.Text(), nullable=False),
        sa.Column("reason", sa.Text(), nullable=False),
        schema=SCHEMA,
    )
    op.create_table(
        "dashboard_facts",
        sa.Column("key", sa.Text(), primary_key=True),
        sa.Column("value", sa.Text(), nullable=False),
        schema=SCHEMA,
    )


def downgrade() -> None:
    for table in (
        "dashboard_facts",
        "model_promotions",
        "incidents",
        "equity_history",
        "risk_view",
    ):
        op.drop_table(table, schema=SCHEMA)
