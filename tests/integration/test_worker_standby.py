"""One active worker per account: a second one waits as a hot standby and takes over."""

from __future__ import annotations

import threading
import time

import pytest
from sqlalchemy import text

from adapters.embedded_pg import EmbeddedPostgres
from adapters.locks import lock_key
from app.bootstrap import Core, bootstrap
from app.config import Settings
from app.entrypoints.worker import run_exclusively
from domain.ids import worker_lock_id
from tests.waiting import wait_for


def start(core: Core, n: int, stop: threading.Event, events: list[str]) -> threading.Thread:
    """Worker ``n`` in a thread, noting "active n" / "standby n" as it goes."""
    thread = threading.Thread(
        target=run_exclusively,
        args=(core, stop),
        kwargs={
            "on_standby": lambda: events.append(f"standby {n}"),
            "on_active": lambda: events.append(f"active {n}"),
            "poll": 0.1,
            "check_every": 0.2,
        },
    )
    thread.start()
    return thread


def test_a_second_worker_for_the_account_stands_by_and_takes_over_when_the_first_stops(
    settings: Settings,
) -> None:
    events: list[str] = []
    stops = [threading.Event(), threading.Event()]
    with bootstrap(settings) as first, bootstrap(settings) as second:
        a = start(first, 0, stops[0], events)
        wait_for(lambda: "active 0" in events, what="worker 0 active")
        b = start(second, 1, stops[1], events)
        wait_for(lambda: "standby 1" in events, what="worker 1 standing by")
        # A negative check: it is watched for a while (the standby retries its lock many
        # times in 0.5 s); nothing is waited for here, so no condition could replace it.
        time.sleep(0.5)
        assert "active 1" not in events  # never two active workers for one account

        stops[0].set()
        a.join(timeout=30)
        assert not a.is_alive(), "worker 0 did not stop within 30 s"
        wait_for(lambda: "active 1" in events, what="worker 1 taking over")
        stops[1].set()
        b.join(timeout=30)
        assert not b.is_alive(), "worker 1 did not stop within 30 s"
    assert events == ["active 0", "standby 1", "active 1"]


def test_a_worker_that_loses_its_lock_session_stops_and_the_standby_takes_over(
    settings: Settings,
) -> None:
    events: list[str] = []
    stops = [threading.Event(), threading.Event()]
    with bootstrap(settings) as first, bootstrap(settings) as second:
        threads = [start(first, 0, stops[0], events)]
        wait_for(lambda: "active 0" in events, what="worker 0 active")
        threads.append(start(second, 1, stops[1], events))
        wait_for(lambda: "standby 1" in events, what="worker 1 standing by")

        # The active worker's lock session is cut (a network cut, a server-side kill) while
        # its process lives on.
        key = lock_key(worker_lock_id(settings.account)) & 0xFFFFFFFFFFFFFFFF
        with first.engine.begin() as conn:
            killed = (
                conn.execute(
                    text(
                        "SELECT pg_terminate_backend(pid) FROM pg_locks "
                        "WHERE locktype = 'advisory' AND granted "
                        "AND classid::bigint = :hi AND objid::bigint = :lo"
                    ),
                    {"hi": key >> 32, "lo": key & 0xFFFFFFFF},
                )
                .scalars()
                .all()
            )
        assert killed == [True]
        wait_for(
            lambda: "active 1" in events and events.count("standby 0") == 1,
            what="worker 1 taking over and worker 0 standing by",
        )
        for stop in stops:
            stop.set()
        for thread in threads:
            thread.join(timeout=30)
        assert not any(thread.is_alive() for thread in threads), "a worker ran on past 30 s"
    # The first worker stopped when its lock went and never ran again; the standby took over.
    assert events.count("active 0") == 1 and "active 1" in events and "standby 0" in events


def test_a_worker_whose_store_goes_away_never_claims_another_worker_holds_its_account(
    own_server: EmbeddedPostgres, caplog: pytest.LogCaptureFixture
) -> None:
    events: list[str] = []
    stop = threading.Event()
    with bootstrap(Settings(database_url=own_server.address.url)) as core:
        worker = start(core, 0, stop, events)
        try:
            wait_for(lambda: "active 0" in events, what="worker 0 active")
            own_server.stop(mode="immediate")
            try:
                wait_for(
                    lambda: any(
                        "cannot reach the store for the worker lock" in r.getMessage()
                        for r in caplog.records
                    ),
                    60,
                    what="the worker asking for its lock while the store is down",
                )
            finally:
                own_server.start()
            wait_for(lambda: events.count("active 0") == 2, 60, what="worker 0 active again")
        finally:
            stop.set()
            worker.join(timeout=30)
        assert not worker.is_alive(), "worker 0 did not stop within 30 s"
    # No other worker ever existed: standing by "because another holds it" would be false.
    assert events == ["active 0", "active 0"], events
