"""The one event log: an eventsourcing ``Application`` on Postgres (psycopg 3).

The whole core is one application, so every event has one total order (docs/ARCHITECTURE.md,
decision 1). The tables are owned by alembic (``CREATE_TABLE`` off); their names follow from the
application name and schema below, and the migration creates exactly what the library
expects (a test compares the two).
"""

from __future__ import annotations

from collections.abc import Sequence
from contextlib import AbstractContextManager
from dataclasses import dataclass, fields
from datetime import datetime
from decimal import Decimal
from typing import Any, ClassVar, Self
from uuid import UUID

import psycopg_pool
from eventsourcing.application import Application
from eventsourcing.domain import MutableOrImmutableAggregate
from eventsourcing.persistence import (
    JSONTranscoder,
    Notification,
    OperationalError,
    StoredEvent,
    Transcoding,
)
from eventsourcing.postgres import (
    PostgresAggregateRecorder,
    PostgresApplicationRecorder,
    PostgresFactory,
)
from eventsourcing.utils import Environment, EnvType
from psycopg.sql import SQL, Identifier
from sqlalchemy import Connection, Engine, text

from adapters.answer_deadline import GIVEN_UP, AnswerBoundConnection, given_up
from adapters.database import (
    BUSY_RETRY_SECONDS,
    CONNECT_TIMEOUT_SECONDS,
    DatabaseAddress,
    wait_for_slot,
)
from adapters.errors import StoreUnavailable
from domain.account import Account
from domain.emergency import Emergency
from domain.market_regime import MarketRegime
from domain.policy import Policy, RiskLimits
from domain.sizing_agent import SizingAgent
from domain.trade import Trade

APPLICATION_NAME = "TradeCore"
EVENTS_SCHEMA = "eventstore"
EVENTS_TABLE = "tradecore_events"
SNAPSHOTS_TABLE = "tradecore_snapshots"
# The library's LISTEN/NOTIFY channel: the events table name.
NOTIFY_CHANNEL = EVENTS_TABLE


def store_env(
    address: DatabaseAddress, *, create_table: bool = False, pool_size: int = 4
) -> dict[str, str]:
    """The library settings for ``address``. Only these settings apply (see TradecoreEventStore)."""
    return {
        "PERSISTENCE_MODULE": "adapters.eventstore:OneAttemptFactory",
        "POSTGRES_DBNAME": address.dbname,
        "POSTGRES_HOST": address.host,
        "POSTGRES_PORT": str(address.port),
        "POSTGRES_USER": address.user,
        "POSTGRES_PASSWORD": address.password,
        "POSTGRES_SCHEMA": EVENTS_SCHEMA,
        # Off on purpose: in 9.5.6 the DB functions route several applications' inserts to
        # one table and skip tracking (docs/ARCHITECTURE.md, decision 2).
        "POSTGRES_ENABLE_DB_FUNCTIONS": "n",
        "POSTGRES_CONNECT_TIMEOUT": "3",
        "POSTGRES_POOL_SIZE": str(pool_size),
        "POSTGRES_MAX_OVERFLOW": "8",
        "POSTGRES_PRE_PING": "y",
        # A writer waits at most this long for the table lock that orders inserts.
        "POSTGRES_LOCK_TIMEOUT": "5",
        "IS_SNAPSHOTTING_ENABLED": "y",
        "CREATE_TABLE": "y" if create_table else "n",
        "APPLICATION_RECORDER_TOPIC": "adapters.eventstore:LargeBatchSafeRecorder",
    }


class LargeBatchSafeRecorder(PostgresApplicationRecorder):
    """The library's recorder, except that a large batch is inserted without psycopg's
    pipeline mode: with some thousand events in one save, the pipelined insert waits forever
    in ``pipeline.sync()`` (measured here: 1,200 events fine, 1,500 stuck). Same statements,
    same table lock and NOTIFY, same transaction; only the pipelining goes. An import must
    be one transaction however large, so it cannot be split instead."""

    PIPELINE_LIMIT = 500

    def __init__(self, *args: Any, **kwargs: Any) -> None:
        super().__init__(*args, **kwargs)
        # The library locks the table itself (LOCK TABLE ... IN EXCLUSIVE MODE) so that ids
        # are handed out in commit order; the application role may not (it has no UPDATE,
        # DELETE or TRUNCATE right). The table's own BEFORE INSERT statement trigger
        # serialises appends instead, for every inserter, before any id is drawn (migration
        # 0015); only the bound on waiting for it is set here.
        self.lock_table_statements = [
            SQL("SET LOCAL lock_timeout = '{0}s'").format(self.datastore.lock_timeout)
        ]

    # One attempt per call, on purpose: the library wraps its reads and inserts in a retry
    # of 10 attempts, which with the 3 s pool timeout made a writer hang for minutes in an
    # outage. Retrying is the caller's job, through the one policy (adapters.repository).
    def insert_events(
        self, stored_events: Sequence[StoredEvent], **kwargs: Any
    ) -> Sequence[int] | None:
        if len(stored_events) <= self.PIPELINE_LIMIT:
            ids: Sequence[int] | None = _once(PostgresApplicationRecorder.insert_events)(
                self, stored_events, **kwargs
            )
            return ids
        with self.datastore.get_connection() as conn, conn.transaction():
            with conn.cursor() as curs:
                self._insert_events(curs, stored_events, **kwargs)
            with conn.cursor() as curs:
                self._insert_stored_events(curs, stored_events, **kwargs)
                return self._fetch_ids_after_insert_events(curs, stored_events, **kwargs)

    def select_events(self, originator_id: UUID | str, **kwargs: Any) -> Sequence[StoredEvent]:
        events: Sequence[StoredEvent] = _once(PostgresApplicationRecorder.select_events)(
            self, originator_id, **kwargs
        )
        return events

    def current_versions(self, originator_ids: Sequence[UUID]) -> dict[UUID, int]:
        """Each aggregate's last recorded version, in one statement (an aggregate never
        recorded is absent): how a holder of copies tells, in one round trip, whether they
        are still current. One attempt; raises the library's OperationalError/InterfaceError."""
        statement = SQL(
            "SELECT originator_id, max(originator_version) AS version FROM {schema}.{table} "
            "WHERE originator_id = ANY(%s) GROUP BY originator_id"
        ).format(schema=Identifier(self.datastore.schema), table=Identifier(self.events_table_name))
        # The library's connections are in autocommit: one statement, one round trip.
        with self.datastore.get_connection() as conn, conn.cursor() as curs:
            curs.execute(statement, [list(originator_ids)], prepare=True)
            return {row["originator_id"]: int(row["version"]) for row in curs.fetchall()}

    def select_notifications(self, *args: Any, **kwargs: Any) -> Sequence[Notification]:
        found: Sequence[Notification] = _once(PostgresApplicationRecorder.select_notifications)(
            self, *args, **kwargs
        )
        return found

    def max_notification_id(self) -> int | None:
        head: int | None = _once(PostgresApplicationRecorder.max_notification_id)(self)
        return head


def _once(method: Any) -> Any:
    """The library's method without its retry decorator (which keeps it as ``__wrapped__``)."""
    return getattr(method, "__wrapped__", method)


class OneAttemptSnapshotRecorder(PostgresAggregateRecorder):
    """The snapshots' recorder, one attempt per call (see LargeBatchSafeRecorder)."""

    def insert_events(
        self, stored_events: Sequence[StoredEvent], **kwargs: Any
    ) -> Sequence[int] | None:
        ids: Sequence[int] | None = _once(PostgresAggregateRecorder.insert_events)(
            self, stored_events, **kwargs
        )
        return ids

    def select_events(self, originator_id: UUID | str, **kwargs: Any) -> Sequence[StoredEvent]:
        events: Sequence[StoredEvent] = _once(PostgresAggregateRecorder.select_events)(
            self, originator_id, **kwargs
        )
        return events


class RiskLimitsAsDict(Transcoding):
    """Lets a Policy snapshot carry its limits (Decimals inside stay exact strings)."""

    type = RiskLimits
    name = "risk_limits"

    def encode(self, obj: RiskLimits) -> dict[str, Decimal]:
        return {f.name: getattr(obj, f.name) for f in fields(obj)}

    def decode(self, data: dict[str, Decimal]) -> RiskLimits:
        return RiskLimits(**data)


class TradecoreEventStore(Application[UUID]):
    """The application whose repository and notification log every service uses.

    It has no business methods: commands live in ``app.commands.safety``.
    """

    name = APPLICATION_NAME
    # Snapshots keep reading an aggregate (the gate's fallback path) bounded however many
    # changes the policy has seen.
    snapshotting_intervals: ClassVar[dict[type[MutableOrImmutableAggregate[Any]], int]] = {
        Policy: 50,
        Emergency: 50,
        Trade: 50,
        SizingAgent: 50,  # one lesson per closed trade: the table loads from a snapshot
        MarketRegime: 50,
        Account: 200,  # a reading a second: the breaker loads from a recent snapshot
    }

    def register_transcodings(self, transcoder: JSONTranscoder) -> None:
        super().register_transcodings(transcoder)
        transcoder.register(RiskLimitsAsDict())

    def construct_env(self, name: str, env: EnvType | None = None) -> Environment:
        # The library would merge os.environ here, letting a stray variable such as
        # TRADECORE_POSTGRES_ENABLE_DB_FUNCTIONS reconfigure the store behind our settings.
        return Environment(name, dict(env or {}))


class _PatientConnection(AnswerBoundConnection):
    """The store pool's connections: a connect refused for want of a free slot is retried
    like every other connection of ours (adapters.database.wait_for_slot), and a statement
    waits for the server's answer no longer than every other one of ours
    (adapters.answer_deadline)."""

    @classmethod
    def connect(cls, conninfo: str = "", **kwargs: Any) -> Self:
        return wait_for_slot(lambda: super(_PatientConnection, cls).connect(conninfo, **kwargs))


# How long closing the event store waits for each of its pool's background workers.
POOL_CLOSE_WAIT_SECONDS = 1.0


class PatientPostgresFactory(PostgresFactory):
    """The library's Postgres persistence, with two changes to its connection pool: a
    connect refused for want of a free slot is retried like every other connection of ours,
    and the pool opens (and waits for its first connection) before the library's first
    query, which would otherwise race the pool's start and make it open, and keep, one
    connection more than its size."""

    def __init__(self, env: Environment | EnvType | None) -> None:
        super().__init__(env)
        pool = self.datastore.pool
        pool.connection_class = _PatientConnection
        # Every read and write of the library takes its connection here: once a deadline
        # passed with the store silent, fail at once rather than wait for the pool (whose
        # new connections are opened by its own threads, outside the caller's deadline).
        library_connection = self.datastore.get_connection

        def get_connection() -> AbstractContextManager[Any]:
            if given_up():
                raise OperationalError(GIVEN_UP)
            return library_connection()

        self.datastore.get_connection = get_connection  # type: ignore[method-assign,assignment]
        # The library's pre-ping stays at every checkout: making it idle-only through the
        # pool's private check/reset hooks made commands hold a third connection (seen in
        # test_a_command_holds_at_most_two_server_connections), so that saving was undone.
        try:
            pool.open(wait=True, timeout=BUSY_RETRY_SECONDS + CONNECT_TIMEOUT_SECONDS)
        except psycopg_pool.PoolTimeout as e:
            pool.close()
            raise StoreUnavailable(f"cannot open the event store's connections: {e}") from None

    def close(self) -> None:
        # The pool waits for each of its background workers to stop, 5 s apiece by default;
        # after a store went silent they are stuck in connects (CONNECT_TIMEOUT_SECONDS), and
        # a command that has given its answer would hold the terminal for them. They are
        # daemon threads: what is left of their connect ends with them.
        self.datastore.pool.close(timeout=POOL_CLOSE_WAIT_SECONDS)
        super().close()


class OneAttemptFactory(PatientPostgresFactory):
    """The patient factory (above) with the one-attempt snapshot recorder: the one retry
    policy is the application's (adapters.repository), never nested inside the store's calls."""

    aggregate_recorder_class = OneAttemptSnapshotRecorder


def open_event_store(address: DatabaseAddress, **kwargs: Any) -> TradecoreEventStore:
    """Open the event store at ``address``; the schema must already be migrated. Raises
    StoreUnavailable (StoreBusy) when its first connection cannot be had."""
    return TradecoreEventStore(env=store_env(address, **kwargs))


class PostgresLogReader:
    """Reads the events table inside a caller's SQLAlchemy transaction (projections.LogReader).

    The library's own readers each take a pooled connection of their own; a projection needs
    the events it applies and the rows it writes in one transaction, so it reads here.
    """

    _head = text(f"SELECT coalesce(max(notification_id), 0) FROM {EVENTS_SCHEMA}.{EVENTS_TABLE}")
    _rows = (
        "SELECT notification_id, originator_id, originator_version, topic, state "
        f"FROM {EVENTS_SCHEMA}.{EVENTS_TABLE} "
    )
    _select = _rows + "WHERE notification_id > :after AND notification_id <= :upto "
    _read = text(_select + "ORDER BY notification_id LIMIT :limit")
    _read_topics = text(_select + "AND topic = ANY(:topics) ORDER BY notification_id LIMIT :limit")
    _latest = text(_rows + "WHERE topic = ANY(:topics) ORDER BY notification_id DESC LIMIT :limit")
    _by_ids = text(_rows + "WHERE notification_id = ANY(:ids) ORDER BY notification_id")
    _stored_at = text(
        f"SELECT notification_id, stored_at FROM {EVENTS_SCHEMA}.{EVENTS_TABLE} "
        "WHERE notification_id = ANY(:ids)"
    )
    _versions = text(
        "SELECT originator_id, max(originator_version) AS version, "
        "(array_agg(topic ORDER BY originator_version DESC))[1] AS topic "
        f"FROM {EVENTS_SCHEMA}.{EVENTS_TABLE} WHERE notification_id <= :upto "
        "GROUP BY originator_id"
    )

    def by_ids(self, conn: Connection, ids: Sequence[int]) -> list[tuple[int, StoredEvent]]:
        """The stored events with these notification ids, in log order."""
        rows = conn.execute(self._by_ids, {"ids": list(ids)}).all()
        return [(r.notification_id, _stored(r)) for r in rows]

    def stored_at(self, conn: Connection, ids: Sequence[int]) -> dict[int, datetime | None]:
        """When the store recorded each of these events (migration 0016: the appending
        transaction's server time; None for rows recorded before it), by notification id."""
        rows = conn.execute(self._stored_at, {"ids": list(ids)}).all()
        return {int(r.notification_id): r.stored_at for r in rows}

    def latest_versions(self, conn: Connection, upto: int) -> list[tuple[UUID, int, str]]:
        """Each aggregate's last (version, topic) at or before log position ``upto``."""
        rows = conn.execute(self._versions, {"upto": upto}).all()
        return [(r.originator_id, int(r.version), str(r.topic)) for r in rows]

    def latest(
        self, conn: Connection, *, topics: Sequence[str], limit: int
    ) -> list[tuple[int, StoredEvent]]:
        """The last ``limit`` events of these topics, newest first."""
        rows = conn.execute(self._latest, {"topics": list(topics), "limit": limit}).all()
        return [(r.notification_id, _stored(r)) for r in rows]

    def head(self, conn: Connection) -> int:
        return int(conn.execute(self._head).scalar_one())

    def read(
        self,
        conn: Connection,
        *,
        after: int,
        upto: int,
        topics: Sequence[str] | None,
        limit: int,
    ) -> list[tuple[int, StoredEvent]]:
        params: dict[str, object] = {"after": after, "upto": upto, "limit": limit}
        statement = self._read
        if topics is not None:
            statement, params["topics"] = self._read_topics, list(topics)
        rows = conn.execute(statement, params).all()
        return [(r.notification_id, _stored(r)) for r in rows]


def _stored(r: Any) -> StoredEvent:
    return StoredEvent(
        originator_id=r.originator_id,
        originator_version=r.originator_version,
        topic=r.topic,
        state=bytes(r.state),
    )


@dataclass(frozen=True)
class AlteredEvent:
    """The first event whose stored chain hash does not match its content and the hash of
    the event before it."""

    notification_id: int
    originator_id: UUID
    originator_version: int
    topic: str | None


@dataclass(frozen=True)
class Anchor:
    """An event's chain hash as written down earlier (``expected``) and as stored now
    (``found``; None when the event is gone)."""

    notification_id: int
    expected: str
    found: str | None

    @property
    def holds(self) -> bool:
        return self.found == self.expected


@dataclass(frozen=True)
class ChainCheck:
    """The hash chain over the whole log (migration 0015), checked in one snapshot.

    ``head_hash`` (hex) is the last event's chain hash: written down somewhere else and
    given back as an ``anchor``, it lets a later check prove that no event up to it was
    rewritten together with every hash after it, which the chain alone cannot show against
    someone able to recompute it.
    """

    events: int
    head_id: int | None
    head_hash: str | None
    first_altered: AlteredEvent | None
    anchor: Anchor | None = None

    @property
    def intact(self) -> bool:
        return self.first_altered is None and (self.anchor is None or self.anchor.holds)


# Each row is checked against its predecessor as stored: an edited row fails its own check;
# one whose hash was recomputed too breaks the next row's, and a removed row breaks the
# row after the gap.
_LINKS = (
    "SELECT notification_id, originator_id, originator_version, topic, chain_hash, "
    f"{EVENTS_SCHEMA}.event_chain_hash(lag(chain_hash) OVER (ORDER BY notification_id), "
    "notification_id, originator_id, originator_version, topic, state) AS expected "
    f"FROM {EVENTS_SCHEMA}.{EVENTS_TABLE}"
)
_FIRST_ALTERED = text(
    f"SELECT * FROM ({_LINKS}) AS links WHERE chain_hash IS DISTINCT FROM expected "
    "ORDER BY notification_id LIMIT 1"
)
_HEAD = text(
    f"SELECT (SELECT count(*) FROM {EVENTS_SCHEMA}.{EVENTS_TABLE}) AS events, "
    "notification_id, encode(chain_hash, 'hex') AS chain_hash "
    f"FROM {EVENTS_SCHEMA}.{EVENTS_TABLE} ORDER BY notification_id DESC LIMIT 1"
)


_HASH_AT = text(
    f"SELECT encode(chain_hash, 'hex') FROM {EVENTS_SCHEMA}.{EVENTS_TABLE} "
    "WHERE notification_id = :id"
)


def check_chain(engine: Engine, anchor: tuple[int, str] | None = None) -> ChainCheck:
    """Recompute every link of the events' hash chain (one pass over the log, in the
    database) and report the first event that does not match; with ``anchor`` (an event id
    and the chain hash written down for it earlier, hex), also what that event's hash is
    now (None: the event is gone). Read-only; needs SELECT on the events. Raises
    SQLAlchemy's OperationalError when the store cannot be reached."""
    with engine.connect().execution_options(isolation_level="REPEATABLE READ") as conn:
        altered = conn.execute(_FIRST_ALTERED).first()
        head = conn.execute(_HEAD).first()
        anchored = (
            None
            if anchor is None
            else Anchor(anchor[0], anchor[1], conn.execute(_HASH_AT, {"id": anchor[0]}).scalar())
        )
    return ChainCheck(
        anchor=anchored,
        events=int(head.events) if head is not None else 0,
        head_id=int(head.notification_id) if head is not None else None,
        head_hash=str(head.chain_hash) if head is not None else None,
        first_altered=None
        if altered is None
        else AlteredEvent(
            notification_id=int(altered.notification_id),
            originator_id=altered.originator_id,
            originator_version=int(altered.originator_version),
            topic=altered.topic,
        ),
    )
