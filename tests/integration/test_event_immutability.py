"""Events are a permanent record: the database refuses to change or remove one
(docs/ARCHITECTURE.md, decision 9).

The refusal is the database's, not the application's, so these tests go around tradecore:
raw psycopg, and the psql client an operator would reach for, as the owner of the tables
(the application's own role may not even try: test_history_tamper_evidence.py).
"""

from __future__ import annotations

import importlib.util
import subprocess
from pathlib import Path
from typing import Any

import psycopg
import pytest

from adapters.database import DatabaseAddress
from app.bootstrap import bootstrap
from app.config import Settings

EVENTS = "eventstore.tradecore_events"
FIRST = f"notification_id = (SELECT min(notification_id) FROM {EVENTS})"
READ_ROWS = (
    "SELECT notification_id, originator_id, originator_version, topic, state "
    f"FROM {EVENTS} ORDER BY notification_id"
)


def event_rows(address: DatabaseAddress) -> list[tuple[Any, ...]]:
    with address.connect() as conn:
        return conn.execute(READ_ROWS).fetchall()


@pytest.fixture
def recorded(database: DatabaseAddress, owner_database: DatabaseAddress) -> list[tuple[Any, ...]]:
    """The event rows after the real store has recorded the initial policy."""
    with bootstrap(Settings(database_url=database.url)) as core:
        core.commands.ensure_initialised()
    rows = event_rows(owner_database)
    assert rows, "the store recorded no event to tamper with"
    return rows


def psql_binary() -> Path:
    """The psql shipped inside pgserver, found without importing pgserver (slow to import)."""
    spec = importlib.util.find_spec("pgserver")
    assert spec is not None and spec.submodule_search_locations, "pgserver is not installed"
    psql = Path(next(iter(spec.submodule_search_locations))) / "pginstall" / "bin" / "psql"
    assert psql.is_file(), f"no psql at {psql}"
    return psql


@pytest.mark.parametrize(
    "statement",
    [
        f"UPDATE {EVENTS} SET topic = 'tampered'",
        f"UPDATE {EVENTS} SET state = ''::bytea WHERE {FIRST}",
        f"DELETE FROM {EVENTS}",
        f"DELETE FROM {EVENTS} WHERE {FIRST}",
        f"TRUNCATE {EVENTS}",
        f"TRUNCATE {EVENTS} CASCADE",
    ],
)
def test_database_refuses_to_change_or_remove_a_recorded_event(
    owner_database: DatabaseAddress, recorded: list[tuple[Any, ...]], statement: str
) -> None:
    with (
        owner_database.connect() as conn,
        pytest.raises(psycopg.Error, match="immutable") as refused,
    ):
        conn.execute(statement)

    assert isinstance(refused.value, psycopg.errors.InsufficientPrivilege)
    assert event_rows(owner_database) == recorded


@pytest.mark.parametrize(
    "statement",
    [
        f"DELETE FROM {EVENTS}",
        f"UPDATE {EVENTS} SET topic = 'tampered' WHERE {FIRST}",
        f"TRUNCATE {EVENTS}",
    ],
    ids=["delete", "update", "truncate"],
)
def test_operator_cannot_delete_update_or_truncate_events_with_psql(
    owner_database: DatabaseAddress, recorded: list[tuple[Any, ...]], statement: str
) -> None:
    result = subprocess.run(
        [
            str(psql_binary()),
            "--no-psqlrc",
            "-v",
            "ON_ERROR_STOP=1",
            "-c",
            statement,
            owner_database.url,
        ],
        capture_output=True,
        text=True,
        timeout=60,
        check=False,
    )

    assert result.returncode != 0, result.stdout
    assert "immutable" in result.stderr
    assert event_rows(owner_database) == recorded
