"""How connection failures are named: "too many connections" as such, a lost server as
"store unavailable" whichever layer (driver, SQLAlchemy, eventsourcing) raised it."""

from __future__ import annotations

import psycopg
import pytest
import sqlalchemy.exc
from eventsourcing import persistence

from adapters import database
from adapters.database import is_busy, lost_store, wait_for_slot
from adapters.errors import StoreBusy, StoreUnavailable

TOO_MANY = psycopg.OperationalError(
    'connection failed: connection to server on socket "/x/.s.PGSQL.5432" failed: '
    "FATAL:  sorry, too many clients already"
)
CLOSED = psycopg.OperationalError(
    "consuming input failed: server closed the connection unexpectedly"
)


def chained(outer: BaseException, inner: BaseException) -> BaseException:
    try:
        try:
            raise inner
        except BaseException as e:
            raise outer from e
    except BaseException as raised:
        return raised


@pytest.mark.parametrize(
    "message",
    [
        "FATAL:  sorry, too many clients already",
        'FATAL:  too many connections for role "trader"',
        "FATAL:  remaining connection slots are reserved for roles with the SUPERUSER attribute",
    ],
)
def test_every_form_of_the_no_free_slot_refusal_is_recognised(message: str) -> None:
    assert is_busy(psycopg.OperationalError(message))


def test_a_refusal_for_want_of_slots_is_reported_as_too_many_connections() -> None:
    error = lost_store(TOO_MANY)
    assert isinstance(error, StoreBusy)
    assert "too many connections" in str(error)


@pytest.mark.parametrize(
    "raised",
    [
        CLOSED,
        chained(sqlalchemy.exc.OperationalError("SELECT 1", {}, CLOSED), CLOSED),
        chained(persistence.OperationalError(str(CLOSED)), CLOSED),
        chained(RuntimeError("while flattening"), CLOSED),
    ],
    ids=["driver", "sqlalchemy", "eventsourcing", "wrapped"],
)
def test_a_server_lost_mid_command_is_store_unavailable_from_any_layer(
    raised: BaseException,
) -> None:
    error = lost_store(raised)
    assert isinstance(error, StoreUnavailable)
    assert not isinstance(error, StoreBusy)
    assert "lost the connection to the store" in str(error)
    assert "server closed the connection unexpectedly" in str(error)


def test_an_error_that_is_not_about_the_connection_is_not_a_store_error() -> None:
    assert lost_store(ValueError("bad number")) is None
    assert lost_store(psycopg.errors.NumericValueOutOfRange("numeric field overflow")) is None
    # Operational, but the server is there: a lock or statement timeout.
    lock_timeout = psycopg.errors.LockNotAvailable("canceling statement due to lock timeout")
    assert (
        lost_store(chained(persistence.OperationalError(str(lock_timeout)), lock_timeout)) is None
    )
    assert lost_store(psycopg.errors.QueryCanceled("canceling statement due to timeout")) is None


def test_a_server_shutting_down_under_a_command_is_a_lost_store() -> None:
    shutdown = psycopg.errors.AdminShutdown(
        "terminating connection due to unexpected postmaster exit"
    )
    error = lost_store(chained(sqlalchemy.exc.OperationalError("SELECT 1", {}, shutdown), shutdown))
    assert isinstance(error, StoreUnavailable)
    assert "unexpected postmaster exit" in str(error)


def test_a_connect_refused_for_want_of_slots_is_retried_until_a_slot_frees() -> None:
    attempts = []

    def connect() -> str:
        attempts.append(1)
        if len(attempts) < 3:
            raise TOO_MANY
        return "connection"

    assert wait_for_slot(connect) == "connection"
    assert len(attempts) == 3


def test_any_other_connect_failure_is_raised_at_once() -> None:
    attempts = []

    def connect() -> str:
        attempts.append(1)
        raise CLOSED

    with pytest.raises(psycopg.OperationalError):
        wait_for_slot(connect)
    assert len(attempts) == 1


def test_a_refusal_that_outlasts_the_bound_is_raised(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setattr(database, "BUSY_RETRY_SECONDS", 0.3)
    attempts = []

    def connect() -> str:
        attempts.append(1)
        raise TOO_MANY

    with pytest.raises(psycopg.OperationalError, match="too many clients"):
        wait_for_slot(connect)
    assert 2 <= len(attempts) <= 10
