"""Alembic owns the DDL: it must match what the eventsourcing library expects, and the models.

The event store's tables are compared with the ones the library itself creates in a scratch
schema of the same database; the read models are compared with their SQLAlchemy metadata.
"""

from __future__ import annotations

import difflib
from typing import Any

import psycopg
import pytest
from alembic.autogenerate import compare_metadata
from alembic.migration import MigrationContext

from adapters import migrations
from adapters.database import DatabaseAddress
from adapters.errors import StoreNotMigrated
from adapters.eventstore import EVENTS_SCHEMA, EVENTS_TABLE, TradecoreEventStore, store_env
from adapters.paper.tables import PAPER_SCHEMA
from adapters.paper.tables import metadata as paper_metadata
from projections.tables import READ_MODEL_SCHEMA, metadata

LIBRARY_SCHEMA = "libddl"
SCHEMA_PLACEHOLDER = "<schema>"

# Each query describes one aspect of the tables in schema %(schema)s, one text line per row.
# search_path is pinned to pg_catalog while they run, so every name they print is qualified
# the same way whatever the schema (a schema on the path would print unqualified).
DESCRIBE: dict[str, str] = {
    "column": """
        SELECT format('%%s.%%s #%%s: %%s %%s default %%s', c.table_name, c.column_name,
                      c.ordinal_position, format_type(a.atttypid, a.atttypmod),
                      CASE WHEN c.is_nullable = 'YES' THEN 'NULL' ELSE 'NOT NULL' END,
                      coalesce(c.column_default, '-'))
        FROM information_schema.columns c
        JOIN pg_attribute a
          ON a.attrelid = format('%%I.%%I', c.table_schema, c.table_name)::regclass
         AND a.attname = c.column_name
        WHERE c.table_schema = %(schema)s
        """,
    "constraint": """
        SELECT format('%%s.%%s: %%s', t.relname, k.conname, pg_get_constraintdef(k.oid))
        FROM pg_constraint k
        JOIN pg_class t ON t.oid = k.conrelid
        WHERE t.relnamespace = %(schema)s::regnamespace
        """,
    "index": """
        SELECT format('%%s: %%s', indexname, indexdef)
        FROM pg_indexes WHERE schemaname = %(schema)s
        """,
    "sequence": """
        SELECT format('%%s: %%s start %%s step %%s min %%s max %%s cycle %%s owned by %%s',
                      s.sequencename, s.data_type, s.start_value, s.increment_by,
                      s.min_value, s.max_value, s.cycle, owner.attname)
        FROM pg_sequences s
        JOIN pg_depend d ON d.objid = format('%%I.%%I', s.schemaname, s.sequencename)::regclass
                        AND d.classid = 'pg_class'::regclass AND d.deptype = 'a'
        JOIN pg_attribute owner ON owner.attrelid = d.refobjid AND owner.attnum = d.refobjsubid
        WHERE s.schemaname = %(schema)s
        """,
    "type attribute": """
        SELECT format('%%s #%%s: %%s %%s', t.typname, a.attnum, a.attname,
                      format_type(a.atttypid, a.atttypmod))
        FROM pg_type t
        JOIN pg_attribute a ON a.attrelid = t.typrelid AND a.attnum > 0
        WHERE t.typnamespace = %(schema)s::regnamespace AND t.typtype = 'c'
          AND NOT EXISTS (
              SELECT FROM pg_class r WHERE r.oid = t.typrelid AND r.relkind <> 'c')
        """,
    "relation": """
        SELECT format('%%s (%%s): %%s', relname, relkind, coalesce(
            (SELECT string_agg(o, ', ' ORDER BY o) FROM unnest(reloptions) o), '-'))
        FROM pg_class WHERE relnamespace = %(schema)s::regnamespace
        """,
}


def describe_schema(conn: psycopg.Connection[Any], schema: str) -> list[str]:
    """Sorted lines describing the schema's tables, with its name replaced by a placeholder."""
    conn.execute("SET search_path = pg_catalog")
    lines: list[str] = []
    for aspect, query in DESCRIBE.items():
        for (line,) in conn.execute(query, {"schema": schema}):
            lines.append(f"{aspect} {line}".replace(f"{schema}.", f"{SCHEMA_PLACEHOLDER}."))
    return sorted(lines)


def assert_same_ddl(expected: list[str], actual: list[str], *, labels: tuple[str, str]) -> None:
    """Fail with a unified diff of the two descriptions when they differ."""
    if expected != actual:
        diff = difflib.unified_diff(expected, actual, *labels, lineterm="")
        pytest.fail("schemas differ:\n" + "\n".join(diff), pytrace=False)


def create_library_tables(address: DatabaseAddress, schema: str) -> None:
    """Let eventsourcing create the events and snapshots tables of our application in schema."""
    with address.connect() as conn:
        conn.execute(f"CREATE SCHEMA {schema}")
    env = {
        **store_env(address, create_table=True, pool_size=1),
        "POSTGRES_SCHEMA": schema,
        "IS_SNAPSHOTTING_ENABLED": "y",
    }
    TradecoreEventStore(env=env).close()


# tradecore's additions to the library's table: the hash chain (migration 0015), filled by a
# trigger, and when the store recorded each row (migration 0016).
CHAIN_COLUMN = f"column {EVENTS_TABLE}.chain_hash #6: bytea NOT NULL default -"
STORED_AT_COLUMN = (
    f"column {EVENTS_TABLE}.stored_at #7: timestamp with time zone NULL default now()"
)


def test_migrated_event_store_matches_the_library_ddl(owner_database: DatabaseAddress) -> None:
    create_library_tables(owner_database, LIBRARY_SCHEMA)

    with owner_database.connect() as conn:
        library = describe_schema(conn, LIBRARY_SCHEMA)
        migrated = describe_schema(conn, EVENTS_SCHEMA)

    for added in (CHAIN_COLUMN, STORED_AT_COLUMN):
        assert added in migrated
        migrated.remove(added)

    # Guard against a vacuous comparison: the library did create both tables and the type.
    assert any(line.startswith(f"column {EVENTS_TABLE}.notification_id") for line in library)
    assert any(line.startswith("column tradecore_snapshots.") for line in library)
    assert any(line.startswith("type attribute stored_event_uuid") for line in library)
    assert_same_ddl(
        library,
        migrated,
        labels=(f"eventsourcing in {LIBRARY_SCHEMA}", f"alembic in {EVENTS_SCHEMA}"),
    )


def test_migrated_event_store_has_the_immutability_and_chain_triggers(
    database: DatabaseAddress,
) -> None:
    with database.connect() as conn:
        function = conn.execute(
            "SELECT to_regprocedure('eventstore.refuse_event_mutation()')"
        ).fetchone()
        triggers = conn.execute(
            "SELECT tgname FROM pg_trigger "
            "WHERE tgrelid = 'eventstore.tradecore_events'::regclass AND NOT tgisinternal "
            "AND tgenabled = 'O' ORDER BY tgname"
        ).fetchall()

    assert function is not None and function[0] is not None
    assert [name for (name,) in triggers] == [
        "tradecore_events_chain",
        "tradecore_events_immutable_rows",
        "tradecore_events_immutable_truncate",
        "tradecore_events_serialise_appends",
    ]


def test_the_app_role_owns_every_read_side_table_and_nothing_in_the_event_store(
    owner_database: DatabaseAddress,
) -> None:
    # Rebuilds drop and rename read-model tables, which only their owner may do; the
    # hand-over runs after every upgrade, so a table a later migration adds is covered too.
    with owner_database.connect() as conn:
        owners = conn.execute(
            "SELECT n.nspname, c.relname, pg_get_userbyid(c.relowner) FROM pg_class c "
            "JOIN pg_namespace n ON n.oid = c.relnamespace "
            "WHERE n.nspname IN ('readmodel', 'paper', 'eventstore') AND c.relkind IN ('r', 'S')"
        ).fetchall()

    read_side = {(s, t): o for s, t, o in owners if s != EVENTS_SCHEMA}
    event_store = {(s, t): o for s, t, o in owners if s == EVENTS_SCHEMA}
    assert len(read_side) > 10, read_side
    assert set(read_side.values()) == {migrations.APP_ROLE}, read_side
    assert event_store and migrations.APP_ROLE not in event_store.values(), event_store


def described_schemas_only(name: str | None, type_: str, parent_names: object) -> bool:
    # As in alembic/env.py: the event store is checked against the library, not the metadata.
    if type_ == "schema":
        return name in (READ_MODEL_SCHEMA, PAPER_SCHEMA)
    return True


def test_read_model_and_paper_schemas_have_no_drift_from_the_table_metadata(
    database: DatabaseAddress,
) -> None:
    engine = database.engine(pool_size=1)
    try:
        with engine.connect() as conn:
            context = MigrationContext.configure(
                conn, opts={"include_schemas": True, "include_name": described_schemas_only}
            )
            diff = compare_metadata(context, [metadata, paper_metadata])
    finally:
        engine.dispose()

    assert diff == []


def test_db_upgrade_is_idempotent(empty_database: DatabaseAddress) -> None:
    engine = empty_database.engine(pool_size=1)
    try:
        first = migrations.upgrade(engine)
        second = migrations.upgrade(engine)
    finally:
        engine.dispose()

    head = migrations.head_revision()
    assert first.current == first.head == head
    assert second.current == second.head == head


def test_require_head_refuses_an_unmigrated_database(empty_database: DatabaseAddress) -> None:
    engine = empty_database.engine(pool_size=1)
    try:
        with pytest.raises(StoreNotMigrated, match="db upgrade"):
            migrations.require_head(engine)
    finally:
        engine.dispose()
