"""Connection settings for one Postgres database, shared by the event store and read models.

A URL such as ``postgresql://user:secret@host:5432/db`` or the embedded server's socket form
``postgresql://postgres:@/postgres?host=/var/lib/tradecore/run`` is parsed once into the
parts psycopg, SQLAlchemy and the eventsourcing library each want.
"""

from __future__ import annotations

import random
import time
from collections.abc import Callable
from dataclasses import dataclass
from typing import Any, TypeVar
from urllib.parse import quote

import psycopg
from psycopg.conninfo import conninfo_to_dict
from sqlalchemy import Engine, create_engine, event
from sqlalchemy.engine.interfaces import ConnectArgsType, Dialect
from sqlalchemy.exc import InvalidatePoolError
from sqlalchemy.pool import ConnectionPoolEntry

from adapters.answer_deadline import GIVEN_UP, AnswerBoundConnection, connect_budget, given_up
from adapters.errors import StoreBusy, StoreUnavailable

CONNECT_TIMEOUT_SECONDS = 3
# A server whose connection slots are all taken answers at once ("too many clients"); such a
# refusal is retried for at most this long, so a burst of commands (each holding one or two
# connections for well under a second) queues instead of failing, and the kill switch gets
# through. A refusal that lasts longer is reported as StoreBusy.
BUSY_RETRY_SECONDS = 10.0
# A read-model engine's pooled connection is pinged before use (one round trip) only when it
# has been idle at least this long (the event store's pool pings at every checkout). One
# returned more recently just worked and is very likely still there, as HikariCP's
# alive-bypass window (500 ms) assumes; pinging it doubled the round trips of a short
# transaction. If it did die meanwhile, its statement fails as a lost store does, and
# SQLAlchemy then discards every pooled connection.
PING_AFTER_IDLE_SECONDS = 0.5
T = TypeVar("T")
# libpq reports SQLSTATE 53300 at connect time only in the message text.
_BUSY_MESSAGES = (
    "too many clients already",
    "too many connections",  # for a role or a database with a connection limit
    "remaining connection slots are reserved",
)


@dataclass(frozen=True)
class DatabaseAddress:
    host: str
    port: int
    dbname: str
    user: str
    password: str

    @classmethod
    def parse(cls, url: str) -> DatabaseAddress:
        """Parse a postgresql:// URL; raises StoreUnavailable naming what is wrong."""
        if not url.startswith(("postgresql://", "postgres://")):
            raise StoreUnavailable(
                f"invalid database URL {redact(url)!r}: it must start with postgresql://"
            )
        try:
            parts: dict[str, Any] = conninfo_to_dict(url)
        except psycopg.ProgrammingError as e:
            raise StoreUnavailable(f"invalid database URL {redact(url)!r}: {e}") from None
        try:
            port = int(parts.get("port") or 5432)
        except ValueError:
            raise StoreUnavailable(f"invalid port in database URL {redact(url)!r}") from None
        return cls(
            host=str(parts.get("host") or "localhost"),
            port=port,
            dbname=str(parts.get("dbname") or parts.get("user") or "postgres"),
            user=str(parts.get("user") or "postgres"),
            password=str(parts.get("password") or ""),
        )

    def with_dbname(self, dbname: str) -> DatabaseAddress:
        return DatabaseAddress(self.host, self.port, dbname, self.user, self.password)

    @property
    def url(self) -> str:
        """A libpq URL (with the password, so never log it: use :attr:`display`)."""
        auth = quote(self.user, safe="")
        if self.password:
            auth += ":" + quote(self.password, safe="")
        if self.host.startswith("/"):
            return f"postgresql://{auth}@/{self.dbname}?host={quote(self.host)}&port={self.port}"
        return f"postgresql://{auth}@{self.host}:{self.port}/{self.dbname}"

    @property
    def display(self) -> str:
        """The address without the password, for messages."""
        if self.host.startswith("/"):
            return f"postgresql://{self.user}@/{self.dbname}?host={self.host}"
        return f"postgresql://{self.user}@{self.host}:{self.port}/{self.dbname}"

    def connect(self, *, autocommit: bool = True) -> psycopg.Connection[Any]:
        """Open a psycopg connection, waiting up to BUSY_RETRY_SECONDS while the server has no
        free connection slot. Raises StoreBusy when it still has none, StoreUnavailable (one
        clear line) for any other failure."""
        try:
            return self._connect(autocommit=autocommit)
        except psycopg.Error as e:
            raise _unavailable(e, self.display) from None

    def _connect(self, **kwargs: Any) -> psycopg.Connection[Any]:
        """psycopg.connect with the busy retry; raises the driver's error. Under an answer
        deadline (adapters.answer_deadline) the connect takes no longer than it leaves, and
        is not tried once the deadline passed with the store silent."""
        if given_up():
            raise psycopg.OperationalError(GIVEN_UP)
        timeout = connect_budget(CONNECT_TIMEOUT_SECONDS)
        return wait_for_slot(
            lambda: AnswerBoundConnection.connect(
                host=self.host,
                port=self.port,
                dbname=self.dbname,
                user=self.user,
                password=self.password,
                connect_timeout=timeout,
                **kwargs,
            )
        )

    def check(self) -> None:
        """Connect once and run a trivial query, so a bad address fails before any work."""
        with self.connect() as conn:
            conn.execute("SELECT 1")

    def engine(self, *, pool_size: int = 5) -> Engine:
        """A SQLAlchemy engine (psycopg 3 driver) for the read models. It keeps at most
        ``pool_size`` idle connections; a connection opened beyond them (a nested use) is
        closed when it is returned, so a command's footprint is its peak nesting."""
        engine = create_engine("postgresql+psycopg://", pool_size=pool_size)

        @event.listens_for(engine, "do_connect")
        def connect(
            dialect: Dialect, record: ConnectionPoolEntry, args: ConnectArgsType, kwargs: Any
        ) -> psycopg.Connection[Any]:
            return self._connect()

        @event.listens_for(engine, "connect")
        def opened(dbapi_connection: Any, record: ConnectionPoolEntry) -> None:
            record.info[_IDLE_SINCE] = time.monotonic()  # new: nothing to ping

        @event.listens_for(engine, "checkin")
        def returned(dbapi_connection: Any, record: ConnectionPoolEntry) -> None:
            record.info[_IDLE_SINCE] = time.monotonic()

        @event.listens_for(engine, "checkout")
        def ping_if_idle(dbapi_connection: Any, record: ConnectionPoolEntry, proxy: Any) -> None:
            # The pool's pre-ping, after PING_AFTER_IDLE_SECONDS of idleness only.
            idle_since = record.info.get(_IDLE_SINCE)
            if idle_since is not None and time.monotonic() - idle_since < PING_AFTER_IDLE_SECONDS:
                return
            dialect = engine.dialect
            try:
                dialect.do_ping(dbapi_connection)
            except dialect.loaded_dbapi.Error as e:
                if dialect.is_disconnect(e, dbapi_connection, None):
                    # As pool_pre_ping does: every pooled connection is suspect; get a new one.
                    raise InvalidatePoolError() from e
                raise

        return engine


_IDLE_SINCE = "tradecore_idle_since"  # a pooled connection's info key: when it went idle


def redact(url: str) -> str:
    """The URL with any password replaced, for error messages."""
    scheme, sep, rest = url.partition("://")
    if not sep or "@" not in rest:
        return url
    auth, _, tail = rest.rpartition("@")
    user = auth.split(":", 1)[0]
    return f"{scheme}://{user}:***@{tail}" if ":" in auth else url


def wait_for_slot(connect: Callable[[], T]) -> T:
    """Call ``connect``, again while the server refuses it for want of a free connection slot,
    for at most BUSY_RETRY_SECONDS (jittered backoff from 50 ms to 0.5 s). Any other error,
    or the last refusal, is raised as it is."""
    deadline = time.monotonic() + BUSY_RETRY_SECONDS
    pause = 0.05
    while True:
        try:
            return connect()
        except psycopg.OperationalError as e:
            if not is_busy(e) or time.monotonic() + pause > deadline:
                raise
        # Jittered: commands refused together must not all come back together.
        time.sleep(pause * random.uniform(0.5, 1.5))  # noqa: S311 - not cryptographic
        pause = min(pause * 2, 0.5)


def is_busy(error: BaseException) -> bool:
    """Whether ``error`` is the server refusing a connection for want of a free slot."""
    return any(m in str(error) for m in _BUSY_MESSAGES)


# SQLSTATEs that mean the connection is gone or cannot be had: connection exceptions (class
# 08), the server shutting down or crashing, not yet accepting connections, or out of slots.
# Driver errors raised before any server answer carry no SQLSTATE and mean the same.
_LOST_SQLSTATES = ("08", "57P01", "57P02", "57P03", "53300")


def lost_store(error: BaseException) -> StoreUnavailable | None:
    """The StoreUnavailable that ``error`` amounts to, or None when it is not about reaching
    the server. ``error`` may be the driver's, its pool's, or SQLAlchemy's or the
    eventsourcing library's wrapper of it (found through the chain of causes). A lock or
    statement timeout, a constraint or a bad value is not a lost store. For a command that
    loses the server mid-way: it must exit as "store unavailable", not as an unexpected
    failure."""
    seen: BaseException | None = error
    while seen is not None:
        if isinstance(seen, StoreUnavailable):
            return seen
        if isinstance(seen, psycopg.Error):
            if not isinstance(seen, psycopg.OperationalError | psycopg.InterfaceError):
                return None
            if seen.sqlstate is not None and not seen.sqlstate.startswith(_LOST_SQLSTATES):
                return None
            if is_busy(seen):
                return _unavailable(seen, "the store")
            return StoreUnavailable(f"lost the connection to the store: {first_line(seen)}")
        seen = seen.__cause__ or seen.__context__
    return None


def shown_and_trace(error: BaseException) -> tuple[object, BaseException | None]:
    """What a log line shows of ``error`` and the traceback it carries: a lost store is a
    known cause, its one line and no traceback; anything else as it is, with its traceback."""
    lost = lost_store(error)
    return (error, error) if lost is None else (lost, None)


def _unavailable(error: BaseException, where: str) -> StoreUnavailable:
    if is_busy(error):
        return StoreBusy(
            f"too many connections: {where} has no free connection slot "
            f"(still refused after {BUSY_RETRY_SECONDS:.0f}s): {first_line(error)}"
        )
    return StoreUnavailable(f"cannot connect to {where}: {first_line(error)}")


def first_line(error: BaseException) -> str:
    text = str(error).strip().splitlines()
    return text[0] if text else type(error).__name__
