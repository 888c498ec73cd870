"""Each event row keeps when the store recorded it: ``stored_at``, the time of the
transaction that appended it (PostgreSQL ``now()``; it commits within the same append).

An event's own ``timestamp`` is the time it refers to, which the application's clock gives:
the wall clock live, the replayed market's time in ``tradecore replay``. ``stored_at`` is the
server's, whatever the application's clock says, so a replayed log still shows when it was
written. Rows recorded before this migration keep NULL (their storing time is not known).

Not part of the hash chain (migration 0015): it says when, not what.

Revision ID: 0016
Revises: 0015
Create Date: 2026-11-30
"""

from collections.abc import Sequence

from alembic import op

revision: str = "0016"
down_revision: str | None = "0015"
branch_labels: str | Sequence[str] | None = None
depends_on: str | Sequence[str] | None = None

EVENTS = "eventstore.tradecore_events"


def upgrade() -> None:
    # Added without a default, then given one: existing rows stay NULL and the table is not
    # rewritten (a default given in ADD COLUMN would stamp every old row with today).
    op.execute(f"ALTER TABLE {EVENTS} ADD COLUMN stored_at timestamptz")
    op.execute(f"ALTER TABLE {EVENTS} ALTER COLUMN stored_at SET DEFAULT now()")


def downgrade() -> None:
    raise RuntimeError("the event store is never downgraded")
