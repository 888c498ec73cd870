"""The baseline: the bare eventsourcing library's own save -> projection path.

A one-event aggregate in a plain library ``Application``, projected by the library's
``ProjectionRunner`` (LISTEN/NOTIFY subscription, processing thread) into a
``PostgresTrackingRecorder`` view that writes its value and its tracking record in one
transaction. Everything is the library's defaults except the connection and the schema.
"""

from __future__ import annotations

from functools import singledispatchmethod
from typing import Any
from uuid import UUID

from eventsourcing.application import Application
from eventsourcing.domain import Aggregate, event
from eventsourcing.persistence import Tracking
from eventsourcing.postgres import PostgresDatastore, PostgresTrackingRecorder
from eventsourcing.projection import Projection, ProjectionRunner
from eventsourcing.utils import get_topic
from psycopg.sql import SQL, Identifier

from adapters.database import DatabaseAddress

SCHEMA = "benchbase"


class Counter(Aggregate):
    def __init__(self) -> None:
        self.value = 0

    @event("Set")
    def set(self, value: int) -> None:
        self.value = value


class BaselineApp(Application[UUID]):
    name = "BenchBaseline"


class CounterView(PostgresTrackingRecorder):
    """One row holding the last value set, written with its tracking record."""

    def __init__(self, datastore: PostgresDatastore, **kwargs: Any) -> None:
        super().__init__(datastore, **kwargs)
        self.values_table = f"{self.tracking_table_name}_values"
        table = Identifier(self.datastore.schema), Identifier(self.values_table)
        self.sql_create_statements.append(
            SQL(
                "CREATE TABLE IF NOT EXISTS {0}.{1} (key text PRIMARY KEY, value bigint NOT NULL)"
            ).format(*table)
        )
        self.upsert = SQL(
            "INSERT INTO {0}.{1} (key, value) VALUES ('counter', %s) "
            "ON CONFLICT (key) DO UPDATE SET value = EXCLUDED.value"
        ).format(*table)

    def record_value(self, value: int, tracking: Tracking) -> None:
        with self.datastore.transaction(commit=True) as curs:
            curs.execute(self.upsert, (value,), prepare=True)
            self._insert_tracking(curs, tracking)


class CounterProjection(Projection[CounterView]):
    name = "benchbaseline_view"
    topics = (get_topic(Counter.Set),)

    @singledispatchmethod
    def process_event(self, domain_event: Any, tracking: Tracking) -> None:
        self.view.insert_tracking(tracking)

    @process_event.register
    def _(self, domain_event: Counter.Set, tracking: Tracking) -> None:
        self.view.record_value(domain_event.value, tracking)


def library_env(address: DatabaseAddress) -> dict[str, str]:
    return {
        "PERSISTENCE_MODULE": "eventsourcing.postgres",
        "POSTGRES_DBNAME": address.dbname,
        "POSTGRES_HOST": address.host,
        "POSTGRES_PORT": str(address.port),
        "POSTGRES_USER": address.user,
        "POSTGRES_PASSWORD": address.password,
        "POSTGRES_SCHEMA": SCHEMA,
        "CREATE_TABLE": "y",
    }


def create_schema(address: DatabaseAddress) -> None:
    with address.connect() as conn:
        conn.execute(SQL("CREATE SCHEMA IF NOT EXISTS {}").format(Identifier(SCHEMA)))


def start_runner(
    address: DatabaseAddress,
) -> ProjectionRunner[BaselineApp, CounterView]:
    """Start the library's runner (its threads begin at once); use it as a context manager."""
    return ProjectionRunner(
        application_class=BaselineApp,
        projection_class=CounterProjection,
        view_class=CounterView,
        env=library_env(address),
    )


def view_query(runner: ProjectionRunner[BaselineApp, CounterView]) -> str:
    """SQL returning the value the view shows (for the shared poller)."""
    view = runner.view
    return f"SELECT value FROM {view.datastore.schema}.{view.values_table} WHERE key = 'counter'"
