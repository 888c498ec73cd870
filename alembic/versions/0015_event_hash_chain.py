"""Tamper evidence: a hash chain over the events, in notification-id order.

Each event row gets ``chain_hash = sha256(previous row's chain_hash || the row's content)``
(the first row chains on 32 zero bytes), computed by the database itself on INSERT, so
whoever inserts cannot choose it. An edit made around the immutability trigger (by the
table's owner: ``ALTER TABLE ... DISABLE TRIGGER``, or a superuser's
``session_replication_role = replica``) leaves a row whose stored hash no longer matches its
content, and ``tradecore verify`` names it.

Race-free because appends are serialised: a statement-level BEFORE INSERT trigger takes a
transaction-scoped advisory lock (one per database, for this table) before the statement
evaluates any row, so before ``nextval`` hands out notification ids, and holds it to commit.
The row a new row chains on is therefore always the committed head of the log (or a row
inserted earlier in the same transaction), whoever inserts and however; and ids are still
handed out in commit order, which readers tailing the log rely on. The eventsourcing
recorder took an EXCLUSIVE table lock for that; the application role may not (that lock
needs UPDATE, DELETE or TRUNCATE rights), and the trigger cannot take it either: the INSERT
already holds ROW EXCLUSIVE by then, so two inserters upgrading at once deadlock (seen).

Existing rows are chained here, in one pass, in notification-id order.

Revision ID: 0015
Revises: 0014
Create Date: 2026-11-30
"""

from collections.abc import Sequence

from alembic import op

revision: str = "0015"
down_revision: str | None = "0014"
branch_labels: str | Sequence[str] | None = None
depends_on: str | Sequence[str] | None = None

EVENTS = "eventstore.tradecore_events"
APPEND_LOCK_CLASS = 0x74726164  # "trad"


def upgrade() -> None:
    # No insert may start while the existing rows are chained.
    op.execute(f"LOCK TABLE {EVENTS} IN EXCLUSIVE MODE")
    op.execute(f"ALTER TABLE {EVENTS} ADD COLUMN chain_hash bytea")
    # The one definition of a link, used by the insert trigger and by `tradecore verify`.
    # Every field is fixed-width or length-prefixed (-1 for NULL), so no two different rows
    # encode to the same bytes.
    op.execute(
        """
        CREATE FUNCTION eventstore.event_chain_hash(
            previous bytea, notification_id bigint, originator_id uuid,
            originator_version bigint, topic text, state bytea
        ) RETURNS bytea
        LANGUAGE sql IMMUTABLE PARALLEL SAFE
        SET search_path = pg_catalog
        AS $$
            SELECT sha256(
                coalesce(previous, decode(repeat('00', 32), 'hex'))
                || int8send(notification_id)
                || uuid_send(originator_id)
                || int8send(originator_version)
                || int4send(coalesce(octet_length(convert_to(topic, 'UTF8')), -1))
                || coalesce(convert_to(topic, 'UTF8'), ''::bytea)
                || int4send(coalesce(octet_length(state), -1))
                || coalesce(state, ''::bytea)
            )
        $$
        """
    )
    op.execute(
        f"""
        CREATE FUNCTION eventstore.serialise_event_appends() RETURNS trigger
        LANGUAGE plpgsql
        SET search_path = pg_catalog
        AS $$
        BEGIN
            -- Two-key form: a key space apart from tradecore's one-key advisory locks.
            PERFORM pg_advisory_xact_lock({APPEND_LOCK_CLASS}, '{EVENTS}'::regclass::oid::int);
            RETURN NULL;
        END;
        $$
        """
    )
    op.execute(
        f"""
        CREATE FUNCTION eventstore.chain_event() RETURNS trigger
        LANGUAGE plpgsql
        SET search_path = pg_catalog
        AS $$
        DECLARE
            previous bytea;
        BEGIN
            -- The row before this one: under the append lock, the head of the log (rows
            -- inserted earlier by the same statement are visible to a row trigger).
            SELECT chain_hash INTO previous FROM {EVENTS}
            WHERE notification_id < NEW.notification_id
            ORDER BY notification_id DESC LIMIT 1;
            NEW.chain_hash := eventstore.event_chain_hash(
                previous, NEW.notification_id, NEW.originator_id, NEW.originator_version,
                NEW.topic, NEW.state);
            RETURN NEW;
        END;
        $$
        """
    )
    # Chaining the rows already recorded is an UPDATE the immutability trigger refuses: it
    # is lifted for this one statement, inside the migration's transaction.
    op.execute(f"ALTER TABLE {EVENTS} DISABLE TRIGGER tradecore_events_immutable_rows")
    op.execute(
        f"""
        DO $$
        DECLARE
            r record;
            previous bytea;
        BEGIN
            FOR r IN SELECT notification_id, originator_id, originator_version, topic, state
                     FROM {EVENTS} ORDER BY notification_id
            LOOP
                previous := eventstore.event_chain_hash(
                    previous, r.notification_id, r.originator_id, r.originator_version,
                    r.topic, r.state);
                UPDATE {EVENTS} SET chain_hash = previous
                WHERE notification_id = r.notification_id;
            END LOOP;
        END;
        $$
        """
    )
    op.execute(f"ALTER TABLE {EVENTS} ENABLE TRIGGER tradecore_events_immutable_rows")
    op.execute(f"ALTER TABLE {EVENTS} ALTER COLUMN chain_hash SET NOT NULL")
    op.execute(
        f"CREATE TRIGGER tradecore_events_serialise_appends BEFORE INSERT ON {EVENTS} "
        "FOR EACH STATEMENT EXECUTE FUNCTION eventstore.serialise_event_appends()"
    )
    op.execute(
        f"CREATE TRIGGER tradecore_events_chain BEFORE INSERT ON {EVENTS} "
        "FOR EACH ROW EXECUTE FUNCTION eventstore.chain_event()"
    )


def downgrade() -> None:
    raise RuntimeError("the event store is never downgraded")
