"""The NOTIFY listener against a real server: a notification committed between a consumer's
read and its first wait is heard when it subscribed first; a listener opened anew (first
use, or after its session was killed) says so at once, so the consumer reads what it missed
instead of waiting for its next poll."""

from __future__ import annotations

import time
from collections.abc import Iterator

import pytest
from psycopg import sql

from adapters.database import DatabaseAddress
from adapters.notify import SUBSCRIBED, NotificationWaiter

CHANNEL = "tradecore_test_marks"


def send(database: DatabaseAddress, payload: str) -> None:
    with database.connect(autocommit=True) as conn:
        conn.execute("SELECT pg_notify(%s, %s)", (CHANNEL, payload))


@pytest.fixture
def waiter(database: DatabaseAddress) -> Iterator[NotificationWaiter]:
    listener = NotificationWaiter(database, CHANNEL)
    yield listener
    listener.close()


def timed(waiter: NotificationWaiter, timeout: float) -> tuple[set[str], float]:
    started = time.monotonic()
    heard = waiter(timeout)
    return heard, time.monotonic() - started


def test_a_notification_sent_after_subscribing_and_before_the_first_wait_is_heard(
    database: DatabaseAddress, waiter: NotificationWaiter
) -> None:
    assert waiter.subscribe()
    send(database, "BTC/USDT:USDT")  # as if the mark moved while the consumer read
    heard, took = timed(waiter, 10.0)
    assert heard == {"BTC/USDT:USDT"}, heard
    assert took < 5.0, f"the queued notification took {took:.1f}s"


def test_a_listener_opened_by_the_wait_itself_returns_at_once_saying_it_subscribed(
    database: DatabaseAddress, waiter: NotificationWaiter
) -> None:
    send(database, "sent before anyone listened")  # lost: no session listened
    heard, took = timed(waiter, 30.0)
    assert heard == {SUBSCRIBED}, heard
    assert took < 10.0, f"the first wait took {took:.1f}s instead of returning at once"
    # Subscribed now: the next notification is heard as itself.
    send(database, "ETH/USDT:USDT")
    assert waiter(10.0) == {"ETH/USDT:USDT"}


def test_a_listener_whose_session_was_killed_resubscribes_and_says_so(
    database: DatabaseAddress, waiter: NotificationWaiter
) -> None:
    assert waiter.subscribe()
    with database.connect(autocommit=True) as admin:
        killed = admin.execute(
            sql.SQL(
                "SELECT pg_terminate_backend(pid) FROM pg_stat_activity "
                "WHERE pid <> pg_backend_pid() AND datname = current_database() "
                "AND query ILIKE {}"
            ).format(sql.Literal(f"%LISTEN%{CHANNEL}%"))
        ).fetchall()
    assert killed == [(True,)], killed
    # The wait that finds the session gone sleeps out its timeout (the caller polls).
    assert waiter(0.5) == set()
    send(database, "moved while nobody listened")
    heard, took = timed(waiter, 30.0)
    assert heard == {SUBSCRIBED}, heard
    assert took < 10.0, f"the re-subscribing wait took {took:.1f}s"


def test_subscribe_reports_an_unreachable_store_instead_of_raising() -> None:
    # A port nothing listens on (loopback): the breaker starts anyway and polls.
    unreachable = DatabaseAddress.parse("postgresql://tradecore@127.0.0.1:9/none")
    waiter = NotificationWaiter(unreachable, CHANNEL)
    assert waiter.subscribe() is False
    assert waiter(0.1) == set()
