"""Event store: the tables the eventsourcing library expects, made immutable.

The DDL mirrors eventsourcing 9.5's PostgresApplicationRecorder (events) and
PostgresAggregateRecorder (snapshots) for application "TradeCore" in schema "eventstore";
tests/integration/test_migrations.py compares it with what the library itself creates.
The library's insert function is not created: POSTGRES_ENABLE_DB_FUNCTIONS stays off.

Revision ID: 0001
Revises:
Create Date: 2026-11-24
"""

from collections.abc import Sequence

from alembic import op

revision: str = "0001"
down_revision: str | None = None
branch_labels: str | Sequence[str] | None = None
depends_on: str | Sequence[str] | None = None

AUTOVACUUM = """WITH (
    autovacuum_enabled = true,
    autovacuum_vacuum_threshold = 100000000,
    autovacuum_vacuum_scale_factor = 0.5,
    autovacuum_analyze_threshold = 1000,
    autovacuum_analyze_scale_factor = 0.01
)"""


def upgrade() -> None:
    op.execute("CREATE SCHEMA IF NOT EXISTS eventstore")
    op.execute(
        "CREATE TYPE eventstore.stored_event_uuid AS ("
        "originator_id uuid, originator_version bigint, topic text, state bytea)"
    )
    op.execute(
        "CREATE TABLE eventstore.tradecore_events ("
        "originator_id uuid NOT NULL, "
        "originator_version bigint NOT NULL, "
        "topic text, "
        "state bytea, "
        "notification_id bigserial, "
        "PRIMARY KEY (originator_id, originator_version)) " + AUTOVACUUM
    )
    op.execute(
        "CREATE UNIQUE INDEX tradecore_events_notification_id_idx "
        "ON eventstore.tradecore_events (notification_id ASC)"
    )
    op.execute(
        "CREATE TABLE eventstore.tradecore_snapshots ("
        "originator_id uuid NOT NULL, "
        "originator_version bigint NOT NULL, "
        "topic text, "
        "state bytea, "
        "PRIMARY KEY (originator_id, originator_version)) " + AUTOVACUUM
    )
    # Events are a permanent record (docs/ARCHITECTURE.md, decision 9): the database itself refuses to
    # change or remove one, whoever asks.
    op.execute(
        """
        CREATE FUNCTION eventstore.refuse_event_mutation() RETURNS trigger
        LANGUAGE plpgsql AS $$
        BEGIN
            RAISE EXCEPTION 'events are immutable: % on %.% is refused',
                TG_OP, TG_TABLE_SCHEMA, TG_TABLE_NAME
                USING ERRCODE = 'insufficient_privilege';
        END;
        $$
        """
    )
    op.execute(
        "CREATE TRIGGER tradecore_events_immutable_rows "
        "BEFORE UPDATE OR DELETE ON eventstore.tradecore_events "
        "FOR EACH ROW EXECUTE FUNCTION eventstore.refuse_event_mutation()"
    )
    op.execute(
        "CREATE TRIGGER tradecore_events_immutable_truncate "
        "BEFORE TRUNCATE ON eventstore.tradecore_events "
        "FOR EACH STATEMENT EXECUTE FUNCTION eventstore.refuse_event_mutation()"
    )


def downgrade() -> None:
    # Dropping the log would destroy the record of everything that happened: refuse.
    raise RuntimeError("the event store is never downgraded")
