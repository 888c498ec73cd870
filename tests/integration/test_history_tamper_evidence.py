"""History you can prove: the application's role cannot alter events, and what the owner can
do around the immutability trigger shows up in the events' hash chain (migration 0015).

The application runs as ``tradecore_app`` (the ``database`` fixture); the owner is the role
that migrated (``owner_database``, a superuser here, as on the embedded server).
"""

from __future__ import annotations

import itertools
import threading
import uuid
from collections.abc import Iterator
from typing import Any

import psycopg
import pytest
from eventsourcing.persistence import StoredEvent
from sqlalchemy.exc import ProgrammingError

from adapters import migrations
from adapters.database import DatabaseAddress
from adapters.eventstore import EVENTS_SCHEMA, EVENTS_TABLE, check_chain, open_event_store
from alembic import command
from app.bootstrap import bootstrap
from app.config import Settings
from domain.errors import RefusedBySafetyRule
from tests.postgres import migrate

EVENTS = f"{EVENTS_SCHEMA}.{EVENTS_TABLE}"
ROWS = (
    "SELECT notification_id, originator_id, originator_version, topic, state, chain_hash "
    f"FROM {EVENTS} ORDER BY notification_id"
)
# The edit the issue reports: an operator's name in a recorded event replaced by another.
REWRITE_ACTOR = (
    f"UPDATE {EVENTS} SET state = convert_to(replace(convert_from(state, 'UTF8'), "
    '\'"actor":"alice"\', \'"actor":"mallory"\'), \'UTF8\') WHERE notification_id = %s'
)


def event_rows(address: DatabaseAddress) -> list[tuple[Any, ...]]:
    with address.connect() as conn:
        return conn.execute(ROWS).fetchall()


def chain_of(address: DatabaseAddress) -> Any:
    engine = address.engine(pool_size=1)
    try:
        return check_chain(engine)
    finally:
        engine.dispose()


@pytest.fixture
def alices_change(database: DatabaseAddress) -> int:
    """A log in which alice opened trading; returns that event's notification id."""
    with bootstrap(Settings(database_url=database.url)) as core:
        core.commands.ensure_initialised()
        core.commands.update_policy(actor="alice", reason="open", allow_new_trades=True)
        core.commands.update_policy(actor="bob", reason="close", allow_new_trades=False)
    with database.connect() as conn:
        found = conn.execute(
            f"SELECT notification_id FROM {EVENTS} "
            "WHERE convert_from(state, 'UTF8') LIKE '%%\"actor\":\"alice\"%%'"
        ).fetchall()
    assert len(found) == 1, found
    return int(found[0][0])


@pytest.mark.parametrize(
    "statement",
    [
        f"UPDATE {EVENTS} SET topic = 'tampered'",
        f"DELETE FROM {EVENTS}",
        f"TRUNCATE {EVENTS}",
        f"ALTER TABLE {EVENTS} DISABLE TRIGGER tradecore_events_immutable_rows",
        f"ALTER TABLE {EVENTS} DISABLE TRIGGER ALL",
        f"ALTER TABLE {EVENTS} DISABLE TRIGGER tradecore_events_chain",
        f"DROP TRIGGER tradecore_events_immutable_rows ON {EVENTS}",
        "SET session_replication_role = replica",
        "SET LOCAL session_replication_role = replica",
        f"LOCK TABLE {EVENTS} IN EXCLUSIVE MODE",
        # The chain is the database's to compute, the order the sequence's to give.
        f"INSERT INTO {EVENTS} (originator_id, originator_version, topic, state, chain_hash) "
        "VALUES (gen_random_uuid(), 1, 't', '', '\\x00')",
        f"INSERT INTO {EVENTS} (originator_id, originator_version, topic, state, "
        "notification_id) VALUES (gen_random_uuid(), 1, 't', '', 1000000)",
        "CREATE OR REPLACE FUNCTION eventstore.refuse_event_mutation() RETURNS trigger "
        "LANGUAGE plpgsql AS $$ BEGIN RETURN NEW; END $$",
    ],
)
def test_the_app_role_cannot_change_remove_or_untrigger_events(
    database: DatabaseAddress, alices_change: int, statement: str
) -> None:
    before = event_rows(database)
    with (
        database.connect(autocommit=False) as conn,
        pytest.raises(psycopg.errors.InsufficientPrivilege),
    ):
        conn.execute(statement)

    assert event_rows(database) == before
    assert chain_of(database).intact


@pytest.mark.parametrize(
    "around_the_trigger",
    [
        (
            f"ALTER TABLE {EVENTS} DISABLE TRIGGER tradecore_events_immutable_rows",
            f"ALTER TABLE {EVENTS} ENABLE TRIGGER tradecore_events_immutable_rows",
        ),
        ("SET session_replication_role = replica", "SET session_replication_role = DEFAULT"),
    ],
    ids=["owner-disables-the-trigger", "superuser-replica-mode"],
)
def test_an_owners_edit_around_the_trigger_is_named_by_the_chain_check(
    database: DatabaseAddress,
    owner_database: DatabaseAddress,
    alices_change: int,
    around_the_trigger: tuple[str, str],
) -> None:
    assert chain_of(database).intact
    lift, restore = around_the_trigger
    with owner_database.connect() as conn:
        conn.execute(lift)
        edited = conn.execute(REWRITE_ACTOR, (alices_change,))
        conn.execute(restore)
    assert edited.rowcount == 1
    row = next(r for r in event_rows(database) if r[0] == alices_change)
    assert b'"actor":"mallory"' in bytes(row[4]), "the edit did not land"

    chain = chain_of(database)

    assert not chain.intact
    altered = chain.first_altered
    assert (altered.notification_id, altered.originator_id, altered.originator_version) == (
        row[0],
        row[1],
        row[2],
    )
    assert altered.topic == row[3]


def test_an_owner_who_also_rehashes_the_edited_event_is_caught_at_the_next_one(
    database: DatabaseAddress, owner_database: DatabaseAddress, alices_change: int
) -> None:
    with owner_database.connect() as conn:
        conn.execute(f"ALTER TABLE {EVENTS} DISABLE TRIGGER tradecore_events_immutable_rows")
        conn.execute(REWRITE_ACTOR, (alices_change,))
        conn.execute(
            f"UPDATE {EVENTS} e SET chain_hash = eventstore.event_chain_hash("
            f"(SELECT p.chain_hash FROM {EVENTS} p WHERE p.notification_id < e.notification_id "
            "ORDER BY p.notification_id DESC LIMIT 1), e.notification_id, e.originator_id, "
            "e.originator_version, e.topic, e.state) WHERE e.notification_id = %s",
            (alices_change,),
        )
        conn.execute(f"ALTER TABLE {EVENTS} ENABLE TRIGGER tradecore_events_immutable_rows")
    later = [r[0] for r in event_rows(database) if r[0] > alices_change]
    assert later, "no event after the edited one to carry the evidence"

    altered = chain_of(database).first_altered

    assert altered is not None and altered.notification_id == later[0]


def test_an_event_the_owner_removed_breaks_the_chain_at_the_event_after_it(
    database: DatabaseAddress, owner_database: DatabaseAddress, alices_change: int
) -> None:
    with owner_database.connect() as conn:
        conn.execute("SET session_replication_role = replica")
        conn.execute(f"DELETE FROM {EVENTS} WHERE notification_id = %s", (alices_change,))
    after = [r[0] for r in event_rows(database) if r[0] > alices_change]

    altered = chain_of(database).first_altered

    assert altered is not None and altered.notification_id == after[0]


def test_a_clean_log_verifies_and_reports_its_head(
    database: DatabaseAddress, alices_change: int
) -> None:
    rows = event_rows(database)

    chain = chain_of(database)

    assert chain.intact
    assert chain.events == len(rows) >= 3
    assert chain.head_id == rows[-1][0]
    assert chain.head_hash == bytes(rows[-1][5]).hex()
    assert len(bytes(rows[-1][5])) == 32


def test_concurrent_appends_from_two_threads_keep_the_chain_valid(
    database: DatabaseAddress,
) -> None:
    # Two library writers (the app's own recorder, each with its own pool) and one bare
    # INSERT that takes no lock of its own, all at once: the table's statement trigger
    # serialises them, so every row chains on the committed head. (A trigger that took the
    # table lock instead deadlocked here: a lock upgrade from the INSERT's ROW EXCLUSIVE.)
    appends_per_writer = 150
    start = threading.Barrier(3, timeout=60)
    errors: list[BaseException] = []
    writers_of: dict[uuid.UUID, str] = {}

    def library_writer(name: str) -> None:
        store = open_event_store(database, pool_size=1)
        try:
            start.wait()
            for i in range(appends_per_writer):
                batch = [stored(name) for _ in range(1 + i % 3)]
                for event in batch:
                    writers_of[event.originator_id] = name
                store.recorder.insert_events(batch)
            # One batch past the recorder's pipeline limit: one statement, many rows.
            big = [stored(name) for _ in range(600)]
            for event in big:
                writers_of[event.originator_id] = name
            store.recorder.insert_events(big)
        except BaseException as e:
            errors.append(e)
        finally:
            store.close()

    def bare_writer() -> None:
        try:
            with database.connect() as conn:
                start.wait()
                for _ in range(appends_per_writer):
                    event = stored("bare")
                    writers_of[event.originator_id] = "bare"
                    conn.execute(
                        f"INSERT INTO {EVENTS} (originator_id, originator_version, topic, state)"
                        " VALUES (%s, %s, %s, %s)",
                        (event.originator_id, 1, event.topic, event.state),
                    )
        except BaseException as e:
            errors.append(e)

    threads = [
        threading.Thread(target=library_writer, args=("a",)),
        threading.Thread(target=library_writer, args=("b",)),
        threading.Thread(target=bare_writer),
    ]
    for t in threads:
        t.start()
    for t in threads:
        t.join(timeout=300)
    assert not any(t.is_alive() for t in threads), "a writer did not finish in 300 s"
    assert not errors, errors

    rows = event_rows(database)
    order = [writers_of[r[1]] for r in rows]
    chain = chain_of(database)

    assert len(rows) == len(writers_of) == 2 * (2 * appends_per_writer + 600) + appends_per_writer
    # The writers really overlapped: the log switches between them many times.
    switches = sum(1 for x, y in itertools.pairwise(order) if x != y)
    assert switches >= 10, f"the writers did not overlap ({switches} switches)"
    assert chain.intact, chain.first_altered
    assert chain.events == len(rows)


def stored(writer: str) -> StoredEvent:
    return StoredEvent(
        originator_id=uuid.uuid4(),
        originator_version=1,
        topic=f"tests.chain:{writer}",
        state=f'{{"writer":"{writer}"}}'.encode(),
    )


def test_tradecore_refuses_to_run_as_a_role_that_could_rewrite_history(
    owner_database: DatabaseAddress,
) -> None:
    with pytest.raises(RefusedBySafetyRule, match=r"superuser.*could rewrite recorded events"):
        bootstrap(Settings(database_url=owner_database.url))


@pytest.fixture
def database_at_0014(empty_database: DatabaseAddress) -> Iterator[DatabaseAddress]:
    engine = empty_database.engine(pool_size=1)
    config = migrations._config()
    try:
        with engine.begin() as conn:
            config.attributes["connection"] = conn
            command.upgrade(config, "0014")
        yield empty_database
    finally:
        engine.dispose()


def test_the_migration_chains_a_log_recorded_before_it(database_at_0014: DatabaseAddress) -> None:
    owner = database_at_0014
    with owner.connect() as conn:
        for i in range(20):
            conn.execute(
                f"INSERT INTO {EVENTS} (originator_id, originator_version, topic, state) "
                "VALUES (%s, 1, 'old', %s)",
                (uuid.uuid4(), f"event {i}".encode()),
            )
    app = migrate(owner)

    chain = chain_of(app)
    with owner.connect() as conn:
        conn.execute("SET session_replication_role = replica")
        conn.execute(f"UPDATE {EVENTS} SET state = 'forged' WHERE notification_id = 7")

    assert chain.intact and chain.events == 20
    altered = chain_of(app).first_altered
    assert altered is not None and altered.notification_id == 7


def test_the_owner_refuses_to_migrate_over_code_the_app_role_planted_on_the_read_side(
    database: DatabaseAddress, owner_database: DatabaseAddress
) -> None:
    # The app role owns the read-model tables: a trigger it plants there would run with the
    # owner's rights when a migration writes to them, and could then lift the event trigger.
    with database.connect() as conn:
        conn.execute(
            "CREATE FUNCTION readmodel.trap() RETURNS trigger LANGUAGE plpgsql AS $$ BEGIN "
            f"EXECUTE 'ALTER TABLE {EVENTS} DISABLE TRIGGER tradecore_events_immutable_rows';"
            " RETURN NEW; END $$"
        )
        conn.execute(
            "CREATE TRIGGER trap BEFORE INSERT OR UPDATE ON readmodel.policy_view "
            "FOR EACH ROW EXECUTE FUNCTION readmodel.trap()"
        )
    engine = owner_database.engine(pool_size=1)
    try:
        with pytest.raises(ProgrammingError, match="refusing to migrate") as refused:
            migrations.upgrade(engine)
    finally:
        engine.dispose()

    assert "function readmodel.trap()" in str(refused.value)
    assert "trigger trap on readmodel.policy_view" in str(refused.value)


RECHAIN_FROM = (
    # What an owner who knows the scheme can do: recompute every hash from an edited event
    # on, so that each link matches again.
    "DO $$ DECLARE r record; previous bytea; BEGIN "
    f"SELECT chain_hash INTO previous FROM {EVENTS} WHERE notification_id < %s "
    "ORDER BY notification_id DESC LIMIT 1; "
    "FOR r IN SELECT notification_id, originator_id, originator_version, topic, state "
    f"FROM {EVENTS} WHERE notification_id >= %s ORDER BY notification_id LOOP "
    "previous := eventstore.event_chain_hash(previous, r.notification_id, r.originator_id, "
    "r.originator_version, r.topic, r.state); "
    f"UPDATE {EVENTS} SET chain_hash = previous WHERE notification_id = r.notification_id; "
    "END LOOP; END $$"
)


def test_an_anchor_written_down_earlier_catches_a_rewrite_that_recomputed_every_hash(
    database: DatabaseAddress, owner_database: DatabaseAddress, alices_change: int
) -> None:
    before = chain_of(database)
    anchor = (before.head_id, before.head_hash)
    with owner_database.connect() as conn:
        conn.execute(f"ALTER TABLE {EVENTS} DISABLE TRIGGER tradecore_events_immutable_rows")
        conn.execute(REWRITE_ACTOR, (alices_change,))
        # A DO block takes no bind parameters: the id is formatted in.
        conn.execute(RECHAIN_FROM.replace("%s", str(alices_change)))
        conn.execute(f"ALTER TABLE {EVENTS} ENABLE TRIGGER tradecore_events_immutable_rows")
    engine = database.engine(pool_size=1)
    try:
        unanchored = check_chain(engine)
        anchored = check_chain(engine, anchor)
    finally:
        engine.dispose()

    # The limit of a chain without an anchor: every link matches again.
    assert unanchored.intact
    assert unanchored.head_hash != before.head_hash
    assert not anchored.intact
    assert anchored.anchor is not None and anchored.anchor.found == unanchored.head_hash


def test_an_anchor_on_an_untouched_log_holds_as_it_grows(
    database: DatabaseAddress, alices_change: int
) -> None:
    before = chain_of(database)
    with bootstrap(Settings(database_url=database.url)) as core:
        core.commands.update_policy(actor="carol", reason="more", allow_new_trades=True)
    engine = database.engine(pool_size=1)
    try:
        later = check_chain(engine, (before.head_id, before.head_hash))
    finally:
        engine.dispose()

    assert later.events > before.events
    assert later.intact and later.anchor is not None and later.anchor.holds
